using System.Globalization;
using PerSampleGrads.Checking;
using static TorchSharp.torch;

namespace PerSampleGrads.Testing;

/// <summary>How the kit checks a method: what it claims, in which dtype and on which device, and how hard.</summary>
public sealed record KitOptions
{
    /// <summary>The environment variable that pins the properties' seed (what a failure prints).</summary>
    public const string SeedVariable = "PSG_KIT_SEED";

    /// <summary>Every layer and pattern, float32 on the CPU, 50 cases per property.</summary>
    public static KitOptions Default { get; } = new();

    /// <summary>The layers and patterns the method supports: the catalogue and the generators ask only these.</summary>
    public MethodClaims Claims { get; init; } = MethodClaims.Everything;

    /// <summary>
    /// The dtype the method computes in for the comparison with the float64 oracle (float32 or float64); the exact
    /// relations (sum, permutation, duplication, mean/sum) are always checked in float64.
    /// </summary>
    public ScalarType DType { get; init; } = ScalarType.Float32;

    /// <summary>The device models and batches are put on; null is the CPU.</summary>
    public Device? Device { get; init; }

    /// <summary>Whether the method's float32 products use TF32 (NVIDIA tensor cores; widens the float32
    /// tolerance).</summary>
    public bool Tf32 { get; init; }

    /// <summary>Generated cases per property.</summary>
    public int PropertyRuns { get; init; } = 50;

    /// <summary>Generated cases per property in the kit's self-check.</summary>
    public int SelfCheckRuns { get; init; } = 8;

    /// <summary>Whether the catalogue includes the zoo models (ResNet-18 among them: seconds a case on a
    /// CPU).</summary>
    public bool IncludeZooModels { get; init; } = true;

    /// <summary>
    /// The FsCheck seed of the properties; null takes <see cref="SeedVariable"/> when set, else a fresh one per run.
    /// A failure prints the seed that replays it.
    /// </summary>
    public ulong? Seed { get; init; }

    /// <summary>The policy's tolerance for results in <paramref name="dtype"/> (with TF32 for float32 when
    /// <see cref="Tf32"/>).</summary>
    public Tolerance ToleranceFor(ScalarType dtype) => TolerancePolicy.ToleranceFor(ArithmeticOf(dtype));

    /// <summary>The arithmetic of results in <paramref name="dtype"/>: TF32 for float32 when
    /// <see cref="Tf32"/>.</summary>
    public Arithmetic ArithmeticOf(ScalarType dtype) => new(dtype, Tf32 && dtype == ScalarType.Float32);

    /// <summary>The seed this run uses: <see cref="Seed"/>, the environment's, or a fresh one.</summary>
    public ulong EffectiveSeed()
    {
        if (Seed is { } seed) return seed;
        var fromEnvironment = Environment.GetEnvironmentVariable(SeedVariable);
        if (!string.IsNullOrWhiteSpace(fromEnvironment))
            return ulong.TryParse(fromEnvironment.Trim(), NumberStyles.None, CultureInfo.InvariantCulture,
                out var parsed)
                ? parsed
                : throw new InvalidOperationException(
                    $"{SeedVariable}='{fromEnvironment}' is not a seed: use a non-negative integer.");
        return (ulong)Random.Shared.NextInt64(1, long.MaxValue);
    }

    /// <summary>The device, the CPU when none is set.</summary>
    public Device DeviceOrCpu => Device ?? CPU;
}
