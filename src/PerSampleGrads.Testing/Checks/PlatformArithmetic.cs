using System.Globalization;
using PerSampleGrads.Cases;
using PerSampleGrads.Checking;
using PerSampleGrads.Oracle;
using PerSampleGrads.Zoo;
using Xunit;
using static TorchSharp.torch;

namespace PerSampleGrads.Testing.Checks;

/// <summary>
/// Whether this machine's libtorch computes a case's model right in float32, checked without any engine: the plain
/// batch gradient of <c>sum_i L_i</c> (one forward and one backward of the whole batch, what ordinary training runs)
/// in float32 against the same in float64, under the float32 tolerance.
/// </summary>
/// <remarks>
/// An engine that captures the model's own forward (hooks, clipping) inherits any float32 kernel defect of the
/// machine, while the oracle (one sample at a time) and the functional engine (one grouped call) take other kernels.
/// One CI machine gave a float32 <c>ConvTranspose1d(3, 4, 3)</c> over a batch of 4 results off by 19% to 129%, NaN
/// in one run, while every float64 test and the same test on other machines passed. A case whose plain float32
/// training step is already wrong cannot judge an engine in float32: the test is skipped, with the measured error, and
/// never passed. The check runs before every float32 comparison (a defect that reads uninitialised memory need not
/// show every time), on fresh copies of the case, so the model under test is not touched. The kit's catalogue tests
/// (<see cref="PerSampleGradientMethodTests"/>) run it too.
/// </remarks>
public static class PlatformArithmetic
{
    /// <summary>Skips the calling test where <paramref name="dtype"/> is float32 and this machine computes the case's
    /// float32 batch gradient wrong (see <see cref="Float32Defect"/>).</summary>
    public static void SkipWhereFloat32IsWrong(GradientCase gradientCase, ScalarType dtype, Device? device = null,
        PerSampleGradients? float64Oracle = null)
    {
        if (dtype != ScalarType.Float32) return;
        var defect = Float32Defect(gradientCase, device, float64Oracle);
        if (defect is not null) Assert.Skip(defect);
    }

    /// <summary>Why this machine's float32 batch gradient of the case is wrong, or null when it is right.</summary>
    /// <param name="gradientCase">The case.</param>
    /// <param name="device">Where to compute (CPU when null).</param>
    /// <param name="float64Oracle">The case's float64 oracle when the caller has it (computed here when null): its
    /// per-sample norms give the scale of the batch gradient's terms.</param>
    public static string? Float32Defect(GradientCase gradientCase, Device? device = null,
        PerSampleGradients? float64Oracle = null)
    {
        using var single = gradientCase.Create(ScalarType.Float32, device);
        using var exact = gradientCase.Create(ScalarType.Float64, device);
        using var actual = GradientChecks.BatchGradientOfTheSummedLoss(single);
        using var expected = GradientChecks.BatchGradientOfTheSummedLoss(exact);
        using var computed = float64Oracle is null ? exact.Run(GradientChecks.Float64Oracle(exact)) : null;
        using var unclipped = ClippedGradients.FromPerSampleGradients(float64Oracle ?? computed!,
            double.PositiveInfinity);
        var comparison = GradientComparison.Compare(actual, expected,
            TolerancePolicy.ToleranceFor(ScalarType.Float32), ClippingComparison.ClippedMagnitude(unclipped));
        if (comparison.Passed) return null;
        string error = comparison.MaxRelativeError.ToString("0.###e0", CultureInfo.InvariantCulture);
        return $"This machine's libtorch computes {gradientCase.Id}'s plain float32 batch gradient wrong (relative " +
            $"error {error} against float64, in {comparison.Worst?.Name}): a platform defect that no method can be " +
            "judged against in float32 (PlatformArithmetic).";
    }
}
