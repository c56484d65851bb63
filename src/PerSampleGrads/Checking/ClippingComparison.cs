using static TorchSharp.torch;

namespace PerSampleGrads.Checking;

/// <summary>
/// A clipping result against a reference (normally the definition applied to the float64 oracle): the per-sample norms
/// (total and per parameter, <c>[N]</c> each) and the clipped sums (per parameter), each checked by the one comparer
/// (<see cref="GradientComparison"/>) under the same tolerance.
/// </summary>
/// <param name="Norms">Norms: entry <see cref="Total"/> for the total, one per parameter.</param>
/// <param name="ClippedSums">Clipped sums, as results of one "sample".</param>
public sealed record ClippingComparison(GradientComparison Norms, GradientComparison ClippedSums)
{
    /// <summary>Name of the total norm's entry.</summary>
    public const string Total = "(total norm)";

    /// <summary>Norms and clipped sums within tolerance.</summary>
    public bool Passed => Norms.Passed && ClippedSums.Passed;

    /// <summary>Every problem, one per line; empty when passed.</summary>
    public string Describe() => Passed ? string.Empty : $"norms: {Norms.Describe()}clipped sums: " +
        $"{ClippedSums.Describe()}";

    /// <summary>Compares <paramref name="actual"/> with <paramref name="expected"/> under <paramref
    /// name="tolerance"/>.</summary>
    public static ClippingComparison Compare(ClippedGradients actual, ClippedGradients expected, Tolerance tolerance)
    {
        using var actualNorms = NormsOf(actual);
        using var expectedNorms = NormsOf(expected);
        using var actualSums = SumsOf(actual);
        using var expectedSums = SumsOf(expected);
        return new ClippingComparison(GradientComparison.Compare(actualNorms, expectedNorms, tolerance),
            GradientComparison.Compare(actualSums, expectedSums, tolerance, ClippedMagnitude(expected)));
    }

    /// <summary>
    /// <c>sum_i f_i |g_i|</c>: the sum of the clipped per-sample gradients' norms, the magnitude of the terms a clipped
    /// sum adds up (the scale its rounding follows when the terms cancel; see
    /// <see cref="GradientComparison.Compare"/>).
    /// </summary>
    public static double ClippedMagnitude(ClippedGradients result)
    {
        using var scope = NewDisposeScope();
        return (result.Norms.to(ScalarType.Float64) * result.ClipFactors.to(ScalarType.Float64)).sum()
            .item<double>();
    }

    /// <summary>The norms as a result with one entry per parameter and <see cref="Total"/> first (views, no
    /// copies).</summary>
    public static PerSampleGradients NormsOf(ClippedGradients result)
    {
        using var scope = NewDisposeScope();
        var entries = result.Names.Select(n => (n, result.ParameterNorms(n).alias())).Prepend((Total,
            result.Norms.alias()));
        return new PerSampleGradients($"{result.Method} norms", result.BatchSize, entries.ToList());
    }

    /// <summary>The clipped sums as a result of one "sample" (<c>[1, ...parameter shape]</c>, views).</summary>
    public static PerSampleGradients SumsOf(ClippedGradients result)
    {
        using var scope = NewDisposeScope();
        var entries = result.Names.Select(n => (n, result[n].unsqueeze(0))).ToList();
        return new PerSampleGradients($"{result.Method} clipped sums", 1, entries);
    }
}
