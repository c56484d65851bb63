using System.Diagnostics;
using PerSampleGrads.Cli.Runtime;
using PerSampleGrads.Engines;
using PerSampleGrads.Runs;
using Spectre.Console;

namespace PerSampleGrads.Cli.Commands;

/// <summary>
/// <c>psg compare --all</c>: every zoo model with every loss and both reductions at a small batch, one row per run
/// and one verdict for all.
/// </summary>
internal static class CompareAllCommand
{
    public static int Run(CompareSettings template)
    {
        var runs = CompareSweep.Settings(template);
        foreach (var settings in runs.DistinctBy(s => s.Model)) ResultMemory.RequireForCompare(settings, false);
        AnsiConsole.MarkupLine($"[bold]compare --all[/] {runs.Count} runs: {ModelsAndLosses(runs)}, "
            + $"{Markup.Escape(ElementTypes.Name(template.DType))} {template.Device}, "
            + $"engines: {string.Join(", ", template.Engines)}");
        var stopwatch = Stopwatch.StartNew();
        var outcomes = new List<CompareOutcome>();
        Quiet.Status("comparing", status =>
        {
            foreach (var sameModel in runs.GroupBy(s => s.Model))
            {
                // One model (and one cached sample-separation probe per engine) for every loss.
                using var model = CompareRun.Build(sameModel.First(), template.DType);
                using var float64 = CompareRun.Build(sameModel.First(), TorchSharp.torch.ScalarType.Float64);
                foreach (var settings in sameModel)
                {
                    status?.Status(
                        $"comparing {settings.Model.Name} {settings.Loss} ({outcomes.Count + 1}/{runs.Count})");
                    outcomes.Add(CompareRun.Run(settings, audit: false, models: new CompareModels(model, float64)));
                }
            }
        });
        var elapsed = stopwatch.Elapsed;

        AnsiConsole.Write(Table(outcomes, template.Engines));
        // One line per engine, model and problem (the losses of one model are refused alike).
        CompareCommand.WriteRefusals(outcomes
            .SelectMany(o => o.Refused.Select(r => (Refusal: r, Where: $"on {o.Settings.Model.Name}")))
            .DistinctBy(r => (r.Refusal.Engine, r.Where, r.Refusal.Problem)));
        var failed = outcomes.SelectMany(o => o.Engines.Where(e => !e.Comparison.Passed)
            .Select(e => $"{e.Engine} on {o.Settings.Model.Name} {o.Settings.Loss}")).ToList();
        string total = CompareCommand.Ms(elapsed.TotalMilliseconds);
        AnsiConsole.MarkupLine(failed.Count == 0
            ? $"[green]Every engine agrees with the oracle on every model and loss[/] ({runs.Count} runs, {total})."
            : $"[red]Disagreement:[/] {Markup.Escape(string.Join(", ", failed))} outside tolerance ({total}).");
        return failed.Count == 0 ? ExitCodes.Agree : ExitCodes.Disagree;
    }

    private static string ModelsAndLosses(IReadOnlyList<CompareSettings> runs) =>
        $"{string.Join(", ", runs.Select(r => r.Model.Name).Distinct())} x "
        + $"{string.Join(", ", runs.Select(r => r.Loss.ToString()).Distinct())}";

    private static Table Table(IReadOnlyList<CompareOutcome> outcomes, IReadOnlyList<EngineId> engines)
    {
        var table = new Table().Title("every zoo model and loss against the float64 oracle")
            .AddColumns("model", "N", "loss");
        // The clipping method reports two rows, its norms and its clipped sums.
        var columns = engines.SelectMany(e => e == EngineId.Clipping
            ? new[] { (Engine: e, Row: CompareRun.ClippingNorms), (Engine: e, Row: CompareRun.ClippingSums) }
            : [(Engine: e, Row: e.Name)]).ToList();
        foreach (var column in columns) table.AddColumn($"{column.Row} max rel. error");
        table.AddColumns("tolerance", "verdict", "time");
        foreach (var outcome in outcomes)
        {
            var s = outcome.Settings;
            var cells = new List<string>
            {
                s.Model.Name, s.BatchSize.ToString(System.Globalization.CultureInfo.InvariantCulture),
                s.Loss.ToString(),
            };
            foreach (var column in columns)
            {
                var engine = outcome.Engines.FirstOrDefault(e => e.Engine == column.Row);
                string error = engine is null ? "" : CompareCommand.Sci(engine.Comparison.MaxRelativeError);
                cells.Add(engine is null
                    ? outcome.Refused.Any(r => r.Engine == column.Engine) ? "[yellow]refused[/]" : "-"
                    : engine.Comparison.Passed ? error : $"[red]{error}[/]");
            }
            cells.Add(outcome.Engines.Count == 0 ? "-"
                : CompareCommand.Sci(outcome.Engines[0].Comparison.Tolerance.Relative));
            cells.Add(outcome.Passed ? "[green]agrees[/]" : "[red]DISAGREES[/]");
            var time = outcome.OracleElapsed + outcome.Engines.Aggregate(TimeSpan.Zero, (t, e) => t + e.Elapsed);
            cells.Add(CompareCommand.Ms(time.TotalMilliseconds));
            table.AddRow([.. cells]);
        }
        return table;
    }
}
