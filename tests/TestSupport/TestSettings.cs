using TorchSharp;
using static TorchSharp.torch;

namespace PerSampleGrads.Tests;

/// <summary>
/// Device, element types and catalogue cases for tests, from the environment: <c>PSG_DEVICE=cpu|cuda</c> (default
/// cpu), <c>PSG_DTYPE=float32|float64</c> (default: both) and <c>PSG_CASES</c> (default: every case). A test asked
/// for CUDA where CUDA is absent fails with a message instead of quietly running on the CPU.
/// </summary>
public static class TestSettings
{
    /// <summary>The device tests run on.</summary>
    public static Device Device
    {
        get
        {
            RequireTorch();
            var requested = (Environment.GetEnvironmentVariable("PSG_DEVICE") ?? "cpu").Trim().ToLowerInvariant();
            var device = requested switch
            {
                "" or "cpu" => CPU,
                "cuda" => new Device(DeviceType.CUDA, 0),
                _ when requested.StartsWith("cuda:", StringComparison.Ordinal) => torch.device(requested),
                _ => throw new InvalidOperationException($"PSG_DEVICE='{requested}' is not a device: use cpu or cuda."),
            };
            if (device.type == DeviceType.CUDA && !cuda.is_available())
                throw new InvalidOperationException("PSG_DEVICE=cuda but CUDA is not available to TorchSharp in this " +
                    "process: on a CUDA machine run the bundle with your PyTorch's libtorch (README, 'On a CUDA " +
                    "machine'), or unset PSG_DEVICE to test on the CPU.");
            return device;
        }
    }

    /// <summary>The element types tests run in.</summary>
    public static IReadOnlyList<ScalarType> DTypes =>
        (Environment.GetEnvironmentVariable("PSG_DTYPE") ?? "").Trim().ToLowerInvariant() switch
        {
            "" => [ScalarType.Float64, ScalarType.Float32],
            "float64" or "double" => [ScalarType.Float64],
            "float32" or "float" => [ScalarType.Float32],
            var other => throw new InvalidOperationException($"PSG_DTYPE='{other}' is not supported: use float32 or " +
                $"float64 (or leave it unset for both)."),
        };

    /// <summary>Whether the theories over the whole catalogue (each engine's and the clipping method's equivalence)
    /// run the case <paramref name="caseId"/>: <c>PSG_CASES</c> is a comma-separated list of case-id prefixes, each
    /// taking the cases it starts, or, written <c>-prefix</c>, leaving them out (<c>PSG_CASES=lstm,gru</c>;
    /// <c>PSG_CASES=-zoo-resnet18</c>, which the mutation runner uses to run the cheap cases first). Unset or blank:
    /// every case.</summary>
    public static bool Selects(string caseId)
    {
        var prefixes = (Environment.GetEnvironmentVariable("PSG_CASES") ?? "")
            .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var taken = prefixes.Where(p => !p.StartsWith('-')).ToList();
        var leftOut = prefixes.Where(p => p.StartsWith('-')).Select(p => p[1..]);
        return (taken.Count == 0 || taken.Any(p => caseId.StartsWith(p, StringComparison.Ordinal)))
            && !leftOut.Any(p => caseId.StartsWith(p, StringComparison.Ordinal));
    }

    /// <summary>Fails with TorchSharp's one-line load problem (missing GLIBCXX, say) instead of a type-initialisation
    /// trace.</summary>
    public static void RequireTorch() => TorchRuntime.EnsureLoaded();
}
