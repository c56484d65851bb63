using PerSampleGrads.Checking;
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
        Passed(comparison);
        return comparison;
    }

    /// <summary>Fails with every mismatch of <paramref name="comparison"/>, computed by the caller.</summary>
    public static void Passed(ClippingComparison comparison)
    {
        if (!comparison.Passed) Assert.Fail(comparison.Describe());
    }

    /// <summary>A bound that clips about half the samples: the median of the reference's norms (1 if all are
    /// 0).</summary>
    public static double MedianBound(PerSampleGradients reference) => Runs.CompareRun.MedianNorm(reference);
}
