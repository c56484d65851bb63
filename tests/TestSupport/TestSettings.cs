using TorchSharp;
using static TorchSharp.torch;

namespace PerSampleGrads.Tests;

/// <summary>
/// Device and element types for tests, from the environment: <c>PSG_DEVICE=cpu|cuda</c> (default cpu) and
/// <c>PSG_DTYPE=float32|float64</c> (default: both). A test asked for CUDA where CUDA is absent fails with a message
/// instead of quietly running on the CPU.
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

    /// <summary>Fails with TorchSharp's one-line load problem (missing GLIBCXX, say) instead of a type-initialisation
    /// trace.</summary>
    public static void RequireTorch() => TorchRuntime.EnsureLoaded();
}
