using System.CommandLine;
using System.Globalization;
using PerSampleGrads.Cli.Reports;
using PerSampleGrads.Cli.Runtime;
using PerSampleGrads.Engines;
using PerSampleGrads.Runs;
using PerSampleGrads.Interop;
using PerSampleGrads.Zoo;
using Spectre.Console;

namespace PerSampleGrads.Cli.Commands;

/// <summary>
/// <c>psg compare</c>: the oracle and the engines on one zoo model, a verdict per engine, optional report and
/// diagnosis.
/// </summary>
internal static class CompareCommand
{
    public static Command Create()
    {
        var workload = new WorkloadOptions(ModelZoo.SmallCnn.Name);
        var batchSize = new Option<long>("--batch-size", "-n")
        {
            Description = "N, the number of samples.", DefaultValueFactory = _ => 8,
        };
        var engines = new Option<string>("--engines")
        {
            Description = "Engines to check, comma-separated: "
                + $"{string.Join(", ", EngineId.All.Select(e => e.Name))} (clipping: the norms and clipped sums of "
                + "the clipping method, against the definition on the oracle).",
            DefaultValueFactory = _ => string.Join(",", EngineId.All.Select(e => e.Name)),
        };
        var clipBound = new Option<double?>("--clip-bound")
        {
            Description = "C for the clipping method (default: the median of the oracle's per-sample gradient norms, "
                + "so that about half the samples are clipped).",
        };
        var report = new Option<DirectoryInfo?>("--report")
        {
            Description = "Write report.json, report.md and one PNG plot per engine into this folder.",
        };
        var diagnose = new Option<bool>("--diagnose")
        {
            Description = "Rerun in float32/float64 (and with TF32 on/off on CUDA) to say whether a disagreement is "
                + "precision or logic.",
        };
        var reference = new Option<string?>("--reference")
        {
            Description = "pytorch: also compute PyTorch's per-sample gradients (float64 loop, vmap(grad), "
                + "ExpandedWeights) on the same weights and batch, and compare both frameworks.",
        }.AcceptOnlyFromAmong("pytorch");

        var all = new Option<bool>("--all")
        {
            Description = "Every zoo model with every loss (ce, nll, mse, l1) and both reductions, N = 3 "
                + "(ResNet-18: 2), one table; replaces --model, --batch-size, --loss and --reduction.",
        };

        var command = new Command("compare",
            "Compute per-sample gradients with the float64 oracle and each engine, and compare them.")
        {
            batchSize, engines, clipBound, report, diagnose, reference, all,
        };
        workload.AddTo(command);
        command.SetAction(parse =>
        {
            if (parse.GetValue(all))
            {
                var own = new Option[] { workload.Model, batchSize, workload.Loss, workload.Reduction, report, diagnose,
                    reference };
                var given = own.Where(o => parse.GetResult(o) is { Implicit: false }).Select(o => o.Name).ToList();
                if (given.Count > 0)
                    throw new UsageException("--all runs every model and loss with its own batch and no report: "
                        + $"drop {string.Join(", ", given)}.");
                var template = workload.Settings(parse, 1, Choices.ParseEngines(parse.GetValue(engines)!));
                workload.ApplyToProcess(parse);
                return CompareAllCommand.Run(template);
            }
            long n = parse.GetValue(batchSize);
            if (n < 1) throw new UsageException($"--batch-size must be at least 1, got {n}.");
            var bound = parse.GetValue(clipBound);
            if (bound is { } c && !(c > 0)) throw new UsageException($"--clip-bound must be positive, got {c}.");
            var settings = workload.Settings(parse, n, Choices.ParseEngines(parse.GetValue(engines)!))
                with { ClipBound = bound };
            bool withPyTorch = parse.GetValue(reference) == "pytorch";
            workload.ApplyToProcess(parse);
            ResultMemory.RequireForCompare(settings, withPyTorch);
            var pytorch = withPyTorch
                ? new PyTorchReferenceOptions { Threads = TorchSharp.torch.get_num_threads() }
                : null;
            if (pytorch is not null) Preflight.RequirePython(pytorch);
            // Last of the checks, since it creates the folder: a run refused for another reason leaves nothing.
            var folder = parse.GetValue(report);
            if (folder is not null) Preflight.RequireWritableFolder(folder, "--report");
            return Run(settings, folder, parse.GetValue(diagnose), pytorch);
        });
        return command;
    }

    private static int Run(CompareSettings settings, DirectoryInfo? reportFolder, bool diagnose,
        PyTorchReferenceOptions? pytorch)
    {
        AnsiConsole.MarkupLine(
            $"[bold]compare[/] {Markup.Escape(settings.Describe())}, engines: {string.Join(", ", settings.Engines)}");
        CompareOutcome outcome = null!;
        AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(),
                new ElapsedTimeColumn())
            .Start(context =>
            {
                var task = context.AddTask("float64 oracle, one sample at a time", maxValue: settings.BatchSize);
                outcome = CompareRun.Run(settings, (done, _) => task.Value = done, pytorch);
                task.StopTask();
            });

        AnsiConsole.Write(ResultTable(outcome));
        WriteRefusals(outcome.Refused.Select(r => (r, "")));
        if (outcome.ClipBound is { } bound && outcome.Engines.Any(e => e.Engine == CompareRun.ClippingNorms))
            AnsiConsole.MarkupLine($"clipping: C = {bound.ToString("0.####e0", CultureInfo.InvariantCulture)}; "
                + "its norms (total and per parameter) and clipped sums against the definition on the float64 "
                + "oracle.");
        if (outcome.PyTorch is { } crossCheck) AnsiConsole.Write(CrossCheckTable(crossCheck));
        PrecisionDiagnosis? diagnosis = null;
        if (diagnose)
        {
            Quiet.Status("diagnosing precision", status =>
                diagnosis = PrecisionDiagnosis.Run(settings, step => status?.Status($"diagnosing precision: {step}")));
            AnsiConsole.Write(DiagnosisTable(diagnosis!));
            AnsiConsole.MarkupLine($"[bold]Diagnosis:[/] {Markup.Escape(diagnosis!.Sentence)}");
        }
        if (reportFolder is not null)
        {
            var files = CompareReport.Write(reportFolder, outcome, diagnosis);
            AnsiConsole.MarkupLine($"Report: {string.Join(", ", files.Select(f => Markup.Escape(f)))}");
        }
        AnsiConsole.MarkupLine(outcome.Passed
            ? outcome.Refused.Count == 0
                ? "[green]Every engine agrees with the oracle within tolerance.[/]"
                : "[green]Every engine that computed agrees with the oracle within tolerance[/] (refused: "
                    + $"{Markup.Escape(string.Join(", ", outcome.Refused.Select(r => r.Engine)))})."
            : "[red]Disagreement:[/] "
                + Markup.Escape(string.Join(", ", outcome.Engines.Where(e => !e.Comparison.Passed).Select(e => e.Engine)
                    .Concat(outcome.PyTorch?.Rows.Where(r => r.Unsupported is null && !r.Passed).Select(r => r.Method)
                        ?? [])))
                + " outside tolerance.");
        return outcome.Passed ? ExitCodes.Agree : ExitCodes.Disagree;
    }

    /// <summary>One line per refusal: the engine, where (a run's label, or empty), the problem and the engine's own
    /// message (which names the module and the fix).</summary>
    internal static void WriteRefusals(IEnumerable<(EngineRefusal Refusal, string Where)> refusals)
    {
        foreach (var (refusal, where) in refusals)
            AnsiConsole.MarkupLine($"[yellow]{Markup.Escape(refusal.Engine.Name)} refused[/]"
                + $"{(where.Length > 0 ? " " + Markup.Escape(where) : "")} ({refusal.Problem}): "
                + Markup.Escape(refusal.Message));
    }

    private static Table ResultTable(CompareOutcome outcome)
    {
        var table = new Table().Title($"against the float64 oracle ({Ms(outcome.OracleElapsed.TotalMilliseconds)})")
            .AddColumns("engine", "max rel. error", "worst parameter", "worst sample", "tolerance", "verdict", "time",
                "self-audit");
        foreach (var e in outcome.Engines)
        {
            var worst = e.Comparison.Worst;
            table.AddRow(
                e.Engine,
                Sci(e.Comparison.MaxRelativeError),
                Markup.Escape(worst?.Name ?? "-"),
                worst is null ? "-" : worst.WorstSample.ToString(CultureInfo.InvariantCulture),
                Sci(e.Comparison.Tolerance.Relative),
                e.Comparison.Passed ? "[green]agrees[/]" : "[red]DISAGREES[/]",
                Ms(e.Elapsed.TotalMilliseconds),
                e.Audit is { } audit
                    ? $"sample {string.Join(",", audit.Samples)}: {Sci(audit.MaxRelativeError)}"
                    : "-");
        }
        return table;
    }

    private static Table CrossCheckTable(PyTorchCrossCheck crossCheck)
    {
        var table = new Table()
            .Title(Markup.Escape($"both frameworks: {crossCheck.Versions}, {crossCheck.Threads} threads"))
            .AddColumns("method", "framework", "vs our float64 oracle", "vs PyTorch float64 loop", "verdict");
        foreach (var r in crossCheck.Rows)
        {
            table.AddRow(
                Markup.Escape(r.Method), r.Framework,
                r.VersusOracle is { } o ? Sci(o.MaxRelativeError) : "-",
                r.VersusPyTorchLoop is { } l ? Sci(l.MaxRelativeError) : "-",
                r.Unsupported is { } why ? $"[yellow]unsupported[/]: {Markup.Escape(why)}"
                    : r.Passed ? "[green]agrees[/]" : "[red]DISAGREES[/]");
        }
        return table;
    }

    private static Table DiagnosisTable(PrecisionDiagnosis diagnosis)
    {
        var table = new Table().Title("precision diagnosis (each against the float64 oracle)")
            .AddColumns("method", "arithmetic", "max rel. error", "worst parameter", "tolerance", "within");
        foreach (var r in diagnosis.Rows)
            table.AddRow(r.Method, r.Arithmetic.Name, Sci(r.MaxRelativeError), Markup.Escape(r.WorstParameter),
                Sci(r.Tolerance), r.Within ? "yes" : "[red]no[/]");
        return table;
    }

    internal static string Sci(double value) => value.ToString("0.00e0", CultureInfo.InvariantCulture);

    internal static string Ms(double value) => value >= 1000
        ? (value / 1000).ToString("0.00", CultureInfo.InvariantCulture) + " s"
        : value.ToString("0.0", CultureInfo.InvariantCulture) + " ms";
}
