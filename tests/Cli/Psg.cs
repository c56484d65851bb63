using System.Diagnostics;
using System.Text;

namespace PerSampleGrads.Tests.Cli;

/// <summary>What a finished psg process left: its exit code and both output streams.</summary>
public sealed record PsgOutcome(int ExitCode, string Output, string Errors, TimeSpan Elapsed)
{
    /// <summary>Standard error's lines that psg wrote itself (<c>psg: ...</c>).</summary>
    public IReadOnlyList<string> ErrorLines =>
        [.. Errors.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)];

    /// <summary>Both streams, for failure messages.</summary>
    public override string ToString() => string.Join(Environment.NewLine,
        $"exit {ExitCode} after {Elapsed.TotalSeconds:0.0} s", "stdout:", Output, "stderr:", Errors);
}

/// <summary>
/// Runs the built psg (<c>dotnet psg.dll</c>, copied next to these tests by the project reference) as a separate
/// process, with a private <c>TMPDIR</c> so that what it leaves in the temp directory can be checked.
/// </summary>
public sealed class Psg : IDisposable
{
    /// <summary>Longest any test's psg run may take.</summary>
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(120);

    public Psg()
    {
        Folder = Directory.CreateTempSubdirectory("psg-cli-test-").FullName;
        Temp = Directory.CreateDirectory(Path.Combine(Folder, "tmp")).FullName;
    }

    /// <summary>The program.</summary>
    public static string Dll => Path.Combine(AppContext.BaseDirectory, "psg.dll");

    /// <summary>A private folder for the test's files, deleted afterwards.</summary>
    public string Folder { get; }

    /// <summary>The <c>TMPDIR</c> psg runs with.</summary>
    public string Temp { get; }

    /// <summary>Runs psg to completion.</summary>
    public PsgOutcome Run(params string[] arguments) => Run(arguments, new Dictionary<string, string?>());

    /// <summary>Runs psg to completion with extra environment variables (null removes one).</summary>
    public PsgOutcome Run(IEnumerable<string> arguments, IReadOnlyDictionary<string, string?> environment)
    {
        using var process = Start(arguments, environment);
        return Finish(process);
    }

    /// <summary>Starts psg; the caller finishes it with <see cref="Finish"/>.</summary>
    public Process Start(IEnumerable<string> arguments, IReadOnlyDictionary<string, string?> environment,
        string? program = null)
    {
        var start = new ProcessStartInfo(program ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Folder,
        };
        if (program is null) start.ArgumentList.Add(Dll);
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        start.Environment["TMPDIR"] = Temp;
        start.Environment["PSG_DEBUG"] = null;
        foreach (var (name, value) in environment) start.Environment[name] = value;
        var process = Process.Start(start) ?? throw new InvalidOperationException("dotnet did not start");
        _output[process.Id] = (process.StandardOutput.ReadToEndAsync(), process.StandardError.ReadToEndAsync(),
            Stopwatch.StartNew());
        return process;
    }

    private readonly Dictionary<int, (Task<string> Output, Task<string> Errors, Stopwatch Clock)> _output = [];

    /// <summary>Waits for <paramref name="process"/> (killing it after <see cref="Timeout"/>) and collects its
    /// output.</summary>
    public PsgOutcome Finish(Process process)
    {
        var (output, errors, clock) = _output[process.Id];
        if (!process.WaitForExit(Timeout))
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
            Assert.Fail($"psg did not finish within {Timeout.TotalSeconds} s; output so far:"
                + $"{Environment.NewLine}{output.Result}{errors.Result}");
        }
        process.WaitForExit();
        return new PsgOutcome(process.ExitCode, output.Result, errors.Result, clock.Elapsed);
    }

    /// <summary>Writes an executable shell script into the test's folder and returns its path.</summary>
    public string Script(string name, string body)
    {
        var path = Path.Combine(Folder, name);
        File.WriteAllText(path, "#!/bin/sh\n" + body + "\n", new UTF8Encoding(false));
        // rwxr-xr-x
        File.SetUnixFileMode(path, (UnixFileMode)0x1ed);
        return path;
    }

    /// <summary>Whatever psg left in its temp directory (it should leave nothing).</summary>
    public string[] LeftInTemp() => Directory.GetFileSystemEntries(Temp);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Folder, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
