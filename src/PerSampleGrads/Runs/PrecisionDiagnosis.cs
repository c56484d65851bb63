using System.Globalization;
using TorchSharp;
using PerSampleGrads.Oracle;
using PerSampleGrads.Checking;
using static TorchSharp.torch;

namespace PerSampleGrads.Runs;

/// <summary>What a diagnosis concluded.</summary>
public enum DiagnosisVerdict
{
    /// <summary>Every engine is within tolerance in every arithmetic tried.</summary>
    Agreement,
    /// <summary>The engines differ in float32 (or with TF32) but agree in float64: rounding, not a bug.</summary>
    Precision,
    /// <summary>An engine still differs in float64, where rounding is far below the tolerance: a logic error.</summary>
    Logic,
}

/// <summary>One measured comparison of the diagnosis.</summary>
/// <param name="Method">What was run: an engine name or <c>oracle</c>.</param>
/// <param name="Arithmetic">How.</param>
/// <param name="MaxRelativeError">Largest per-parameter relative error against the float64 oracle.</param>
/// <param name="WorstParameter">Where.</param>
/// <param name="Tolerance">The policy's bound for that arithmetic.</param>
/// <param name="Complete">Every parameter present in both with the same shape (a missing, extra or misshapen
/// parameter is never within the bound, whatever the errors of the others).</param>
public sealed record DiagnosisRow(string Method, Arithmetic Arithmetic, double MaxRelativeError, string WorstParameter,
    double Tolerance, bool Complete)
{
    /// <summary>Complete and within the bound (a NaN error is not).</summary>
    public bool Within => Complete && MaxRelativeError <= Tolerance;
}

/// <summary>The precision diagnosis: the rows measured and one sentence that attributes the gap.</summary>
public sealed record PrecisionDiagnosis(IReadOnlyList<DiagnosisRow> Rows, DiagnosisVerdict Verdict, string Sentence)
{
    /// <summary>
    /// Reruns the comparison to attribute any disagreement: each engine in float32 with TF32 off (and on, on CUDA) and
    /// in float64, and the oracle itself in float32 (and with TF32), all against the float64 oracle.
    /// </summary>
    public static PrecisionDiagnosis Run(CompareSettings settings, Action<string>? status = null)
    {
        BatchValidator.RequireAvailable(settings.Device);
        bool cuda = settings.Device.type == DeviceType.CUDA;
        var rows = new List<DiagnosisRow>();
        using var model32 = CompareRun.Build(settings, ScalarType.Float32);
        using var model64 = CompareRun.Build(settings, ScalarType.Float64);
        var (x32, y32) = CompareRun.Batch(settings, ScalarType.Float32);
        var (x64, y64) = CompareRun.Batch(settings, ScalarType.Float64);

        status?.Invoke("float64 oracle");
        using var truth = new PerSampleGradientOracle().Compute(model64, x64, y64, settings.Loss);

        void Measure(string method, Arithmetic arithmetic, IPerSampleGradientMethod m)
        {
            status?.Invoke($"{method} in {arithmetic}");
            var (model, x, y) = arithmetic.DType == ScalarType.Float64 ? (model64, x64, y64) : (model32, x32, y32);
            using var result = m.Compute(model, x, y, settings.Loss);
            var tolerance = TolerancePolicy.ToleranceFor(arithmetic);
            var comparison = GradientComparison.Compare(result, truth, tolerance);
            rows.Add(new DiagnosisRow(method, arithmetic, comparison.MaxRelativeError, comparison.Worst?.Name ?? "-",
                tolerance.Relative, comparison.Complete));
        }

        Arithmetic[] oracleArithmetics = cuda ? [Arithmetic.Float32, Arithmetic.Float32Tf32] : [Arithmetic.Float32];
        foreach (var arithmetic in oracleArithmetics)
            Measure("oracle", arithmetic,
                new PerSampleGradientOracle(new OracleOptions { Tf32 = arithmetic.Tf32Mode }));
        Arithmetic[] engineArithmetics = [.. oracleArithmetics, Arithmetic.Float64];
        foreach (var engine in settings.PerSampleEngines)
            foreach (var arithmetic in engineArithmetics)
                Measure(engine.Name, arithmetic, EngineCatalogue.Create(engine, settings.Device, arithmetic.Tf32Mode));
        return Conclude(rows, [.. settings.PerSampleEngines.Select(e => e.Name)], cuda);
    }

    /// <summary>The verdict and its sentence from measured rows.</summary>
    /// <exception cref="ArgumentException">
    /// No engine was measured in float64 (the verdict rests on those rows).
    /// </exception>
    public static PrecisionDiagnosis Conclude(IReadOnlyList<DiagnosisRow> rows, IReadOnlyList<string> engines,
        bool cuda)
    {
        static string E(double v) => v.ToString("0.0e0", CultureInfo.InvariantCulture);
        var float64 = rows.Where(r => r.Arithmetic == Arithmetic.Float64 && r.Method != "oracle").ToList();
        var float32 = rows.Where(r => r.Arithmetic == Arithmetic.Float32 && r.Method != "oracle").ToList();
        var tf32 = rows.Where(r => r.Arithmetic == Arithmetic.Float32Tf32 && r.Method != "oracle").ToList();
        var oracle32 = rows.FirstOrDefault(r => r.Method == "oracle" && r.Arithmetic == Arithmetic.Float32);
        var oracleTf32 = rows.FirstOrDefault(r => r.Method == "oracle" && r.Arithmetic == Arithmetic.Float32Tf32);
        if (float64.Count == 0)
            throw new ArgumentException(
                "The diagnosis needs each engine's float64 row; the rows hold none "
                + $"(engines: {string.Join(", ", engines)}).", nameof(rows));

        var logic = float64.Where(r => !r.Within).ToList();
        if (logic.Count > 0)
        {
            var worst = logic.MaxBy(r => Severity(r.MaxRelativeError))!;
            var incomplete = logic.Where(r => !r.Complete).Select(r => r.Method).ToList();
            string missing = incomplete.Count == 0 ? ""
                : $"; {string.Join(" and ", incomplete)} returned other parameters or shapes than the oracle";
            return new PrecisionDiagnosis(rows, DiagnosisVerdict.Logic,
                $"Logic: {string.Join(" and ", logic.Select(r => r.Method))} "
                + $"still differ{(logic.Count == 1 ? "s" : "")} "
                + $"from the oracle in float64 (worst {E(worst.MaxRelativeError)} in {worst.WorstParameter}, where "
                + $"rounding stays below {E(worst.Tolerance)}{missing}), so the gap is not rounding: look at that "
                + "parameter's rule.");
        }

        string f64 = $"in float64 every engine agrees with the oracle to {E(Largest(float64))}";
        string floor = oracle32 is null ? ""
            : $"; the float32 oracle itself is {E(oracle32.MaxRelativeError)} from the float64 one";
        if (float32.Any(r => !r.Within) || tf32.Any(r => !r.Within))
        {
            string tf32Part = tf32.Count > 0
                ? $"; with TF32 the engines differ by up to {E(Largest(tf32))} (the float32+TF32 oracle by "
                    + $"{E(oracleTf32?.MaxRelativeError ?? double.NaN)}) and without it by {E(Largest(float32))}"
                : $"; in float32 the engines differ by up to {E(Largest(float32))}";
            return new PrecisionDiagnosis(rows, DiagnosisVerdict.Precision,
                $"Precision: the disagreement vanishes in float64 ({f64}){tf32Part}{floor}.");
        }

        string tf32Note = tf32.Count > 0
            ? $"; TF32 moves them by up to {E(Largest(tf32))} (the oracle by "
                + $"{E(oracleTf32?.MaxRelativeError ?? double.NaN)}), within its tolerance"
            : cuda ? "" : "; TF32 does not exist on the CPU";
        return new PrecisionDiagnosis(rows, DiagnosisVerdict.Agreement,
            $"Agreement: {f64}, in float32 to {E(Largest(float32))}{floor}{tf32Note}: "
            + "what differences remain are rounding.");
    }

    // A NaN error is worse than any number (LINQ's Max and MaxBy rank it below every number).
    private static double Severity(double error) => double.IsNaN(error) ? double.PositiveInfinity : error;

    // The largest error of the rows, NaN when any is NaN (0 when there are none).
    private static double Largest(IEnumerable<DiagnosisRow> rows) =>
        rows.Select(r => r.MaxRelativeError).Aggregate(0.0, Math.Max);
}
