using TorchSharp;
using static TorchSharp.torch;

namespace PerSampleGrads.Engines.Probing;

/// <summary>
/// A change to one sample that the sample-separation probe follows through the model, and the test for "changed".
/// Floating inputs get seeded Gaussian noise of the inputs' own scale; integer inputs (token ids) move every id to
/// the next distinct id present in the batch, so they stay valid; boolean inputs flip.
/// </summary>
internal static class Perturbation
{
    private const ulong Seed = 20261201;

    /// <summary>Only sample <paramref name="sample"/> changed; null when the batch admits no change (integer ids all
    /// equal).</summary>
    public static Tensor? One(Tensor x, long sample) => Perturbed(x, sample);

    /// <summary>
    /// Elements that differ by more than rounding: 1000 units in the last place of the larger tensor's largest
    /// magnitude for floating tensors (a batch statistic over N samples moves others by about 1/N of the change,
    /// far above that), any difference otherwise.
    /// </summary>
    public static Tensor Changed(Tensor a, Tensor b)
    {
        if (!is_floating_point(a.dtype)) return a.ne(b);
        var scale = Math.Max(a.abs().max().ToDouble(), b.abs().max().ToDouble());
        double tolerance = 1000 * Epsilon(a.dtype) * scale;
        return (a - b).abs().gt(tolerance);
    }

    private static Tensor? Perturbed(Tensor x, long sample)
    {
        Tensor changed;
        if (is_floating_point(x.dtype))
        {
            using var generator = new Generator(Seed, x.device);
            var scale = x.abs().max().ToDouble() + 1;
            changed = x + randn(x.shape, dtype: x.dtype, device: x.device, generator: generator).mul(0.5 * scale);
        }
        else if (x.dtype == ScalarType.Bool)
        {
            changed = x.logical_not();
        }
        else
        {
            var (values, inverse, _) = x.unique(sorted: true, return_inverse: true);
            long distinct = values.shape[0];
            if (distinct < 2) return null;
            changed = values.index_select(0, inverse!.add(1).remainder(distinct).flatten()).reshape(x.shape);
        }
        var mask = arange(x.shape[0], device: x.device).eq(sample)
            .reshape([x.shape[0], .. Enumerable.Repeat(1L, (int)x.dim() - 1)]);
        return where(mask, changed, x);
    }

    private static double Epsilon(ScalarType dtype) => dtype switch
    {
        ScalarType.Float64 => 2.220446049250313e-16,
        ScalarType.Float16 => 9.765625e-4,
        ScalarType.BFloat16 => 7.8125e-3,
        _ => 1.1920928955078125e-7,
    };
}
