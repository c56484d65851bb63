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
    /// Grouped per-sample contraction over positions: <c>out[n, g, o, k] = sum_l grad[n, g, o, l] * cols[n, g, k, l]</c>,
    /// with <paramref name="outputGradient"/> <c>[N, O, L]</c> and <paramref name="columns"/> <c>[N, C*K, L]</c>
    /// (im2col). Returns <c>[N, O, C/G * K]</c>.
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
    /// Per-sample gradients of a per-channel affine <c>y = x_hat * w + b</c> (GroupNorm, InstanceNorm):
    /// <c>dw[n, c] = sum_spatial g * x_hat</c>, <c>db[n, c] = sum_spatial g</c>. <paramref name="normalized"/> is only
    /// evaluated when the weight is wanted. Returns (weight, bias), each null when not wanted.
    /// </summary>
    public static (Tensor? Weight, Tensor? Bias) PerChannelAffine(Tensor outputGradient, Func<Tensor> normalized, bool weight, bool bias) =>
        (weight ? SumSpatial(outputGradient * normalized()) : null, bias ? SumSpatial(outputGradient) : null);

    /// <summary>
    /// Sum over every dimension after the first two: <c>[N, C, ...]</c> to <c>[N, C]</c>; always a new tensor (a
    /// <c>[N, C]</c> input, BatchNorm1d on features, is copied: rules hand results out beyond their captures' life).
    /// </summary>
    public static Tensor SumSpatial(Tensor t) => t.dim() == 2 ? t.clone() : t.reshape(t.shape[0], t.shape[1], -1).sum(dim: 2);
}
