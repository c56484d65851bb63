using System.ComponentModel;
using System.Diagnostics;
using System.Text;

namespace PerSampleGrads.Interop;

/// <summary>
/// Runs <c>tools/pytorch_reference.py</c> (embedded in this assembly, written next to the exchange) with the configured
/// Python, and turns every way it can fail into a <see cref="PyTorchReferenceException"/> that says what to do.
/// </summary>
internal static class PyTorchScript
{
    /// <summary>The script's file name in an exchange folder.</summary>
    public const string FileName = "pytorch_reference.py";

    /// <summary>What to do when Python, torch or numpy is missing.</summary>
    public const string InstallHint =
        "Install PyTorch for the cross-check: on Debian 12 `apt-get install --no-install-recommends python3-torch` " +
        "(or run scripts/setup.sh); elsewhere install torch and numpy and set PSG_PYTHON to that Python.";

    // The script's exit statuses (tools/pytorch_reference.py).
    private const int BadInput = 2;
    private const int MissingDependency = 3;

    private static readonly Lazy<string> Source = new(() =>
    {
        using var stream = typeof(PyTorchScript).Assembly.GetManifestResourceStream(FileName)
            ?? throw new InvalidOperationException($"{FileName} is not embedded in {typeof(PyTorchScript).Assembly.GetName().Name}: rebuild the project.");
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return reader.ReadToEnd();
    });

    /// <summary>The script's text.</summary>
    public static string Text => Source.Value;

    /// <summary>
    /// Writes the script into <paramref name="folder"/> and runs it with <paramref name="arguments"/>; returns its
    /// standard output. Throws <see cref="PyTorchReferenceException"/> for a missing Python or module (with
    /// <see cref="InstallHint"/>), bad input (exit 2, the script's one-line reason), a timeout, or any other failure
    /// (exit status and the end of its output).
    /// </summary>
    public static string Run(PyTorchReferenceOptions options, string folder, params string[] arguments)
    {
        var python = options.ResolvePython();
        var script = Path.Combine(folder, FileName);
        File.WriteAllText(script, Text);

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
        start.ArgumentList.Add("-B");  // no __pycache__ next to the script
        start.ArgumentList.Add(script);
        foreach (var argument in arguments) start.ArgumentList.Add(argument);

        Process process;
        try
        {
            process = Process.Start(start) ?? throw new Win32Exception($"{python} did not start");
        }
        catch (Win32Exception e)
        {
            throw new PyTorchReferenceException(PyTorchReferenceFailure.PythonUnavailable,
                $"No Python to run the PyTorch reference: '{python}' ({Origin(options)}) cannot be started ({e.Message}). {InstallHint}", e);
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
                    $"The PyTorch reference ({python} {FileName} {string.Join(' ', arguments.Take(1))}) did not finish within {options.Timeout.TotalSeconds:0} s and was stopped.");
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
                        $"The PyTorch reference failed: {python} {FileName} {string.Join(' ', arguments.Take(1))} exited with status {process.ExitCode}. Its output ends:{Environment.NewLine}{Tail(errors + output)}");
            }
        }
    }

    private static string Origin(PyTorchReferenceOptions options) =>
        !string.IsNullOrWhiteSpace(options.Python) ? "from the options"
        : !string.IsNullOrWhiteSpace(Environment.GetEnvironmentVariable(PyTorchReferenceOptions.PythonVariable)) ? $"from {PyTorchReferenceOptions.PythonVariable}"
        : $"the default; set {PyTorchReferenceOptions.PythonVariable} to use another";

    // The script's own one-line reason, without its prefix.
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
        return all.Count == 0 ? "(no output)" : string.Join(Environment.NewLine, all.Skip(Math.Max(0, all.Count - lines)));
    }
}
