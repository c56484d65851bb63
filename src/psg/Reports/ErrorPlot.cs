using PerSampleGrads.Runs;
using ScottPlot;

namespace PerSampleGrads.Cli.Reports;

/// <summary>A PNG bar chart of each parameter's relative error against the oracle, on a log scale, with the
/// tolerance.</summary>
internal static class ErrorPlot
{
    // Exact agreement (error 0) is drawn at this floor.
    private const double Floor = 1e-18;

    public static string Save(string path, EngineOutcome outcome, string title)
    {
        var parameters = outcome.Comparison.Parameters;
        var plot = new Plot();
        double[] logs = parameters.Select(p => Math.Log10(Math.Max(double.IsFinite(p.RelativeError) ? p.RelativeError
            : 1, Floor))).ToArray();
        var bars = plot.Add.Bars(logs);
        bars.ValueLabelStyle.IsVisible = false;
        double baseline = Math.Floor(Math.Min(logs.DefaultIfEmpty(0).Min(),
            Math.Log10(outcome.Comparison.Tolerance.Relative))) - 1;
        foreach (var bar in bars.Bars)
        {
            bar.ValueBase = baseline;
            bar.FillColor = bar.Value <= Math.Log10(outcome.Comparison.Tolerance.Relative) ? Colors.SteelBlue
                : Colors.OrangeRed;
        }
        var tolerance = plot.Add.HorizontalLine(Math.Log10(outcome.Comparison.Tolerance.Relative));
        tolerance.LegendText = $"tolerance {outcome.Comparison.Tolerance}";
        tolerance.LinePattern = LinePattern.Dashed;
        tolerance.Color = Colors.Red;

        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
            Enumerable.Range(0, parameters.Count).Select(i => (double)i).ToArray(),
                parameters.Select(p => p.Name).ToArray());
        plot.Axes.Bottom.TickLabelStyle.Rotation = 90;
        plot.Axes.Bottom.TickLabelStyle.Alignment = Alignment.MiddleLeft;
        plot.Axes.Bottom.MinimumSize = 40 + 7 * parameters.Select(p => p.Name.Length).DefaultIfEmpty(10).Max();
        plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic
        {
            LabelFormatter = y => $"1e{y:0}",
            IntegerTicksOnly = true,
        };
        plot.Axes.Left.Label.Text = "relative error vs float64 oracle (log scale)";
        plot.Axes.SetLimitsY(baseline, Math.Max(0, logs.DefaultIfEmpty(0).Max() + 1));
        plot.Title($"{outcome.Engine}: {title}");
        plot.ShowLegend(Alignment.UpperRight);
        plot.SavePng(path, Math.Max(900, 22 * parameters.Count + 200), 650);
        return path;
    }
}
