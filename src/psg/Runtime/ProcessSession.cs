using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;

namespace PerSampleGrads.Cli.Runtime;

/// <summary>
/// What one <c>psg</c> process owns outside itself, and its release on every way out. Temporary files (the PyTorch
/// exchange folders, the Python child's own) go to a private folder <c>psg-PID-*</c> under the system temp
/// directory: <c>TMPDIR</c> points there for this process and its children. On a normal exit, a failure, SIGINT,
/// SIGTERM or SIGHUP the session stops the child processes (the Python reference), deletes that folder and shows
/// the terminal's cursor again (the progress display hides it). After a signal the process ends with the signal's
/// default action,
/// so a shell sees 128 + the signal number (130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP).
/// </summary>
internal sealed class ProcessSession : IDisposable
{
    private const string TempVariable = "TMPDIR";
    private const string ShowCursor = "\u001b[?25h";

    private readonly string? _originalTemp;
    private readonly List<PosixSignalRegistration> _signals = [];
    private readonly ManualResetEventSlim _releasedEvent = new(false);
    private int _released;

    private ProcessSession(string folder, string? originalTemp)
    {
        TempFolder = folder;
        _originalTemp = originalTemp;
    }

    /// <summary>The private temp folder, deleted when the session ends.</summary>
    public string TempFolder { get; }

    /// <summary>The signal that ended the run, or null.</summary>
    public static PosixSignal? Interruption { get; private set; }

    /// <summary>Creates the private temp folder and installs the SIGINT, SIGTERM and SIGHUP handlers.</summary>
    public static ProcessSession Start()
    {
        var originalTemp = Environment.GetEnvironmentVariable(TempVariable);
        var folder = Directory.CreateTempSubdirectory(
            $"psg-{Environment.ProcessId.ToString(CultureInfo.InvariantCulture)}-").FullName;
        Environment.SetEnvironmentVariable(TempVariable, folder);
        var session = new ProcessSession(folder, originalTemp);
        if (!OperatingSystem.IsWindows())
        {
            session._signals.Add(PosixSignalRegistration.Create(PosixSignal.SIGINT, session.OnSignal));
            session._signals.Add(PosixSignalRegistration.Create(PosixSignal.SIGTERM, session.OnSignal));
            session._signals.Add(PosixSignalRegistration.Create(PosixSignal.SIGHUP, session.OnSignal));
        }
        return session;
    }

    // Runs on a runtime thread while the main thread may be anywhere (inside libtorch, waiting for Python). Release
    // everything, then let the signal's default action end the process: no managed code runs after this.
    private void OnSignal(PosixSignalContext context)
    {
        Interruption = context.Signal;
        Release();
        try
        {
            Console.Error.WriteLine($"psg: interrupted ({context.Signal}); stopped child processes and removed "
                + $"{TempFolder}.");
        }
        catch (IOException)
        {
        }
        context.Cancel = false;
    }

    /// <summary>Stops child processes, deletes the temp folder and restores the cursor; once.</summary>
    public void Release()
    {
        if (Interlocked.Exchange(ref _released, 1) == 1) return;
        try
        {
            StopChildProcesses();
            DeleteTempFolder();
            RestoreCursor();
        }
        finally
        {
            _releasedEvent.Set();
        }
    }

    /// <summary>
    /// After a signal, the main thread must neither report the failure the signal caused (a stopped child, a deleted
    /// folder) nor end the process first: it waits here until the handler has released everything and the signal's
    /// default action ends the process. Returns null when no signal came; else 128 + the signal number, the exit code
    /// should the default action not come.
    /// </summary>
    public int? AwaitInterruption()
    {
        if (Interruption is not { } signal) return null;
        _releasedEvent.Wait(TimeSpan.FromSeconds(30));
        Thread.Sleep(TimeSpan.FromSeconds(5));
        return 128 + signal switch
        {
            PosixSignal.SIGHUP => 1,
            PosixSignal.SIGINT => 2,
            _ => 15,
        };
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var registration in _signals) registration.Dispose();
        Release();
        _releasedEvent.Dispose();
        Environment.SetEnvironmentVariable(TempVariable, _originalTemp);
    }

    // The main thread may be deleting an exchange folder inside at the same moment (its own clean-up after the child
    // was stopped), which makes a recursive delete trip over a vanished entry: try again.
    private void DeleteTempFolder()
    {
        for (int attempt = 1; Directory.Exists(TempFolder); attempt++)
        {
            try
            {
                Directory.Delete(TempFolder, recursive: true);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                if (attempt == 5)
                {
                    TryWriteError($"psg: could not delete the temporary folder {TempFolder}: {e.Message}");
                    return;
                }
                Thread.Sleep(50 * attempt);
            }
        }
    }

    // The children of this process (on Linux, from /proc/PID/stat), each with its own children. psg starts no
    // process other than the Python reference.
    private static void StopChildProcesses()
    {
        foreach (var pid in ChildProcessIds(Environment.ProcessId))
        {
            try
            {
                using var child = Process.GetProcessById(pid);
                child.Kill(entireProcessTree: true);
                child.WaitForExit(TimeSpan.FromSeconds(5));
            }
            catch (Exception e) when (e is ArgumentException or InvalidOperationException
                                          or System.ComponentModel.Win32Exception)
            {
                // Gone already.
            }
        }
    }

    /// <summary>Process ids whose parent is <paramref name="parent"/> (Linux; empty elsewhere).</summary>
    internal static List<int> ChildProcessIds(int parent)
    {
        var children = new List<int>();
        if (!OperatingSystem.IsLinux()) return children;
        foreach (var folder in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(folder), NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
                continue;
            try
            {
                // /proc/PID/stat: "pid (command) state ppid ...", where the command may hold spaces and brackets.
                var stat = File.ReadAllText(Path.Combine(folder, "stat"));
                var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                if (fields.Length > 1 && int.TryParse(fields[1], NumberStyles.None, CultureInfo.InvariantCulture,
                        out var ppid) && ppid == parent)
                    children.Add(pid);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
            }
        }
        return children;
    }

    private static void RestoreCursor()
    {
        if (Console.IsOutputRedirected) return;
        try
        {
            Console.Out.Write(ShowCursor);
            Console.Out.Flush();
        }
        catch (IOException)
        {
        }
    }

    private static void TryWriteError(string line)
    {
        try
        {
            Console.Error.WriteLine(line);
        }
        catch (IOException)
        {
        }
    }
}
