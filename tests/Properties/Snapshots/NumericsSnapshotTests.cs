using System.Globalization;
using PerSampleGrads.Cases;
using PerSampleGrads.Engines.Functional;
using PerSampleGrads.Engines.Hooks;
using PerSampleGrads.Oracle;
using PerSampleGrads.Tests.Snapshots;
using PerSampleGrads.Checking;
using static TorchSharp.torch;

namespace PerSampleGrads.Tests;

/// <summary>
/// The numbers behind every zoo model and a few catalogue cases, in float64 on the CPU at their fixed seeds, as JSON
/// files under <c>snapshots/</c>: a change in numerics shows in review as a small diff. Recorded: each parameter's
/// name and shape, each sample's gradient norm per parameter (the oracle's, 6 significant digits), and each engine's
/// largest relative error against the oracle, bucketed.
/// </summary>
[Trait("Category", "Snapshot")]
public sealed class NumericsSnapshotTests
{
    public NumericsSnapshotTests() => TestSettings.RequireTorch();

    /// <summary>Zoo models and catalogue cases covering every rule: convolution options, GroupNorm, LayerNorm on
    /// tokens, Embedding, sharing, value losses.</summary>
    public static TheoryData<string> Cases => new(
        [.. CaseCatalogue.Zoo.Select(c => c.Id),
         "conv2d-k3-s2-d2-g2-B5-ce-mean", "conv1d-same-k4-B3-ce-mean", "groupnorm-g3-B3-ce-sum",
             "layernorm-3d-tokens-B4-ce-sum",
         "embedding-pad0-B5-ce-mean", "shared-linear-twice-B4-ce-mean", "mse-multi-output-B4-mse-sum"]);

    [Theory]
    [MemberData(nameof(Cases))]
    public void Float64_numerics_match_the_committed_snapshot(string caseId)
    {
        using var problem = CaseCatalogue.Get(caseId).Create(ScalarType.Float64);
        using var oracle = problem.Run(new PerSampleGradientOracle());
        using var hooks = problem.Run(new HookEngine());
        using var functional = problem.Run(new FunctionalEngine());
        var tolerance = TolerancePolicy.ToleranceFor(ScalarType.Float64);

        var snapshot = new NumericsSnapshot(caseId, ElementTypes.Name(ScalarType.Float64), oracle.BatchSize,
            Parameters(oracle, tolerance),
            new EngineErrors(Bucket(GradientComparison.Compare(hooks, oracle, tolerance).MaxRelativeError),
                Bucket(GradientComparison.Compare(functional, oracle, tolerance).MaxRelativeError)));

        SnapshotFolder.Match(snapshot, caseId);
    }

    /// <summary>One snapshot file.</summary>
    public sealed record NumericsSnapshot(string Case, string DType, long BatchSize,
        IReadOnlyList<ParameterNumerics> Parameters,
        EngineErrors MaxRelativeErrorAgainstTheOracle);

    /// <summary>A parameter: name, shape, and each sample's gradient norm.</summary>
    public sealed record ParameterNumerics(string Name, string Shape, double[] PerSampleGradientNorms);

    /// <summary>Each engine's bucketed largest relative error against the oracle.</summary>
    public sealed record EngineErrors(string Hooks, string Functional);

    // Norms below the float64 tolerance times the model's largest norm are rounding noise of a gradient that vanishes
    // in exact arithmetic (a bias cancelled by a normalisation): written as 0, because their digits are not stable.
    private static List<ParameterNumerics> Parameters(PerSampleGradients oracle, Tolerance tolerance)
    {
        using var scope = NewDisposeScope();
        var norms = oracle.Entries.Select(e => (e.Name, Shape: e.Gradient.shape[1..],
            Norms: e.Gradient.reshape(e.Gradient.shape[0], -1).norm(1).data<double>().ToArray())).ToList();
        double noise = tolerance.Relative * norms.SelectMany(n => n.Norms).DefaultIfEmpty(0).Max();
        return [.. norms.Select(n => new ParameterNumerics(n.Name, $"[{string.Join(", ", n.Shape)}]",
            [.. n.Norms.Select(v => v <= noise ? 0 : SixSignificantDigits(v))]))];
    }

    private static double SixSignificantDigits(double value) =>
        double.Parse(value.ToString("G6", CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);

    /// <summary>
    /// The error's bucket, two decades wide with edges at odd powers of ten: <c>&lt;=1e-13</c> holds exact agreement
    /// and float64 rounding (measured 0 to 1.4e-14 over the catalogue), <c>&lt;=1e-11</c> and up show a loss of
    /// precision, above <c>1e-9</c> also a failure of the float64 tolerance (1e-10). Edges far from the measured
    /// values keep the files stable where the last bits of a sum move (another CPU, another thread count).
    /// </summary>
    public static string Bucket(double relativeError)
    {
        for (int exponent = -13; exponent <= -1; exponent += 2)
            if (relativeError <= Math.Pow(10, exponent)) return $"<=1e{exponent}";
        return ">1e-1";
    }
}
