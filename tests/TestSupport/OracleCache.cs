using System.Collections.Concurrent;
using PerSampleGrads.Cases;
using PerSampleGrads.Zoo;
using PerSampleGrads.Oracle;
using static TorchSharp.torch;

namespace PerSampleGrads.Tests;

/// <summary>
/// The float64 oracle's answer per case, computed once per test process: several engines and dtypes are checked
/// against the same reference, and ResNet-18's float64 oracle takes seconds on a CPU.
/// </summary>
public static class OracleCache
{
    private static readonly ConcurrentDictionary<string, PerSampleGradients> Answers = new();

    /// <summary>The float64 oracle's per-sample gradients for <paramref name="gradientCase"/> (do not
    /// dispose).</summary>
    public static PerSampleGradients Float64(GradientCase gradientCase) => Answers.GetOrAdd(gradientCase.Id, _ =>
    {
        using var problem = gradientCase.Create(ScalarType.Float64, TestSettings.Device);
        return problem.Run(new PerSampleGradientOracle());
    });
}
