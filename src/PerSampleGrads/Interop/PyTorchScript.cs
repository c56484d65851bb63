using System.ComponentModel;
using System.Diagnostics;
using System.Text;

namespace PerSampleGrads.Interop;

/// <summary>
/// Runs the package <c>tools/pytorch_reference/</c> (embedded in this assembly, written into the exchange folder) as
/// <c>python -B -m pytorch_reference</c> with the configured Python, and turns every way it can fail into a
/// <see cref="PyTorchReferenceException"/> that says what to do.
/// </summary>
internal static class PyTorchScript
{
    /// <summary>The package's name: its folder in an exchange folder, and what <c>python -m</c> runs.</summary>
    public const string PackageName = "pytorch_reference";

    /// <summary>What to do when Python, torch or numpy is missing.</summary>
    public const string InstallHint =
        "Install PyTorch for the cross-check: on Debian 12 `apt-get install --no-install-recommends python3-torch` " +
        "(or run scripts/setup.sh); elsewhere install torch and numpy and set PSG_PYTHON to that Python.";

    // The package's exit statuses (tools/pytorch_reference/__init__.py).
    private const int BadInput = 2;
    private const int MissingDependency = 3;

    private static readonly Lazy<IReadOnlyDictionary<string, string>> Sources = new(() =>
    {
        var assembly = typeof(PyTorchScript).Assembly;
        var prefix = PackageName + "/";
        var sources = new SortedDictionary<string, string>(StringComparer.Ordinal);
        var resources = assembly.GetManifestResourceNames().Where(n => n.StartsWith(prefix, StringComparison.Ordinal));
        foreach (var resource in resources)
        {
            using var stream = assembly.GetManifestResourceStream(resource)!;
            using var reader = new StreamReader(stream, Encoding.UTF8);
            sources[resource[prefix.Length..]] = reader.ReadToEnd();
        }
        if (!sources.ContainsKey("__init__.py") || !sources.ContainsKey("__main__.py"))
            throw new InvalidOperationException(
                $"The package {PackageName} is not embedded in {assembly.GetName().Name}: rebuild the project.");
        return sources;
    });

    /// <summary>The package's files: file name (e.g. <c>__main__.py</c>) to text.</summary>
    public static IReadOnlyDictionary<string, string> Files => Sources.Value;

    /// <summary>
    /// Writes the package into <paramref name="folder"/> and runs it there with <paramref name="arguments"/>; returns
    /// its standard output. Throws <see cref="PyTorchReferenceException"/> for a missing Python or module (with
    /// <see cref="InstallHint"/>), bad input (exit 2, the script's one-line reason), a timeout, or any other failure
    /// (exit status and the end of its output).
    /// </summary>
    public static string Run(PyTorchReferenceOptions options, string folder, params string[] arguments)
    {
        var python = options.ResolvePython();
        var package = Directory.CreateDirectory(Path.Combine(folder, PackageName)).FullName;
        foreach (var (file, text) in Files) File.WriteAllText(Path.Combine(package, file), text);

        var start = new ProcessStartInfo(python)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = folder,
        };
        // The same heap behaviour as this process, so that timings compare like with like (see CpuHeap).
        if (Runtime.CpuHeap.Retaining)
            foreach (var (name, value) in Runtime.CpuHeap.EnvironmentVariables) start.Environment[name] = value;
        // The exchange folder first on the module path (python -m adds the working directory too, but not under
        // PYTHONSAFEPATH), so that this package is the one that runs.
        var pythonPath = start.Environment.TryGetValue("PYTHONPATH", out var inherited) ? inherited : null;
        var exchange = Path.GetFullPath(folder);
        start.Environment["PYTHONPATH"] =
            string.IsNullOrEmpty(pythonPath) ? exchange : exchange + Path.PathSeparator + pythonPath;
        start.ArgumentList.Add("-B");  // no __pycache__ in the package
        start.ArgumentList.Add("-m");
        start.ArgumentList.Add(PackageName);
        foreach (var argument in arguments) start.ArgumentList.Add(argument);

        Process process;
        try
        {
            process = Process.Start(start) ?? throw new Win32Exception($"{python} did not start");
        }
        catch (Win32Exception e)
        {
            throw new PyTorchReferenceException(PyTorchReferenceFailure.PythonUnavailable,
                $"No Python to run the PyTorch reference: '{python}' ({Origin(options)}) cannot be started " +
                    $"({e.Message}). {InstallHint}", e);
        }

        using (process)
        {
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(options.Timeout))
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit();
                throw new PyTorchReferenceException(PyTorchReferenceFailure.ScriptFailed,
                    $"The PyTorch reference ({Command(python, arguments)}) did not finish within "
                    + $"{options.Timeout.TotalSeconds:0} s and was stopped.");
            }
            process.WaitForExit();
            var output = stdout.Result;
            var errors = stderr.Result;
            switch (process.ExitCode)
            {
                case 0:
                    return output;
                case MissingDependency:
                    throw new PyTorchReferenceException(PyTorchReferenceFailure.PythonUnavailable,
                        $"{Reason(errors)} ({Origin(options)}). {InstallHint}");
                case BadInput:
                    throw new PyTorchReferenceException(PyTorchReferenceFailure.Mismatch, Reason(errors));
                default:
                    throw new PyTorchReferenceException(PyTorchReferenceFailure.ScriptFailed,
                        $"The PyTorch reference failed: {Command(python, arguments)} exited with status "
                        + $"{process.ExitCode}. Its output ends:{Environment.NewLine}{Tail(errors + output)}");
            }
        }
    }

    // The command line in messages: the Python, the package and its command (not the exchange folder).
    private static string Command(string python, string[] arguments) =>
        $"{python} -m {PackageName} {string.Join(' ', arguments.Take(1))}";

    private static string Origin(PyTorchReferenceOptions options) =>
        !string.IsNullOrWhiteSpace(options.Python) ? "from the options"
        : !string.IsNullOrWhiteSpace(Environment.GetEnvironmentVariable(PyTorchReferenceOptions.PythonVariable))
            ? $"from {PyTorchReferenceOptions.PythonVariable}"
        : $"the default; set {PyTorchReferenceOptions.PythonVariable} to use another";

    // The package's own one-line reason, without its prefix.
    private static string Reason(string errors)
    {
        const string prefix = "pytorch_reference: ";
        var line = errors.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .LastOrDefault(l => l.StartsWith(prefix, StringComparison.Ordinal));
        return line is null ? Tail(errors) : line[prefix.Length..];
    }

    private static string Tail(string text, int lines = 25)
    {
        var all = text.Split('\n').Select(l => l.TrimEnd()).Where(l => l.Length > 0).ToList();
        return all.Count == 0 ? "(no output)" : string.Join(Environment.NewLine,
            all.Skip(Math.Max(0, all.Count - lines)));
    }
}
