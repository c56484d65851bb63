using static TorchSharp.torch;

namespace PerSampleGrads.Maths;

/// <summary>
/// Per-sample squared gradient norms without the per-sample gradients ("ghost norms", Goodfellow 2015; Li et al. 2022;
/// Bu et al. 2023). Index letters as in <see cref="PerSampleContractions"/>: n sample, l and m positions, o output
/// feature, i input feature. For a gradient <c>G_n = sum_l a[n, l, :] b[n, l, :]^T</c>,
/// <c>|G_n|_F^2 = sum_{l, m} (a_l . a_m)(b_l . b_m)</c>: two Gram matrices over positions, <c>[N, L, L]</c> each,
/// instead of the <c>[N, O, I]</c> gradient.
/// </summary>
public static class GhostNorms
{
    /// <summary>
    /// <c>[N]</c>: <c>|sum_l a[n, l, :] b[n, l, :]^T|_F^2</c> from the Gram matrices of <paramref name="a"/>
    /// <c>[N, L, O]</c> and <paramref name="b"/> <c>[N, L, I]</c>; for one position the product of the squared norms.
    /// </summary>
    public static Tensor OuterProductSum(Tensor a, Tensor b)
    {
        if (a.shape[1] == 1) return a.square().sum([1L, 2L]) * b.square().sum([1L, 2L]);
        var gramA = bmm(a, a.transpose(1, 2));
        var gramB = bmm(b, b.transpose(1, 2));
        return (gramA * gramB).sum([1L, 2L]);
    }

    /// <summary>
    /// <c>[N]</c>: the squared norm of a grouped convolution's per-sample weight gradient, summed over groups, from
    /// <paramref name="outputGradient"/> <c>[N, O, L]</c> and <paramref name="columns"/> <c>[N, C*K, L]</c> (im2col).
    /// </summary>
    public static Tensor GroupedColumns(Tensor outputGradient, Tensor columns, long groups)
    {
        long n = outputGradient.shape[0], o = outputGradient.shape[1], l = outputGradient.shape[2];
        long ck = columns.shape[1];
        var a = outputGradient.reshape(n * groups, o / groups, l).transpose(1, 2);
        var b = columns.reshape(n * groups, ck / groups, l).transpose(1, 2);
        return OuterProductSum(a, b).reshape(n, groups).sum(dim: 1);
    }

    /// <summary>
    /// <c>[N]</c>: the squared norm of an embedding table's per-sample gradient from the token ids
    /// <paramref name="indices"/> <c>[N, L]</c> and the output gradient <paramref name="outputGradient"/>
    /// <c>[N, L, D]</c>: <c>sum_{l, m} [id_l = id_m != padding] (g_l . g_m)</c>.
    /// </summary>
    public static Tensor Embedding(Tensor indices, Tensor outputGradient, long? paddingIndex)
    {
        long n = indices.shape[0];
        var ids = indices.reshape(n, -1);
        var g = outputGradient.reshape(n, ids.shape[1], -1);
        var same = ids.unsqueeze(2).eq(ids.unsqueeze(1));
        if (paddingIndex is { } p) same = same.logical_and(ids.ne(p).unsqueeze(2));
        return (bmm(g, g.transpose(1, 2)) * same.to(g.dtype)).sum([1L, 2L]);
    }

    /// <summary><c>[N]</c>: the squared L2 norm of each sample's slice of a materialised <c>[N, ...]</c>
    /// gradient.</summary>
    public static Tensor Materialised(Tensor perSample) => perSample.reshape(perSample.shape[0],
        -1).square().sum(dim: 1);

    /// <summary>
    /// Whether the ghost norm is the cheaper route for a product summed over <paramref name="positions"/> positions of
    /// an <paramref name="outputs"/> x <paramref name="inputs"/> weight (per group): Bu et al.'s rule, the two Gram
    /// matrices (<c>2 L^2</c> numbers per sample) against the materialised gradient (<c>O * I</c>).
    /// </summary>
    public static bool GhostIsCheaper(long positions, long outputs, long inputs)
        => 2 * positions * positions <= outputs * inputs;
}
