using System.CommandLine;
using PerSampleGrads.Cli.Commands;
using PerSampleGrads.Cli.Runtime;
using Spectre.Console;

namespace PerSampleGrads.Cli;

/// <summary>
/// <c>psg</c>: compare per-sample gradient engines with the oracle, diagnose precision, benchmark, review snapshots.
/// Every way out ends with one line and an exit code of <see cref="ExitCodes"/>, never an abort.
/// </summary>
public static class Program
{
    public static int Main(string[] args)
    {
        ProcessSession session;
        try
        {
            session = ProcessSession.Start();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"psg: cannot create a temporary folder under {Path.GetTempPath()}: {e.Message}");
            return ExitCodes.BadUsage;
        }
        using (session)
        {
            int code;
            try
            {
                code = Run(args);
            }
            catch (Exception e)
            {
                // A signal's clean-up (the child stopped, the folder deleted) fails the run: no failure to
                // report.
                if (session.AwaitInterruption() is { } interrupted) return interrupted;
                code = Failure.Report(e);
            }
            return session.AwaitInterruption() ?? code;
        }
    }

    private static int Run(string[] args)
    {
        // Logs and CI have no terminal width: give tables room instead of wrapping every cell.
        if (Console.IsOutputRedirected) AnsiConsole.Profile.Width = 160;
        var root = new RootCommand(
            "PerSampleGrads: per-sample gradient engines checked against a ground-truth oracle, and timed. Exit codes: "
            + "0 agree (or not slower, or snapshots unchanged), 1 disagree (or slower, or snapshots changed), "
            + "2 bad usage, input or environment, 3 internal error; 130/143 after SIGINT/SIGTERM.")
        {
            CompareCommand.Create(),
            BenchCommand.Create(),
            SnapshotsCommand.Create(),
        };
        var parsed = root.Parse(args);
        if (parsed.Errors.Count > 0)
        {
            // 'psg' or 'psg snapshots' alone: show what the command offers before the error.
            var command = parsed.CommandResult.Command;
            if (command.Subcommands.Count > 0 && args.Length <= 1 + command.Parents.Count())
                root.Parse([.. args, "--help"]).Invoke();
            foreach (var error in parsed.Errors) Console.Error.WriteLine($"psg: {OneLine(error.Message)}");
            Console.Error.WriteLine("psg: run 'psg --help' for usage.");
            return ExitCodes.BadUsage;
        }
        if (TorchRuntime.Problem is { } problem && NeedsTorch(parsed.CommandResult.Command, root))
        {
            Console.Error.WriteLine($"psg: {problem}");
            return ExitCodes.BadUsage;
        }
        return parsed.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
    }

    // System.CommandLine lists the allowed values one per line: "Must be one of:\n\t'a'\n\t'b'".
    private static string OneLine(string message) =>
        string.Join(' ', message.Split(['\n', '\r', '\t'],
            StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));

    private static bool NeedsTorch(Command command, RootCommand root) =>
        command != root && !SnapshotsCommand.IsSnapshotsCommand(command);
}
