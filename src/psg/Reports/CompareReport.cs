using System.Globalization;
using System.Text;
using System.Text.Json;
using PerSampleGrads.Runs;
using PerSampleGrads.Oracle;
using PerSampleGrads.Checking;

namespace PerSampleGrads.Cli.Reports;

/// <summary>Writes a comparison as <c>report.json</c>, <c>report.md</c> and a PNG plot per engine.</summary>
internal static class CompareReport
{
    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
    };

    public static List<string> Write(DirectoryInfo folder, CompareOutcome outcome, PrecisionDiagnosis? diagnosis)
    {
        folder.Create();
        var files = new List<string>();
        var s = outcome.Settings;
        var document = new
        {
            settings = new
            {
                model = s.Model.Name, batchSize = s.BatchSize, seed = s.Seed, device = s.Device.ToString(),
                dtype = ElementTypes.Name(s.DType), tf32 = s.Arithmetic.Tf32, loss = s.Loss.ToString(),
            },
            machine = MachineInfo.Describe(s.Device),
            reference = "float64 oracle (per-sample loop)",
            oracleMilliseconds = outcome.OracleElapsed.TotalMilliseconds,
            passed = outcome.Passed,
            engines = outcome.Engines.Select(e => new
            {
                engine = e.Engine,
                passed = e.Comparison.Passed,
                milliseconds = e.Elapsed.TotalMilliseconds,
                tolerance = e.Comparison.Tolerance.Relative,
                toleranceReason = e.Comparison.Tolerance.Reason,
                maxRelativeError = Finite(e.Comparison.MaxRelativeError),
                missing = e.Comparison.Missing,
                unexpected = e.Comparison.Unexpected,
                parameters = e.Comparison.Parameters.Select(p => new
                {
                    name = p.Name, shape = p.ExpectedShape, relativeError = Finite(p.RelativeError),
                    maxAbsoluteError = Finite(p.MaxAbsoluteError),
                    worstSample = p.WorstSample, meanPerSampleNorm = Finite(p.ExpectedNorm), passed = p.Passed,
                    actualShape = p.ShapesMatch ? null : p.ActualShape,
                }),
            }),
            refusals = outcome.Refused.Select(r => new
            {
                engine = r.Engine.Name, problem = r.Problem.ToString(), message = r.Message,
            }),
            pytorch = outcome.PyTorch is not { } cross ? null : new
            {
                versions = cross.Versions.ToString(),
                threads = cross.Threads,
                passed = cross.Passed,
                methods = cross.Rows.Select(r => new
                {
                    method = r.Method, framework = r.Framework, unsupported = r.Unsupported, passed = r.Passed,
                    versusOracle = Errors(r.VersusOracle),
                    versusPyTorchLoop = Errors(r.VersusPyTorchLoop),
                }),
            },
            diagnosis = diagnosis is null ? null : new
            {
                verdict = diagnosis.Verdict.ToString(), sentence = diagnosis.Sentence,
                rows = diagnosis.Rows.Select(r => new
                {
                    r.Method, arithmetic = r.Arithmetic.Name, maxRelativeError = Finite(r.MaxRelativeError),
                    r.WorstParameter, r.Tolerance, r.Complete, r.Within,
                }),
            },
        };
        files.Add(Save(folder, "report.json", JsonSerializer.Serialize(document, Json)));
        files.Add(Save(folder, "report.md", Markdown(outcome, diagnosis)));
        foreach (var e in outcome.Engines)
            files.Add(ErrorPlot.Save(Path.Combine(folder.FullName, $"errors-{e.Engine}.png"), e, s.Describe()));
        return files;
    }

    private static double? Finite(double v) => double.IsFinite(v) ? v : null;

    private static object? Errors(GradientComparison? comparison) => comparison is null ? null : new
    {
        maxRelativeError = Finite(comparison.MaxRelativeError),
        tolerance = comparison.Tolerance.Relative,
        parameters = comparison.Parameters.Select(p => new
        {
            name = p.Name, relativeError = Finite(p.RelativeError), worstSample = p.WorstSample,
        }),
    };

    private static string Save(DirectoryInfo folder, string name, string text)
    {
        var path = Path.Combine(folder.FullName, name);
        File.WriteAllText(path, text);
        return path;
    }

    private static string Markdown(CompareOutcome outcome, PrecisionDiagnosis? diagnosis)
    {
        var md = new StringBuilder();
        var inv = CultureInfo.InvariantCulture;
        md.AppendLine(inv, $"# Per-sample gradients: {outcome.Settings.Describe()}");
        md.AppendLine();
        md.AppendLine(inv, $"Reference: float64 oracle (one forward and backward per sample), "
            + $"{Commands.CompareCommand.Ms(outcome.OracleElapsed.TotalMilliseconds)}. "
            + $"Machine: {MachineInfo.Describe(outcome.Settings.Device)}.");
        md.AppendLine();
        md.AppendLine("| engine | max rel. error | worst parameter | worst sample | tolerance | verdict | time |");
        md.AppendLine("|---|---|---|---|---|---|---|");
        foreach (var e in outcome.Engines)
        {
            var w = e.Comparison.Worst;
            md.AppendLine(inv,
                $"| {e.Engine} | {Commands.CompareCommand.Sci(e.Comparison.MaxRelativeError)} | `{w?.Name}` | "
                + $"{w?.WorstSample} | {Commands.CompareCommand.Sci(e.Comparison.Tolerance.Relative)} | "
                + $"{(e.Comparison.Passed ? "agrees" : "**disagrees**")} | "
                + $"{Commands.CompareCommand.Ms(e.Elapsed.TotalMilliseconds)} |");
        }
        foreach (var r in outcome.Refused)
        {
            md.AppendLine();
            md.AppendLine(inv, $"**{r.Engine} refused** ({r.Problem}): {r.Message}");
        }
        if (outcome.PyTorch is { } cross)
        {
            md.AppendLine();
            md.AppendLine(inv, $"## Both frameworks ({cross.Versions}, {cross.Threads} threads)");
            md.AppendLine();
            md.AppendLine("| method | framework | vs our float64 oracle | vs PyTorch float64 loop | verdict |");
            md.AppendLine("|---|---|---|---|---|");
            foreach (var r in cross.Rows)
                md.AppendLine(inv,
                    $"| {r.Method} | {r.Framework} | "
                    + $"{(r.VersusOracle is { } o ? Commands.CompareCommand.Sci(o.MaxRelativeError) : "-")} | "
                    + $"{(r.VersusPyTorchLoop is { } l ? Commands.CompareCommand.Sci(l.MaxRelativeError) : "-")} | "
                    + $"{(r.Unsupported is { } why ? "unsupported: " + why : r.Passed ? "agrees" : "**disagrees**")}"
                    + $" |");
        }
        if (diagnosis is not null)
        {
            md.AppendLine();
            md.AppendLine("## Precision diagnosis");
            md.AppendLine();
            md.AppendLine("| method | arithmetic | max rel. error | worst parameter | tolerance | within |");
            md.AppendLine("|---|---|---|---|---|---|");
            foreach (var r in diagnosis.Rows)
                md.AppendLine(inv,
                    $"| {r.Method} | {r.Arithmetic.Name} | {Commands.CompareCommand.Sci(r.MaxRelativeError)} | "
                    + $"`{r.WorstParameter}` | {Commands.CompareCommand.Sci(r.Tolerance)} | "
                    + $"{(r.Within ? "yes" : "**no**")} |");
            md.AppendLine();
            md.AppendLine(diagnosis.Sentence);
        }
        foreach (var e in outcome.Engines)
        {
            md.AppendLine();
            md.AppendLine(inv, $"## {e.Engine}: every parameter");
            md.AppendLine();
            md.AppendLine(inv, $"![relative error per parameter](errors-{e.Engine}.png)");
            md.AppendLine();
            md.AppendLine("| parameter | shape | rel. error | max abs. error | worst sample |");
            md.AppendLine("|---|---|---|---|---|");
            foreach (var p in e.Comparison.Parameters)
            {
                string shape = $"[{string.Join(", ", p.ExpectedShape)}]";
                if (!p.ShapesMatch) shape += $" (**{e.Engine}: [{string.Join(", ", p.ActualShape)}]**)";
                md.AppendLine(inv, $"| `{p.Name}` | {shape} | {Commands.CompareCommand.Sci(p.RelativeError)} | "
                    + $"{Commands.CompareCommand.Sci(p.MaxAbsoluteError)} | {p.WorstSample} |");
            }
            foreach (var name in e.Comparison.Missing)
                md.AppendLine(inv, $"| `{name}` | **missing from {e.Engine}** | - | - | - |");
            foreach (var name in e.Comparison.Unexpected)
                md.AppendLine(inv, $"| `{name}` | **not in the oracle** | - | - | - |");
        }
        return md.ToString();
    }
}
