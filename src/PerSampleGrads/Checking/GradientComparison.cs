using System.Globalization;
using System.Text;
using static TorchSharp.torch;

namespace PerSampleGrads.Checking;

/// <summary>
/// One parameter's comparison.
/// </summary>
/// <param name="Name">Qualified parameter name.</param>
/// <param name="ExpectedShape">Shape of the reference, <c>[N, ...]</c>.</param>
/// <param name="ActualShape">Shape of the result checked.</param>
/// <param name="MaxAbsoluteError">Largest |actual - expected| (in the loss's units per parameter unit); NaN when the
/// shapes differ.</param>
/// <param name="RelativeError">MaxAbsoluteError / <see cref="GradientComparison.ScaleOf"/> (see
/// <see cref="TolerancePolicy"/>).</param>
/// <param name="WorstSample">The sample holding the largest absolute error (-1 when shapes differ).</param>
/// <param name="ExpectedNorm">Mean over samples of the reference's per-sample L2 norm.</param>
/// <param name="Tolerance">The bound that applied.</param>
public sealed record ParameterComparison(string Name, long[] ExpectedShape, long[] ActualShape, double MaxAbsoluteError,
    double RelativeError, long WorstSample, double ExpectedNorm, double Tolerance)
{
    /// <summary>Whether the engine's tensor has the reference's shape.</summary>
    public bool ShapesMatch => ExpectedShape.SequenceEqual(ActualShape);

    /// <summary>Shapes agree and the relative error is within tolerance (NaN never passes).</summary>
    public bool Passed => ShapesMatch && RelativeError <= Tolerance;

    /// <summary>One line for failure messages.</summary>
    public string Describe() => ShapesMatch
        ? string.Create(CultureInfo.InvariantCulture,
            $"{Name}: relative error {RelativeError:0.###e0} > tolerance {Tolerance:0.#e0} "
            + $"(max abs error {MaxAbsoluteError:0.###e0}, worst sample {WorstSample}, "
            + $"shape [{string.Join(", ", ExpectedShape)}])")
        : $"{Name}: shape [{string.Join(", ", ActualShape)}], expected [{string.Join(", ", ExpectedShape)}]";
}

/// <summary>
/// The one comparer: checks names, then shapes, then values, of a result against a reference, and reports every
/// mismatch at once.
/// </summary>
public sealed record GradientComparison(string Actual, string Expected, Tolerance Tolerance,
    IReadOnlyList<ParameterComparison> Parameters, IReadOnlyList<string> Missing, IReadOnlyList<string> Unexpected)
{
    /// <summary>Same names, same shapes, every parameter within tolerance.</summary>
    public bool Passed => Complete && Parameters.All(p => p.Passed);

    /// <summary>Same names and shapes as the reference, whatever the values.</summary>
    public bool Complete => Missing.Count == 0 && Unexpected.Count == 0 && Parameters.All(p => p.ShapesMatch);

    /// <summary>
    /// The largest relative error over parameters with matching shapes (0 if none); NaN when any of them is NaN
    /// (LINQ's <c>Max</c> would skip a NaN and report the finite parameters' error as the largest).
    /// </summary>
    public double MaxRelativeError => Parameters.Where(p => p.ShapesMatch).Select(p => p.RelativeError)
        .Aggregate(0.0, Math.Max);

    /// <summary>The parameter with the largest relative error (or the first shape mismatch).</summary>
    public ParameterComparison? Worst =>
        Parameters.FirstOrDefault(p => !p.ShapesMatch)
        ?? Parameters.OrderByDescending(p => double.IsNaN(p.RelativeError) ? double.PositiveInfinity : p.RelativeError)
            .FirstOrDefault();

    /// <summary>
    /// Compares <paramref name="actual"/> with <paramref name="expected"/> under <paramref name="tolerance"/>.
    /// </summary>
    /// <param name="actual">The result checked.</param>
    /// <param name="expected">The reference.</param>
    /// <param name="tolerance">The bound.</param>
    /// <param name="termMagnitude">
    /// When the reference is a sum over samples (a batch gradient, a clipped sum): <c>sum_i |x_i|</c>, the sum of the
    /// L2 norms of the terms summed. Rounding in a sum follows the terms, not the sum
    /// (<c>|fl(sum x_i) - sum x_i| &lt;= gamma_n sum |x_i|</c>), and terms can cancel to a sum that is rounding noise
    /// only; the scale floor then applies to this magnitude when it exceeds the reference's largest value. 0 otherwise.
    /// </param>
    public static GradientComparison Compare(PerSampleGradients actual, PerSampleGradients expected,
        Tolerance tolerance, double termMagnitude = 0)
    {
        var missing = expected.Names.Where(n => !actual.Contains(n)).ToList();
        var unexpected = actual.Names.Where(n => !expected.Contains(n)).ToList();
        double largest = Math.Max(termMagnitude,
            expected.Entries.Select(e => MaxAbs(e.Gradient)).DefaultIfEmpty(0).Max());
        var parameters = new List<ParameterComparison>();
        foreach (var name in expected.Names.Where(actual.Contains))
            parameters.Add(CompareOne(name, actual[name], expected[name], tolerance, largest));
        return new GradientComparison(actual.Method, expected.Method, tolerance, parameters, missing, unexpected);
    }

    /// <summary>
    /// The scale a parameter's errors are divided by: its largest reference value, but at least
    /// <paramref name="floor"/> (<see cref="Tolerance.ScaleFloor"/>) times the largest reference value of the whole
    /// model. A parameter whose exact gradient is zero (a bias cancelled by a following GroupNorm with one channel per
    /// group, or by InstanceNorm) holds only rounding noise, whose size follows the computation's scale, not its own.
    /// </summary>
    public static double ScaleOf(double parameterMax, double modelMax, double floor) =>
        Math.Max(parameterMax, floor * modelMax);

    private static double MaxAbs(Tensor t)
    {
        using var scope = NewDisposeScope();
        return t.abs().max().to(ScalarType.Float64).item<double>();
    }

    private static ParameterComparison CompareOne(string name, Tensor actual, Tensor expected, Tolerance policy,
        double modelMax)
    {
        double tolerance = policy.Relative;
        using var scope = NewDisposeScope();
        var e = expected.to(ScalarType.Float64);
        double norm = e.reshape(e.shape[0], -1).norm(1).mean().item<double>();
        if (!actual.shape.SequenceEqual(expected.shape))
            return new ParameterComparison(name, expected.shape, actual.shape, double.NaN, double.NaN, -1, norm,
                tolerance);
        var a = actual.to(ScalarType.Float64, e.device);
        var perSample = (a - e).abs().reshape(e.shape[0], -1).max(1).values;
        var worst = perSample.argmax().item<long>();
        double maxAbs = perSample[worst].item<double>();
        double scale = ScaleOf(e.abs().max().item<double>(), modelMax, policy.ScaleFloor);
        double relative = scale > 0 ? maxAbs / scale : maxAbs == 0 ? 0 : double.PositiveInfinity;
        return new ParameterComparison(name, expected.shape, actual.shape, maxAbs, relative, worst, norm, tolerance);
    }

    /// <summary>Every problem, one per line; empty when passed.</summary>
    public string Describe()
    {
        var text = new StringBuilder();
        if (Passed) return string.Empty;
        text.AppendLine(CultureInfo.InvariantCulture,
            $"{Actual} vs {Expected}: tolerance {Tolerance} ({Tolerance.Reason})");
        foreach (var m in Missing) text.AppendLine(CultureInfo.InvariantCulture, $"  {m}: missing from {Actual}");
        foreach (var u in Unexpected) text.AppendLine(CultureInfo.InvariantCulture, $"  {u}: not in {Expected}");
        foreach (var p in Parameters.Where(p => !p.Passed)) text.AppendLine("  " + p.Describe());
        return text.ToString();
    }
}
