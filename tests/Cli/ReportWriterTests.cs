using PerSampleGrads.Engines;
using System.Text.Json;
using PerSampleGrads.Benchmarking;
using PerSampleGrads.Cli.Reports;
using PerSampleGrads.Runs;
using PerSampleGrads.Checking;
using PerSampleGrads.Zoo;
using static TorchSharp.torch;

namespace PerSampleGrads.Tests.Cli;

/// <summary>
/// The report writers on results that went wrong: NaN and infinite errors, a shape mismatch, missing and extra
/// parameters, a diagnosis with a NaN row. The files must stay valid (JSON has no NaN), and every failure must be
/// written down, not only counted.
/// </summary>
[Trait("Category", "Checker")]
public sealed class ReportWriterTests : IDisposable
{
    private readonly DirectoryInfo _folder = Directory.CreateTempSubdirectory("psg-report-test-");

    public void Dispose() => _folder.Delete(recursive: true);

    private static readonly Tolerance Float32 = TolerancePolicy.ToleranceFor(ScalarType.Float32);

    private static CompareSettings Settings() => new(ModelZoo.Mlp, 2, 1, CPU, ScalarType.Float32, false,
        LossFunction.CrossEntropy(LossReduction.Mean), EngineId.PerSampleEngines);

    private static ParameterComparison Parameter(string name, double relative, long[]? actualShape = null) =>
        new(name, [2, 3], actualShape ?? [2, 3], relative, relative, actualShape is null ? 0 : -1, 1,
            Float32.Relative);

    /// <summary>
    /// hooks agrees; functional has a NaN, an infinity, a shape mismatch, a missing and an extra name.
    /// </summary>
    private static CompareOutcome Outcome()
    {
        var hooks = new GradientComparison("hooks", "oracle-float64", Float32,
            [Parameter("0.weight", 1e-7), Parameter("0.bias", 0)], [], []);
        var functional = new GradientComparison("functional", "oracle-float64", Float32,
        [
            Parameter("0.weight", double.NaN), Parameter("0.bias", double.PositiveInfinity),
            Parameter("2.weight", double.NaN, [2, 4]), Parameter("2.bias", 1e-6),
        ], ["3.weight"], ["extra.scale"]);
        return new CompareOutcome(Settings(), TimeSpan.FromMilliseconds(12),
            [new EngineOutcome("hooks", hooks, TimeSpan.FromMilliseconds(1)),
             new EngineOutcome("functional", functional, TimeSpan.FromMilliseconds(2))],
            [("0.weight", [3L]), ("0.bias", [3L])]);
    }

    private static PrecisionDiagnosis Diagnosis() => PrecisionDiagnosis.Conclude(
    [
        new DiagnosisRow("oracle", Arithmetic.Float32, 1e-7, "0.weight", Float32.Relative, true),
        new DiagnosisRow("hooks", Arithmetic.Float32, 1e-7, "0.weight", Float32.Relative, true),
        new DiagnosisRow("hooks", Arithmetic.Float64, 0, "0.weight", 1e-10, true),
        new DiagnosisRow("functional", Arithmetic.Float32, double.NaN, "0.weight", Float32.Relative, true),
        new DiagnosisRow("functional", Arithmetic.Float64, double.NaN, "0.weight", 1e-10, Complete: false),
    ], ["hooks", "functional"], cuda: false);

    [Fact]
    public void The_JSON_report_is_valid_and_writes_every_failure_of_a_broken_engine()
    {
        var files = CompareReport.Write(_folder, Outcome(), Diagnosis());
        Assert.Equal(["report.json", "report.md", "errors-hooks.png", "errors-functional.png"],
            files.Select(Path.GetFileName));

        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(_folder.FullName, "report.json")));
        var root = json.RootElement;
        Assert.False(root.GetProperty("passed").GetBoolean());
        var engines = root.GetProperty("engines").EnumerateArray().ToList();
        Assert.True(engines[0].GetProperty("passed").GetBoolean());
        var functional = engines[1];
        Assert.False(functional.GetProperty("passed").GetBoolean());
        // NaN has no JSON form: it is written as null, never as a number that reads as agreement.
        Assert.Equal(JsonValueKind.Null, functional.GetProperty("maxRelativeError").ValueKind);
        Assert.Equal(["3.weight"], functional.GetProperty("missing").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal(["extra.scale"], functional.GetProperty("unexpected").EnumerateArray().Select(e => e.GetString()));
        var parameters = functional.GetProperty("parameters").EnumerateArray().ToList();
        Assert.All(parameters.Take(3), p =>
        {
            Assert.Equal(JsonValueKind.Null, p.GetProperty("relativeError").ValueKind);
            Assert.False(p.GetProperty("passed").GetBoolean());
        });
        Assert.Equal([2L, 4L], parameters[2].GetProperty("actualShape").EnumerateArray().Select(e => e.GetInt64()));
        Assert.Equal(JsonValueKind.Null, parameters[3].GetProperty("actualShape").ValueKind);

        var diagnosis = root.GetProperty("diagnosis");
        Assert.Equal("Logic", diagnosis.GetProperty("verdict").GetString());
        var rows = diagnosis.GetProperty("rows").EnumerateArray().ToList();
        Assert.Equal(JsonValueKind.Null, rows[4].GetProperty("maxRelativeError").ValueKind);
        Assert.False(rows[4].GetProperty("within").GetBoolean());
        Assert.False(rows[4].GetProperty("complete").GetBoolean());
    }

    [Fact]
    public void The_Markdown_report_marks_the_broken_engine_and_lists_its_shape_and_name_mismatches()
    {
        CompareReport.Write(_folder, Outcome(), Diagnosis());
        var md = File.ReadAllText(Path.Combine(_folder.FullName, "report.md"));
        Assert.Contains("| hooks | 1.00e-7 |", md, StringComparison.Ordinal);
        Assert.Contains("| functional | NaN |", md, StringComparison.Ordinal);
        Assert.Contains("**disagrees**", md, StringComparison.Ordinal);
        Assert.Contains("[2, 3] (**functional: [2, 4]**)", md, StringComparison.Ordinal);
        Assert.Contains("| `3.weight` | **missing from functional** |", md, StringComparison.Ordinal);
        Assert.Contains("| `extra.scale` | **not in the oracle** |", md, StringComparison.Ordinal);
        Assert.Contains("Logic: functional still differs", md, StringComparison.Ordinal);
    }

    [Fact]
    public void The_plots_are_drawn_for_non_finite_errors_and_for_an_engine_without_parameters()
    {
        var empty = new GradientComparison("hooks", "oracle-float64", Float32, [], ["0.weight"], []);
        var outcome = Outcome() with
        {
            Engines = [.. Outcome().Engines, new EngineOutcome("empty", empty, TimeSpan.FromMilliseconds(1))],
        };
        var files = CompareReport.Write(_folder, outcome, null);
        foreach (var png in files.Where(f => f.EndsWith(".png", StringComparison.Ordinal)))
        {
            var bytes = File.ReadAllBytes(png);
            Assert.True(bytes.Length > 1000, $"{png}: {bytes.Length} bytes");
            Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], bytes[..4]);
        }
    }

    [Fact]
    public void The_bench_report_writes_every_repeat_and_the_ratio_to_plain_backward()
    {
        var file = new FileInfo(Path.Combine(_folder.FullName, "bench", "figures.json"));
        var timings = new List<BenchTiming>
        {
            new(BenchWorkload.PlainBackward, [2, 4, 3], 1000),
            new("hooks", [6, 9, 7.5], null),
        };
        BenchReport.Write(file, Settings(), "test machine", 1, 3, null, [new BenchReport.SizeResult(2, timings, null)]);
        using var json = JsonDocument.Parse(File.ReadAllText(file.FullName));
        var contenders = json.RootElement.GetProperty("sizes")[0].GetProperty("contenders").EnumerateArray().ToList();
        Assert.Equal(3, contenders[0].GetProperty("medianMs").GetDouble());
        Assert.Equal(2.5, contenders[1].GetProperty("ratioToPlainBackward").GetDouble(), 12);
        Assert.Equal([6, 9, 7.5], contenders[1].GetProperty("samplesMs").EnumerateArray().Select(e => e.GetDouble()));
        Assert.Equal(JsonValueKind.Null, contenders[1].GetProperty("peakBytes").ValueKind);
    }
}
