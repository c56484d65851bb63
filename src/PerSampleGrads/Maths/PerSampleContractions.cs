using static TorchSharp.torch;

namespace PerSampleGrads.Maths;

/// <summary>
/// The contractions behind the per-sample rules, in one place. Index letters: n sample, l position (flattened middle
/// or spatial dimensions), o output feature, i input feature, g group, k receptive-field element.
/// </summary>
public static class PerSampleContractions
{
    /// <summary>
    /// <c>[N, ..., F]</c> to <c>[N, L, F]</c>: every dimension between the batch and the last flattened into L
    /// (L = 1 when there is none).
    /// </summary>
    public static Tensor FlattenPositions(Tensor t) => t.reshape(t.shape[0], -1, t.shape[^1]);

    /// <summary>
    /// Per-sample outer products summed over positions: <c>out[n, o, i] = sum_l a[n, l, o] * b[n, l, i]</c>, with
    /// <paramref name="a"/> <c>[N, L, O]</c> and <paramref name="b"/> <c>[N, L, I]</c>. One batched matrix product.
    /// </summary>
    public static Tensor SumOfOuterProducts(Tensor a, Tensor b) =>
        a.shape[1] == 1
            ? a.reshape(a.shape[0], a.shape[2], 1) * b.reshape(b.shape[0], 1, b.shape[2])
            : bmm(a.transpose(1, 2), b);

    /// <summary>
    /// Grouped per-sample contraction over positions: <c>out[n, g, o, k] = sum_l grad[n, g, o, l] * cols[n, g, k,
    /// l]</c>, with <paramref name="outputGradient"/> <c>[N, O, L]</c> and <paramref name="columns"/> <c>[N, C*K,
    /// L]</c> (im2col). Returns <c>[N, O, C/G * K]</c>.
    /// </summary>
    public static Tensor GroupedColumnsProduct(Tensor outputGradient, Tensor columns, long groups)
    {
        long n = outputGradient.shape[0], o = outputGradient.shape[1], l = outputGradient.shape[2];
        long ck = columns.shape[1];
        var g = outputGradient.reshape(n * groups, o / groups, l);
        var c = columns.reshape(n * groups, ck / groups, l);
        // One output position (ResNet-18's last stage at 32x32 inputs): a plain outer product. Batched matrix products
        // with an inner size of 1 ran 4-7x slower on the CPU than this broadcast multiply (docs/benchmarks.md).
        var product = l == 1 ? g * c.transpose(1, 2) : bmm(g, c.transpose(1, 2));
        return product.reshape(n, o, ck / groups);
    }

    /// <summary>
    /// Whether a per-sample product should be written in place into <paramref name="destination"/> (one product per
    /// sample) rather than computed by one batched product into fresh memory and copied: from 1 MiB on. Smaller
    /// results come from the heap's free lists without page faults, and there the per-sample products' call overhead
    /// costs more than the copy (small CNN, N = 32: the hook engine ran 1.8x slower in place, on a loaded machine).
    /// </summary>
    public static bool WorthWritingInPlace(Tensor destination)
        => destination.numel() * destination.ElementSize >= 1L << 20;

    /// <summary>
    /// <see cref="SumOfOuterProducts"/> written into <paramref name="destination"/> <c>[N, O, I]</c> (contiguous,
    /// memory
    /// the caller already touched): one in-place product per sample (<c>addmm_</c>, or <c>addr_</c> for one position,
    /// with beta 0 so that the destination's old values are ignored, NaN included). TorchSharp 0.107 has no in-place
    /// batched product (<c>baddbmm_</c>) and no <c>out=</c> overload of <c>bmm</c>.
    /// </summary>
    public static void SumOfOuterProductsInto(Tensor a, Tensor b, Tensor destination)
    {
        long n = a.shape[0];
        for (long s = 0; s < n; s++)
        {
            using var scope = NewDisposeScope();
            var d = destination[s];
            if (a.shape[1] == 1) d.addr_(a[s, 0], b[s, 0], beta: 0, alpha: 1);
            else d.addmm_(a[s].t(), b[s], beta: 0, alpha: 1);
        }
    }

    /// <summary>
    /// <see cref="GroupedColumnsProduct"/> written into <paramref name="destination"/> <c>[N, O, C/G * K]</c>
    /// (contiguous): one in-place product per sample and group, as in <see cref="SumOfOuterProductsInto"/>.
    /// </summary>
    public static void GroupedColumnsProductInto(Tensor outputGradient, Tensor columns, long groups, Tensor destination)
    {
        long n = outputGradient.shape[0], o = outputGradient.shape[1], l = outputGradient.shape[2];
        long ck = columns.shape[1];
        using var outer = NewDisposeScope();
        var g = outputGradient.reshape(n, groups, o / groups, l);
        var c = columns.reshape(n, groups, ck / groups, l);
        var d = destination.view(n, groups, o / groups, ck / groups);
        for (long s = 0; s < n; s++)
        {
            for (long j = 0; j < groups; j++)
            {
                using var scope = NewDisposeScope();
                var block = d[s, j];
                if (l == 1) block.addr_(g[s, j, .., 0], c[s, j, .., 0], beta: 0, alpha: 1);
                else block.addmm_(g[s, j], c[s, j].t(), beta: 0, alpha: 1);
            }
        }
    }

    /// <summary>
    /// <see cref="GroupedColumnsProduct"/> summed over samples: <c>out[g, o, k] = sum_{n, l} grad[n, g, o, l] *
    /// cols[n, g, k, l]</c>, one product per group with samples and positions together as the inner dimension (a copy
    /// of the receptive fields in that order; none for one position). A batch-reducing <c>addbmm_</c> avoids that copy
    /// but rewrites the whole <c>[O, C*K]</c> result once per sample; the two measured the same on ResNet-18 at N = 32
    /// (one thread, CPU time, 192 ms and 195 ms for the whole clipping call). Returns <c>[O, C/G * K]</c>.
    /// </summary>
    public static Tensor GroupedColumnsProductSummedOverSamples(Tensor outputGradient, Tensor columns, long groups)
    {
        long n = outputGradient.shape[0], o = outputGradient.shape[1], l = outputGradient.shape[2];
        long ck = columns.shape[1];
        var g = outputGradient.reshape(n, groups, o / groups, l).permute(1, 2, 0, 3).reshape(groups, o / groups, n * l);
        var c = columns.reshape(n, groups, ck / groups, l).permute(1, 0, 3, 2).reshape(groups, n * l, ck / groups);
        return bmm(g, c).reshape(o, ck / groups);
    }

    /// <summary>
    /// Per-sample gradients of a per-channel affine <c>y = x_hat * w + b</c> (GroupNorm, InstanceNorm):
    /// <c>dw[n, c] = sum_spatial g * x_hat</c>, <c>db[n, c] = sum_spatial g</c>. <paramref name="normalized"/> is only
    /// evaluated when the weight is wanted. Returns (weight, bias), each null when not wanted.
    /// </summary>
    public static (Tensor? Weight, Tensor? Bias) PerChannelAffine(Tensor outputGradient, Func<Tensor> normalized,
        bool weight, bool bias) =>
        (weight ? SumSpatial(outputGradient * normalized()) : null, bias ? SumSpatial(outputGradient) : null);

    /// <summary>
    /// Sum over every dimension after the first two: <c>[N, C, ...]</c> to <c>[N, C]</c>; always a new tensor (a
    /// <c>[N, C]</c> input, BatchNorm1d on features, is copied: rules hand results out beyond their captures' life).
    /// </summary>
    public static Tensor SumSpatial(Tensor t) => t.dim() == 2 ? t.clone()
        : t.reshape(t.shape[0], t.shape[1], -1).sum(dim: 2);
}
