using System.CommandLine;
using PerSampleGrads;
using PerSampleGrads.Cli.Commands;
using Spectre.Console;

namespace PerSampleGrads.Cli;

/// <summary>
/// <c>psg</c>: compare per-sample gradient engines with the oracle, diagnose precision, benchmark.
/// Exit codes: 0 every engine within tolerance, 1 some engine is not, 2 bad usage or input.
/// </summary>
public static class Program
{
    /// <summary>Exit code for a run whose engines all agree with the oracle.</summary>
    public const int Agree = 0;

    /// <summary>Exit code for a run where some engine disagrees.</summary>
    public const int Disagree = 1;

    /// <summary>Exit code for bad usage or input.</summary>
    public const int BadUsage = 2;

    public static int Main(string[] args)
    {
        // Logs and CI have no terminal width: give tables room instead of wrapping every cell.
        if (Console.IsOutputRedirected) AnsiConsole.Profile.Width = 160;
        var root = new RootCommand("PerSampleGrads: per-sample gradient engines checked against a ground-truth oracle, and timed.")
        {
            CompareCommand.Create(),
            BenchCommand.Create(),
        };
        var parsed = root.Parse(args);
        if (parsed.Errors.Count > 0)
        {
            foreach (var error in parsed.Errors) Console.Error.WriteLine($"psg: {error.Message}");
            Console.Error.WriteLine("psg: run 'psg --help' for usage.");
            return BadUsage;
        }
        if (TorchRuntime.Problem is { } problem && parsed.CommandResult.Command != root)
        {
            Console.Error.WriteLine($"psg: {problem}");
            return BadUsage;
        }
        try
        {
            return parsed.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (Exception e) when (e is PerSampleGradientsException or ArgumentException or InvalidOperationException)
        {
            AnsiConsole.MarkupLine($"[red]psg:[/] {Markup.Escape(e.Message)}");
            return BadUsage;
        }
    }
}
