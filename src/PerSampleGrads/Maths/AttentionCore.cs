using static TorchSharp.torch;

namespace PerSampleGrads.Maths;

/// <summary>
/// The part of MultiheadAttention between the input projections and the output projection, samples first, as
/// libtorch computes it: projected queries <c>q [N, L, E]</c>, keys <c>k [N, S, E]</c> and values <c>v [N, S,
/// E]</c>; with <c>add_bias_kv</c> the rows <c>bias_k</c>, <c>bias_v</c> appended to k and v; H heads of width
/// <c>d = E / H</c>; with <c>add_zero_attn</c> a zero key and value appended per head; scores
/// <c>q_h k_h^T / sqrt(d)</c> plus the attention mask (added, as libtorch's C++ layer does, even when boolean) and
/// the key padding mask (<c>[N, S]</c>, true = ignored), softmax over keys; context <c>[N, L, E]</c> = weights
/// times values, heads concatenated; weights <c>[N, L, S']</c> averaged over heads. Every input may carry a
/// per-sample autograd leaf: the maths is plain differentiable tensor code.
/// </summary>
public static class AttentionCore
{
    /// <summary>The context <c>[N, L, E]</c> and the head-averaged weights <c>[N, L, S']</c>.</summary>
    /// <param name="q">Projected queries <c>[N, L, E]</c>.</param>
    /// <param name="k">Projected keys <c>[N, S, E]</c>.</param>
    /// <param name="v">Projected values <c>[N, S, E]</c>.</param>
    /// <param name="heads">H.</param>
    /// <param name="biasKey">Per-sample <c>bias_k</c> rows <c>[N, 1, E]</c>, or null.</param>
    /// <param name="biasValue">Per-sample <c>bias_v</c> rows <c>[N, 1, E]</c>, or null.</param>
    /// <param name="zeroAttention">Whether a zero key and value are appended per head.</param>
    /// <param name="attentionMask"><c>[L, S]</c> shared, <c>[N*H, L, S]</c>, or null.</param>
    /// <param name="keyPaddingMask"><c>[N, S]</c>, or null.</param>
    /// <param name="scale">The score scale, <c>1/sqrt(d)</c> unless a test plants another.</param>
    public static (Tensor Context, Tensor Weights) Attend(Tensor q, Tensor k, Tensor v, long heads,
        Tensor? biasKey, Tensor? biasValue, bool zeroAttention, Tensor? attentionMask, Tensor? keyPaddingMask,
        double? scale = null)
    {
        long n = q.shape[0], l = q.shape[1], e = q.shape[2], d = e / heads;
        if (biasKey is not null && biasValue is not null)
        {
            k = cat([k, biasKey], 1);
            v = cat([v, biasValue], 1);
            attentionMask = PadLast(attentionMask);
            keyPaddingMask = PadLast(keyPaddingMask);
        }
        var qh = q.reshape(n, l, heads, d).transpose(1, 2);
        var kh = k.reshape(n, k.shape[1], heads, d).transpose(1, 2);
        var vh = v.reshape(n, v.shape[1], heads, d).transpose(1, 2);
        if (zeroAttention)
        {
            kh = cat([kh, zeros([n, heads, 1, d], dtype: kh.dtype, device: kh.device)], 2);
            vh = cat([vh, zeros([n, heads, 1, d], dtype: vh.dtype, device: vh.device)], 2);
            attentionMask = PadLast(attentionMask);
            keyPaddingMask = PadLast(keyPaddingMask);
        }
        var scores = matmul(qh * (scale ?? 1 / Math.Sqrt(d)), kh.transpose(2, 3));
        long s = scores.shape[3];
        if (attentionMask is not null)
        {
            var mask = attentionMask.dim() == 3 ? attentionMask.reshape(n, heads, l, s) : attentionMask;
            // libtorch's C++ MultiheadAttention adds the attention mask whatever its type: a boolean mask adds 1
            // where true (measured against TorchSharp 0.107 / libtorch 2.10; PyTorch's Python layer hides instead).
            scores = scores + mask.to(scores.dtype);
        }
        if (keyPaddingMask is not null) scores = Masked(scores, keyPaddingMask.reshape(n, 1, 1, s));
        var weights = scores.softmax(-1);
        var context = matmul(weights, vh).transpose(1, 2).reshape(n, l, e);
        return (context, weights.mean([1]));
    }

    // Boolean masks hide (true = -inf); other masks add.
    private static Tensor Masked(Tensor scores, Tensor mask) => mask.dtype switch
    {
        ScalarType.Bool => scores.masked_fill(mask, double.NegativeInfinity),
        ScalarType.Byte => scores.masked_fill(mask.to(ScalarType.Bool), double.NegativeInfinity),
        _ => scores + mask.to(scores.dtype),
    };

    // One more key column that is attended (false, or 0 for an additive mask).
    private static Tensor? PadLast(Tensor? mask) => mask is null ? null
        : cat([mask, zeros([.. mask.shape[..^1], 1], dtype: mask.dtype, device: mask.device)], -1);
}
