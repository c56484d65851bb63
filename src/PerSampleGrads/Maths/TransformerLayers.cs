using static TorchSharp.torch;

namespace PerSampleGrads.Maths;

/// <summary>The activation between a Transformer layer's two feed-forward projections.</summary>
public enum FeedForwardActivation
{
    /// <summary>max(0, x).</summary>
    ReLU,
    /// <summary>x * Phi(x), the exact (erf) form.</summary>
    GELU,
}

/// <summary>What a Transformer layer does that its parameters do not say.</summary>
/// <param name="Heads">Number of attention heads H.</param>
/// <param name="Activation">The feed-forward activation.</param>
public sealed record TransformerLayerBehaviour(long Heads, FeedForwardActivation Activation);

/// <summary>
/// The affine maps and LayerNorms of a Transformer layer, however its parameters are held: one copy per sample, or the
/// layer's own with each map's input and output gradient recorded. Inputs are samples first, <c>[N, L, in]</c>.
/// </summary>
public interface ITransformerMaps
{
    /// <summary>
    /// <c>x W^T + b</c> with the parameters named <paramref name="weight"/> and <paramref name="bias"/>; for a packed
    /// <c>in_proj_weight</c> <c>[3E, E]</c>, <paramref name="part"/> 0, 1 or 2 takes its rows of the query, key or
    /// value (null: the whole weight).
    /// </summary>
    Tensor Affine(string weight, string bias, int? part, Tensor x);

    /// <summary>LayerNorm over the last dimension (epsilon <see cref="TransformerLayers.LayerNormEpsilon"/>) with
    /// the affine parameters <paramref name="prefix"/><c>weight</c> and <paramref name="prefix"/><c>bias</c>.</summary>
    Tensor Norm(string prefix, Tensor x);
}

/// <summary>
/// Maps whose parameters come per sample, <c>[N, ...parameter shape]</c> by local name (per-sample copies, or the
/// shared value expanded): one batched product per map.
/// </summary>
public sealed class PerSampleTransformerMaps(Func<string, Tensor> parameter) : ITransformerMaps
{
    /// <inheritdoc/>
    public Tensor Affine(string weight, string bias, int? part, Tensor x)
    {
        var (w, b) = (parameter(weight), parameter(bias));
        if (part is { } p)
        {
            long e = w.shape[^1];
            (w, b) = (w.narrow(1, p * e, e), b.narrow(1, p * e, e));
        }
        return bmm(x, w.transpose(1, 2)) + b.unsqueeze(1);
    }

    /// <inheritdoc/>
    public Tensor Norm(string prefix, Tensor x) =>
        nn.functional.layer_norm(x, [x.shape[^1]], eps: TransformerLayers.LayerNormEpsilon)
            * parameter(prefix + "weight").unsqueeze(1) + parameter(prefix + "bias").unsqueeze(1);
}

/// <summary>
/// TorchSharp's native Transformer layers as libtorch's C++ frontend computes them (post-norm, LayerNorm epsilon
/// 1e-5, dropout 0), samples first, through the maps of an <see cref="ITransformerMaps"/>:
/// encoder <c>h = LN1(x + SA(x))</c>, <c>y = LN2(h + FF(h))</c>; decoder <c>h1 = LN1(x + SA(x))</c>,
/// <c>h2 = LN2(h1 + CA(h1, memory))</c>, <c>y = LN3(h2 + FF(h2))</c>, where SA and CA are multi-head attention
/// (<see cref="AttentionCore"/>, packed <c>in_proj_weight</c>) and <c>FF(h) = W2 act(W1 h + b1) + b2</c>.
/// </summary>
public static class TransformerLayers
{
    /// <summary>LayerNorm's epsilon in libtorch's Transformer layers (not configurable there).</summary>
    public const double LayerNormEpsilon = 1e-5;

    /// <summary>The encoder layer's output <c>[N, L, E]</c> for input <c>x [N, L, E]</c>.</summary>
    public static Tensor Encode(ITransformerMaps maps, TransformerLayerBehaviour behaviour, Tensor x,
        Tensor? mask = null, Tensor? keyPaddingMask = null)
    {
        var h = maps.Norm("norm1.", x + Attend(maps, "self_attn.", behaviour.Heads, x, x, mask, keyPaddingMask));
        return maps.Norm("norm2.", h + FeedForward(maps, behaviour.Activation, h));
    }

    /// <summary>The decoder layer's output <c>[N, L, E]</c> for target <c>x [N, L, E]</c> and memory
    /// <c>[N, S, E]</c>.</summary>
    public static Tensor Decode(ITransformerMaps maps, TransformerLayerBehaviour behaviour, Tensor x,
        Tensor memory, Tensor? targetMask = null, Tensor? memoryMask = null, Tensor? targetKeyPaddingMask = null,
        Tensor? memoryKeyPaddingMask = null)
    {
        var h1 = maps.Norm("norm1.", x + Attend(maps, "self_attn.", behaviour.Heads, x, x, targetMask,
            targetKeyPaddingMask));
        var h2 = maps.Norm("norm2.", h1 + Attend(maps, "multihead_attn.", behaviour.Heads, h1, memory,
            memoryMask, memoryKeyPaddingMask));
        return maps.Norm("norm3.", h2 + FeedForward(maps, behaviour.Activation, h2));
    }

    private static Tensor Attend(ITransformerMaps maps, string prefix, long heads, Tensor query, Tensor keyValue,
        Tensor? mask, Tensor? keyPaddingMask)
    {
        string weight = prefix + "in_proj_weight", bias = prefix + "in_proj_bias";
        var (context, _) = AttentionCore.Attend(maps.Affine(weight, bias, 0, query),
            maps.Affine(weight, bias, 1, keyValue), maps.Affine(weight, bias, 2, keyValue), heads, null, null, false,
            mask, keyPaddingMask);
        return maps.Affine(prefix + "out_proj.weight", prefix + "out_proj.bias", null, context);
    }

    private static Tensor FeedForward(ITransformerMaps maps, FeedForwardActivation activation, Tensor h)
    {
        var inner = maps.Affine("linear1.weight", "linear1.bias", null, h);
        inner = activation == FeedForwardActivation.GELU ? nn.functional.gelu(inner) : nn.functional.relu(inner);
        return maps.Affine("linear2.weight", "linear2.bias", null, inner);
    }
}
