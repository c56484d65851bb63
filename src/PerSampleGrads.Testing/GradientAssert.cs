using PerSampleGrads.Checking;
using Xunit;
using static TorchSharp.torch;

namespace PerSampleGrads.Testing;

/// <summary>Assertions on per-sample gradients that report every mismatching parameter at once.</summary>
public static class GradientAssert
{
    /// <summary>Names, then shapes, then values within <paramref name="tolerance"/>; returns the comparison.</summary>
    public static GradientComparison Agree(PerSampleGradients actual, PerSampleGradients expected, Tolerance tolerance)
        => Agree(actual, expected, tolerance, 0);

    /// <summary>
    /// A sum over samples (<paramref name="expected"/>) within the policy's tolerance for <paramref name="dtype"/>, its
    /// errors scaled by at least <paramref name="termMagnitude"/>, the summed norms of its terms (see
    /// <see cref="GradientComparison.Compare"/>).
    /// </summary>
    public static GradientComparison AgreeAsSums(PerSampleGradients actual, PerSampleGradients expected,
        ScalarType dtype, double termMagnitude) =>
        Agree(actual, expected, TolerancePolicy.ToleranceFor(dtype), termMagnitude);

    private static GradientComparison Agree(PerSampleGradients actual, PerSampleGradients expected,
        Tolerance tolerance, double termMagnitude)
    {
        var comparison = GradientComparison.Compare(actual, expected, tolerance, termMagnitude);
        Passed(comparison);
        return comparison;
    }

    /// <summary>Fails with every mismatch of <paramref name="comparison"/>, computed by the caller.</summary>
    public static void Passed(GradientComparison comparison)
    {
        if (!comparison.Passed) Assert.Fail(comparison.Describe());
    }

    /// <summary>Within the policy's tolerance for <paramref name="dtype"/> (IEEE arithmetic).</summary>
    public static GradientComparison Agree(PerSampleGradients actual, PerSampleGradients expected, ScalarType dtype) =>
        Agree(actual, expected, TolerancePolicy.ToleranceFor(dtype));

    /// <summary>Bit-for-bit equality of every parameter.</summary>
    public static void Identical(PerSampleGradients actual, PerSampleGradients expected)
    {
        Assert.Equal(expected.Names, actual.Names);
        var different = expected.Names.Where(n =>
        {
            using var scope = NewDisposeScope();
            return !actual[n].shape.SequenceEqual(expected[n].shape)
                || !actual[n].equal(expected[n]).all().item<bool>();
        }).ToList();
        Assert.True(different.Count == 0, $"{actual.Method} and {expected.Method} differ in: " +
            $"{string.Join(", ", different)}");
    }
}
