using PerSampleGrads.Verification;
using Xunit;
using static TorchSharp.torch;

namespace PerSampleGrads.Tests;

/// <summary>Assertions on clipping results that report every mismatching norm and clipped sum at once.</summary>
public static class ClippingAssert
{
    /// <summary>Norms and clipped sums within the policy's tolerance for <paramref name="dtype"/>.</summary>
    public static ClippingComparison Agree(ClippedGradients actual, ClippedGradients expected, ScalarType dtype)
    {
        var comparison = ClippingComparison.Compare(actual, expected, TolerancePolicy.ToleranceFor(dtype));
        if (!comparison.Passed) Assert.Fail(comparison.Describe());
        return comparison;
    }

    /// <summary>A bound that clips about half the samples: the lower median of the reference's norms.</summary>
    public static double MedianBound(PerSampleGradients reference)
    {
        using var definition = ClippedGradients.FromPerSampleGradients(reference, double.PositiveInfinity);
        using var scope = NewDisposeScope();
        double median = definition.Norms.to(ScalarType.Float64).median().item<double>();
        // An all-zero gradient (a model whose loss ignores its parameters) clips nothing whatever the bound.
        return median > 0 ? median : 1.0;
    }
}
