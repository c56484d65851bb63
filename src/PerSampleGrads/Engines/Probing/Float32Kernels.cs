using System.Globalization;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace PerSampleGrads.Engines.Probing;

/// <summary>
/// Whether this machine's libtorch computes small float32 transposed convolutions (the kernel behind every
/// convolution's input gradient) right for batches of several samples: 1-d, 2-d and 3-d, 3 to 4 channels, N = 4, ten
/// times each against float64, once per process. On AVX-512 AMD EPYC machines libtorch 2.10's CPU build gets them 20%
/// to 130% wrong, NaN in some runs (docs/testing.md), and garbage that depends on the other samples looks like
/// sample mixing to the sample-separation probe.
/// </summary>
public static class Float32Kernels
{
    private static readonly Lazy<string?> Probe = new(ProbeConvolutions);

    /// <summary>What this machine computes wrong, with the measured error; null when every run is right.</summary>
    public static string? ConvolutionDefect => Probe.Value;

    private static string? ProbeConvolutions()
    {
        using var scope = NewDisposeScope();
        using var generator = new Generator(7, CPU);
        long[][] inputs = [[4, 3, 5], [4, 3, 5, 5], [4, 3, 4, 4, 4]];
        for (int run = 1; run <= 10; run++)
            foreach (var shape in inputs)
            {
                var x = randn(shape, generator: generator);
                var w = randn([3, 4, .. Enumerable.Repeat(3L, shape.Length - 2)], generator: generator);
                Tensor Transposed(Tensor a, Tensor b) => shape.Length switch
                {
                    3 => F.conv_transpose1d(a, b),
                    4 => F.conv_transpose2d(a, b),
                    _ => F.conv_transpose3d(a, b),
                };
                var exact = Transposed(x.to(ScalarType.Float64), w.to(ScalarType.Float64));
                double error = ((Transposed(x, w).to(ScalarType.Float64) - exact).abs().max()
                    / exact.abs().max()).item<double>();
                if (error <= 1e-4) continue;
                string measured = error.ToString("0.###e0", CultureInfo.InvariantCulture);
                return $"conv_transpose{shape.Length - 2}d of [{string.Join(", ", shape)}] by " +
                    $"[{string.Join(", ", w.shape)}], run {run}: relative error {measured} against float64";
            }
        return null;
    }
}
