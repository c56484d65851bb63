using System.Globalization;

namespace PerSampleGrads.Cli.Runtime;

/// <summary>
/// Checks made before any computing, so that a run that cannot finish fails in a second, not after an hour: output
/// paths are writable, the thread count is sensible and can be had, the result fits in memory.
/// </summary>
internal static class Preflight
{
    /// <summary>The most threads <c>--threads</c> accepts per logical processor.</summary>
    public const int ThreadsPerProcessor = 4;

    /// <summary>
    /// Threads the probe starts per compute thread: libtorch starts about two per compute thread (the intra-op pool
    /// of OpenMP threads, and the inter-op pool), measured as 23 threads in all for <c>--threads 8</c>.
    /// </summary>
    private const int ProbeThreadsPerComputeThread = 2;

    /// <summary>The largest thread count <c>--threads</c> accepts: 4 per logical processor.</summary>
    public static int MaxThreads => ThreadsPerProcessor * Environment.ProcessorCount;

    /// <summary>
    /// A folder that <c>--report</c> may write into: created if missing, and a probe file written and deleted.
    /// </summary>
    public static void RequireWritableFolder(DirectoryInfo folder, string option)
    {
        if (File.Exists(folder.FullName))
            throw new UsageException(
                $"{option} {folder.FullName} is a file; give a folder (it is created if missing).");
        try
        {
            folder.Create();
            var probe = Path.Combine(folder.FullName, $".psg-write-probe-{Environment.ProcessId}");
            File.WriteAllText(probe, "");
            File.Delete(probe);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UsageException($"{option} {folder.FullName} is not writable: {e.Message}");
        }
    }

    /// <summary>
    /// A file that <c>--json</c> may write: not a folder, its folder creatable, and the file itself writable. An
    /// existing file is opened for writing without being changed; a new one is created and deleted again.
    /// </summary>
    public static void RequireWritableFile(FileInfo file, string option)
    {
        if (Directory.Exists(file.FullName))
            throw new UsageException($"{option} {file.FullName} is a folder; give a file name.");
        try
        {
            file.Directory?.Create();
            if (file.Exists)
            {
                using var existing = new FileStream(file.FullName, FileMode.Open, FileAccess.Write);
            }
            else
            {
                using (new FileStream(file.FullName, FileMode.CreateNew, FileAccess.Write)) { }
                File.Delete(file.FullName);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UsageException($"{option} {file.FullName} is not writable: {e.Message}");
        }
    }

    /// <summary>A file that must exist and be readable (<c>--baseline</c>).</summary>
    public static void RequireReadableFile(FileInfo file, string option)
    {
        if (!file.Exists)
            throw new UsageException($"{option} {file.FullName} does not exist.");
        try
        {
            using var stream = file.OpenRead();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UsageException($"{option} {file.FullName} is not readable: {e.Message}");
        }
    }

    /// <summary>
    /// <paramref name="threads"/> (or, when null, libtorch's default of one per logical processor) within 1 to
    /// <see cref="MaxThreads"/>, and twice that many threads can be started here: where a process or
    /// container limit (<c>ulimit -u</c>, a cgroup's <c>pids.max</c>) forbids them, libgomp would end the process or
    /// hang instead.
    /// </summary>
    public static void RequireThreads(int? threads)
    {
        if (threads is { } n && (n < 1 || n > MaxThreads))
            throw new UsageException(
                $"--threads must be between 1 and {MaxThreads} ({ThreadsPerProcessor} per logical processor; "
                + $"this machine has {Environment.ProcessorCount}), got {n}.");
        int wanted = threads ?? Environment.ProcessorCount;
        if (!CanStartThreads(ProbeThreadsPerComputeThread * wanted))
            throw new UsageException(
                $"Cannot start {wanted} compute threads here: a process limit (ulimit -u) or a container's "
                + "pids limit forbids more threads. "
                + "Raise the limit or ask for fewer with --threads.");
    }

    private static bool CanStartThreads(int count)
    {
        using var release = new ManualResetEventSlim(false);
        var started = new List<Thread>();
        try
        {
            for (int i = 0; i < count; i++)
            {
                var thread = new Thread(() => release.Wait(), maxStackSize: 64 * 1024) { IsBackground = true };
                thread.Start();
                started.Add(thread);
            }
            return true;
        }
        catch (Exception e) when (e is OutOfMemoryException or ThreadStartException or ThreadStateException)
        {
            return false;
        }
        finally
        {
            release.Set();
            foreach (var thread in started) thread.Join();
        }
    }

    /// <summary>
    /// Refuses a run whose per-sample results alone (<paramref name="bytes"/>, a lower bound of what it needs at
    /// once) exceed the memory available to this process (Linux: <c>MemAvailable</c>, and a cgroup's limit less its
    /// usage). Elsewhere, or where nothing can be read, nothing is checked.
    /// </summary>
    public static void RequireMemory(double bytes, string what, string fix)
    {
        if (AvailableBytes() is not { } available || bytes <= available) return;
        throw new UsageException(
            $"{what} need at least {Gigabytes(bytes)}, but only {Gigabytes(available)} of memory is available. {fix}");
    }

    /// <summary>Bytes as GB with three significant digits.</summary>
    public static string Gigabytes(double bytes) =>
        (bytes / 1e9).ToString(bytes >= 1e12 ? "#,##0" : "0.###", CultureInfo.InvariantCulture) + " GB";

    /// <summary>
    /// The Python of the PyTorch reference can be started: an existing file, or a command found on <c>PATH</c>. Checked
    /// before the run so that a missing Python fails at once, not after the oracle; a Python without torch still fails
    /// later, with the install hint.
    /// </summary>
    public static void RequirePython(Interop.PyTorchReferenceOptions options)
    {
        var python = options.ResolvePython();
        bool found = python.Contains('/')
            ? File.Exists(python)
            : (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
                .Any(folder => File.Exists(Path.Combine(folder, python)));
        if (!found)
            throw new UsageException(
                $"No Python to run the PyTorch reference: '{python}' does not exist (set "
                + $"{Interop.PyTorchReferenceOptions.PythonVariable} to a Python with torch and numpy). "
                + Interop.PyTorchScript.InstallHint);
    }

    /// <summary>Memory this process can still allocate, in bytes, or null when unknown.</summary>
    public static double? AvailableBytes()
    {
        if (!OperatingSystem.IsLinux()) return null;
        double? available = ReadMemInfo("MemAvailable");
        foreach (var (limitFile, usageFile) in new[]
                 {
                     ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                     ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
                 })
        {
            if (ReadNumber(limitFile) is { } limit && ReadNumber(usageFile) is { } usage && limit < 1e18)
                available = Math.Min(available ?? double.MaxValue, Math.Max(0, limit - usage));
        }
        return available;
    }

    private static double? ReadMemInfo(string field)
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/meminfo"))
            {
                if (!line.StartsWith(field + ":", StringComparison.Ordinal)) continue;
                var parts = line[(field.Length + 1)..].Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
                return double.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var kb)
                    ? kb * 1024
                    : null;
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
        return null;
    }

    private static double? ReadNumber(string path)
    {
        try
        {
            if (!File.Exists(path)) return null;
            var text = File.ReadAllText(path).Trim();
            return double.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value) ? value : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
