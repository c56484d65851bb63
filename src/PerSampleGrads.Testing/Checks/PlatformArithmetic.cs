using System.Globalization;
using PerSampleGrads.Cases;
using PerSampleGrads.Checking;
using PerSampleGrads.Engines.Probing;
using PerSampleGrads.Oracle;
using PerSampleGrads.Zoo;
using Xunit;
using TorchSharp;
using TorchSharp.Modules;
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
/// in one run, while every float64 test and the same test on other machines passed (docs/testing.md). A float32
/// comparison that fails on a case whose plain float32 training step this machine computes wrong says nothing about
/// the method: it is skipped (a property's case discarded) with the measured error, never passed. The check runs only
/// after a float32 failure, <see cref="Repeats"/> times (a defect that reads uninitialised memory need not show every
/// time), on fresh copies of the case, so the model under test is not touched.
/// </remarks>
public static class PlatformArithmetic
{
    /// <summary>
    /// Why a float32 comparison on <paramref name="model"/> cannot judge a method here: the model holds a
    /// convolution and <see cref="Float32Kernels.ConvolutionDefect"/> found this machine's float32 convolutions wrong
    /// (a defect that shows only in some runs and only along some paths, so no single run of the model can rule it
    /// out). Null where the model has no convolution or the machine computes them right.
    /// </summary>
    public static string? Float32ConvolutionExcuse(nn.Module model) =>
        Float32Kernels.ConvolutionDefect is { } defect
        && ModelInspection.AllModules(model).Any(m => m.Module is Convolution)
            ? $"This machine's libtorch computes float32 convolutions wrong ({defect}): no method can be judged on " +
              "a model with convolutions in float32 here (PlatformArithmetic)."
            : null;

    /// <summary>How many times the plain float32 batch gradient is recomputed before a float32 failure is put down to
    /// the machine: an intermittent defect shows in at least one run.</summary>
    public const int Repeats = 50;

    /// <summary>
    /// Why a failed comparison in <paramref name="dtype"/> says nothing about the method: float32, and this machine
    /// computes the case's plain float32 batch gradient wrong in at least one of <see cref="Repeats"/> runs. Null when
    /// the failure stands (float64, or the machine computed it right every time).
    /// </summary>
    /// <remarks>The case is also checked with two more samples: engines run larger batches of it too (the
    /// sample-separation probe), and a defect may need more than one sample to show.</remarks>
    public static string? ExcuseForFailure(GradientCase gradientCase, ScalarType dtype, Device? device = null,
        PerSampleGradients? float64Oracle = null) =>
        dtype != ScalarType.Float32 ? null
        : Float32Defect(gradientCase, device, float64Oracle, Repeats)
            ?? Float32Defect(gradientCase with { BatchSize = gradientCase.BatchSize + 2 }, device, null, Repeats);

    /// <summary>Why this machine's float32 batch gradient of the case is wrong in one of <paramref name="repeats"/>
    /// runs, or null when it is right every time.</summary>
    /// <param name="gradientCase">The case.</param>
    /// <param name="device">Where to compute (CPU when null).</param>
    /// <param name="float64Oracle">The case's float64 oracle when the caller has it (computed here when null): its
    /// per-sample norms give the scale of the batch gradient's terms.</param>
    /// <param name="repeats">Runs of the float32 batch gradient.</param>
    public static string? Float32Defect(GradientCase gradientCase, Device? device = null,
        PerSampleGradients? float64Oracle = null, int repeats = 1)
    {
        using var exact = gradientCase.Create(ScalarType.Float64, device);
        using var expected = GradientChecks.BatchGradientOfTheSummedLoss(exact);
        using var computed = float64Oracle is null ? exact.Run(GradientChecks.Float64Oracle(exact)) : null;
        using var unclipped = ClippedGradients.FromPerSampleGradients(float64Oracle ?? computed!,
            double.PositiveInfinity);
        double magnitude = ClippingComparison.ClippedMagnitude(unclipped);
        using var single = gradientCase.Create(ScalarType.Float32, device);
        for (int run = 1; run <= repeats; run++)
        {
            using var actual = GradientChecks.BatchGradientOfTheSummedLoss(single);
            var comparison = GradientComparison.Compare(actual, expected,
                TolerancePolicy.ToleranceFor(ScalarType.Float32), magnitude);
            if (comparison.Passed) continue;
            string error = comparison.MaxRelativeError.ToString("0.###e0", CultureInfo.InvariantCulture);
            return $"This machine's libtorch computes {gradientCase.Id}'s plain float32 batch gradient wrong (N = " +
                $"{gradientCase.BatchSize}, run {run} of {repeats}: relative error {error} against float64, in " +
                $"{comparison.Worst?.Name}): a platform defect that no method can be judged against in float32 " +
                "(PlatformArithmetic).";
        }
        return null;
    }
}
