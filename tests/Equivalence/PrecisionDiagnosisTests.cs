using PerSampleGrads.Engines;
using PerSampleGrads.Runs;
using PerSampleGrads.Checking;
using static TorchSharp.torch;

namespace PerSampleGrads.Tests;

/// <summary>
/// The precision diagnosis's verdict from measured rows: agreement, precision, logic, and the rows that must never
/// read as agreement (NaN, infinite, incomplete).
/// </summary>
[Trait("Category", "Checker")]
public sealed class PrecisionDiagnosisTests
{
    private static readonly double Bound64 = TolerancePolicy.ToleranceFor(Arithmetic.Float64).Relative;
    private static readonly double Bound32 = TolerancePolicy.ToleranceFor(Arithmetic.Float32).Relative;
    private static readonly double BoundTf32 = TolerancePolicy.ToleranceFor(Arithmetic.Float32Tf32).Relative;
    private static readonly string[] Engines = ["hooks", "functional"];

    private static DiagnosisRow Row(string method, string arithmetic, double error, bool complete = true) =>
        new(method, Arithmetic.Parse(arithmetic), error, "w",
            TolerancePolicy.ToleranceFor(Arithmetic.Parse(arithmetic)).Relative, complete);

    private static List<DiagnosisRow> Rows(double hooks64, double functional64, double hooks32, double functional32) =>
    [
        Row("oracle", "float32", 0.01 * Bound32),
        Row("hooks", "float32", hooks32), Row("hooks", "float64", hooks64),
        Row("functional", "float32", functional32), Row("functional", "float64", functional64),
    ];

    [Fact]
    public void Every_row_within_its_bound_is_agreement()
    {
        var rows = Rows(0.01 * Bound64, 0, 0.1 * Bound32, 0.2 * Bound32);
        var diagnosis = PrecisionDiagnosis.Conclude(rows, Engines, cuda: false);
        Assert.Equal(DiagnosisVerdict.Agreement, diagnosis.Verdict);
        Assert.StartsWith("Agreement:", diagnosis.Sentence, StringComparison.Ordinal);
        Assert.Contains("TF32 does not exist on the CPU", diagnosis.Sentence, StringComparison.Ordinal);
    }

    [Fact]
    public void A_float32_gap_that_vanishes_in_float64_is_precision()
    {
        var rows = Rows(0.01 * Bound64, 0, 3 * Bound32, 0.2 * Bound32);
        var diagnosis = PrecisionDiagnosis.Conclude(rows, Engines, cuda: false);
        Assert.Equal(DiagnosisVerdict.Precision, diagnosis.Verdict);
        Assert.StartsWith("Precision:", diagnosis.Sentence, StringComparison.Ordinal);
    }

    [Fact]
    public void A_gap_that_persists_in_float64_is_logic_and_names_the_engine()
    {
        var diagnosis = PrecisionDiagnosis.Conclude(Rows(0.5, 0, 0.5, 0.2 * Bound32), Engines, cuda: false);
        Assert.Equal(DiagnosisVerdict.Logic, diagnosis.Verdict);
        Assert.Contains("hooks still differs", diagnosis.Sentence, StringComparison.Ordinal);
        Assert.DoesNotContain("functional", diagnosis.Sentence, StringComparison.Ordinal);
    }

    [Fact]
    public void A_TF32_gap_within_the_TF32_bound_is_agreement_and_one_beyond_it_is_precision()
    {
        List<DiagnosisRow> rows(double tf32) =>
        [
            .. Rows(0, 0, 0.1 * Bound32, 0.1 * Bound32),
            Row("oracle", "float32+TF32", 0.1 * BoundTf32),
            Row("hooks", "float32+TF32", tf32), Row("functional", "float32+TF32", 0.1 * BoundTf32),
        ];
        var agreement = PrecisionDiagnosis.Conclude(rows(0.5 * BoundTf32), Engines, cuda: true);
        Assert.Equal(DiagnosisVerdict.Agreement, agreement.Verdict);
        var precision = PrecisionDiagnosis.Conclude(rows(2 * BoundTf32), Engines, cuda: true);
        Assert.Equal(DiagnosisVerdict.Precision, precision.Verdict);
        Assert.Contains("with TF32", precision.Sentence, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(double.NaN)]
    [InlineData(double.PositiveInfinity)]
    public void A_non_finite_float64_error_is_logic_never_agreement(double error)
    {
        var diagnosis = PrecisionDiagnosis.Conclude(Rows(0, error, 0, 0), Engines, cuda: false);
        Assert.Equal(DiagnosisVerdict.Logic, diagnosis.Verdict);
        Assert.Contains("functional still differs", diagnosis.Sentence, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(double.NaN)]
    [InlineData(double.PositiveInfinity)]
    public void A_non_finite_float32_error_is_not_agreement_and_shows_in_the_sentence(double error)
    {
        var diagnosis = PrecisionDiagnosis.Conclude(Rows(0, 0, error, 0.1 * Bound32), Engines, cuda: false);
        Assert.Equal(DiagnosisVerdict.Precision, diagnosis.Verdict);
        Assert.Contains(double.IsNaN(error) ? "NaN" : "Infinity", diagnosis.Sentence, StringComparison.Ordinal);
    }

    [Fact]
    public void An_incomplete_float64_result_is_logic_even_when_its_errors_are_zero()
    {
        var rows = Rows(0, 0, 0, 0);
        rows[2] = Row("hooks", "float64", 0, complete: false);
        var diagnosis = PrecisionDiagnosis.Conclude(rows, Engines, cuda: false);
        Assert.False(rows[2].Within);
        Assert.Equal(DiagnosisVerdict.Logic, diagnosis.Verdict);
        Assert.Contains("hooks", diagnosis.Sentence, StringComparison.Ordinal);
        Assert.Contains("parameters", diagnosis.Sentence, StringComparison.Ordinal);
    }

    [Fact]
    public void The_worst_logic_row_is_the_one_named_even_when_another_is_NaN()
    {
        var diagnosis = PrecisionDiagnosis.Conclude(Rows(0.5, double.NaN, 0, 0), Engines, cuda: false);
        Assert.Equal(DiagnosisVerdict.Logic, diagnosis.Verdict);
        Assert.Contains("hooks and functional still differ", diagnosis.Sentence, StringComparison.Ordinal);
        Assert.Contains("worst NaN", diagnosis.Sentence, StringComparison.Ordinal);
    }

    [Fact]
    public void The_agreement_sentence_gives_each_arithmetics_largest_engine_error_and_the_float32_oracles()
    {
        List<DiagnosisRow> rows =
        [
            Row("oracle", "float32", 0.5 * Bound32),
            Row("hooks", "float32", 0.1 * Bound32), Row("hooks", "float64", 0.01 * Bound64),
            Row("functional", "float32", 0.2 * Bound32), Row("functional", "float64", 0),
        ];
        var sentence = PrecisionDiagnosis.Conclude(rows, Engines, cuda: false).Sentence;
        Assert.Contains($"agrees with the oracle to {E(0.01 * Bound64)}", sentence, StringComparison.Ordinal);
        Assert.Contains($"in float32 to {E(0.2 * Bound32)}", sentence, StringComparison.Ordinal);
        Assert.Contains($"the float32 oracle itself is {E(0.5 * Bound32)}", sentence, StringComparison.Ordinal);
    }

    [Fact]
    public void The_TF32_sentences_give_the_TF32_oracles_error_even_with_one_engine()
    {
        List<DiagnosisRow> rows(double tf32) =>
        [
            Row("oracle", "float32", 0.01 * Bound32), Row("oracle", "float32+TF32", 0.3 * BoundTf32),
            Row("hooks", "float32", 0.1 * Bound32), Row("hooks", "float32+TF32", tf32), Row("hooks", "float64", 0),
        ];
        var precision = PrecisionDiagnosis.Conclude(rows(2 * BoundTf32), ["hooks"], cuda: true);
        Assert.Equal(DiagnosisVerdict.Precision, precision.Verdict);
        Assert.Contains($"with TF32 the engines differ by up to {E(2 * BoundTf32)} (the float32+TF32 oracle by "
            + $"{E(0.3 * BoundTf32)}) and without it by {E(0.1 * Bound32)}", precision.Sentence,
            StringComparison.Ordinal);
        var agreement = PrecisionDiagnosis.Conclude(rows(0.2 * BoundTf32), ["hooks"], cuda: true);
        Assert.Contains($"TF32 moves them by up to {E(0.2 * BoundTf32)} (the oracle by {E(0.3 * BoundTf32)})",
            agreement.Sentence, StringComparison.Ordinal);
    }

    private static string E(double value) => value.ToString("0.0e0", System.Globalization.CultureInfo.InvariantCulture);

    [Fact]
    public void Rows_without_any_float64_engine_row_are_refused()
    {
        var error = Assert.Throws<ArgumentException>(() =>
            PrecisionDiagnosis.Conclude([Row("oracle", "float32", 0)], Engines, cuda: false));
        Assert.Contains("float64", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_run_measures_every_engine_in_float32_and_float64_and_the_oracle_in_float32_and_agrees()
    {
        TestSettings.RequireTorch();
        var settings = new CompareSettings(Zoo.ModelZoo.Mlp, 4, 1, CPU, ScalarType.Float32, Tf32: true,
            LossFunction.CrossEntropy(), [EngineId.Hooks, EngineId.Functional]);
        var steps = new List<string>();
        var diagnosis = PrecisionDiagnosis.Run(settings, steps.Add);

        // No TF32 rows on the CPU even when asked: it does not exist there.
        Assert.Equal(["oracle float32", "hooks float32", "hooks float64", "functional float32", "functional float64"],
            diagnosis.Rows.Select(r => $"{r.Method} {r.Arithmetic}"));
        Assert.Equal(["float64 oracle", "oracle in float32", "hooks in float32", "hooks in float64",
            "functional in float32", "functional in float64"], steps);
        Assert.All(diagnosis.Rows, r =>
        {
            Assert.True(r.Complete && r.Within, $"{r.Method} {r.Arithmetic}: {r.MaxRelativeError}");
            Assert.Equal(TolerancePolicy.ToleranceFor(r.Arithmetic).Relative, r.Tolerance);
            Assert.NotEqual("-", r.WorstParameter);
        });
        Assert.All(diagnosis.Rows.Where(r => r.Arithmetic == Arithmetic.Float64), r =>
            Assert.InRange(r.MaxRelativeError, 0, 1e-12));
        Assert.Equal(DiagnosisVerdict.Agreement, diagnosis.Verdict);
        Assert.Contains("TF32 does not exist on the CPU", diagnosis.Sentence, StringComparison.Ordinal);
    }

    [Fact]
    public void A_row_is_within_when_complete_and_at_most_its_bound_and_never_with_NaN()
    {
        Assert.True(new DiagnosisRow("hooks", Arithmetic.Float64, 0, "-", 1e-10, Complete: true).Within);
        Assert.True(new DiagnosisRow("hooks", Arithmetic.Float64, 1e-10, "w", 1e-10, Complete: true).Within);
        Assert.False(new DiagnosisRow("hooks", Arithmetic.Float64, 2e-10, "w", 1e-10, Complete: true).Within);
        Assert.False(new DiagnosisRow("hooks", Arithmetic.Float64, 0, "-", 1e-10, Complete: false).Within);
        Assert.False(new DiagnosisRow("hooks", Arithmetic.Float64, double.NaN, "w", 1e-10, Complete: true).Within);
    }

    [Fact]
    public void The_CPU_precision_sentence_gives_the_float32_gap_and_the_float32_oracles_own_error()
    {
        // The oracle's row last: the sentence must find it by method and arithmetic, not by position.
        var rows = Rows(0.01 * Bound64, 0, 3 * Bound32, 0.2 * Bound32);
        rows.Add(rows[0] with { MaxRelativeError = 0.02 * Bound32 });
        rows.RemoveAt(0);
        var diagnosis = PrecisionDiagnosis.Conclude(rows, Engines, cuda: false);
        Assert.Equal(DiagnosisVerdict.Precision, diagnosis.Verdict);
        Assert.Equal($"Precision: the disagreement vanishes in float64 (in float64 every engine agrees with the oracle "
            + $"to {E(0.01 * Bound64)}); in float32 the engines differ by up to {E(3 * Bound32)}; the float32 oracle "
            + $"itself is {E(0.02 * Bound32)} from the float64 one.", diagnosis.Sentence);
    }

    [Fact]
    public void A_run_on_a_device_this_machine_lacks_is_refused()
    {
        TestSettings.RequireTorch();
        if (TorchSharp.torch.cuda.is_available()) Assert.Skip("This machine has CUDA.");
        var settings = new CompareSettings(Zoo.ModelZoo.Mlp, 2, 1, new Device(TorchSharp.DeviceType.CUDA, 0),
            ScalarType.Float32, Tf32: false, LossFunction.CrossEntropy(), [EngineId.Hooks]);
        var error = Assert.Throws<PerSampleGradientsException>(() => PrecisionDiagnosis.Run(settings));
        Assert.Equal(Problem.CudaUnavailable, error.Problem);
    }
}
