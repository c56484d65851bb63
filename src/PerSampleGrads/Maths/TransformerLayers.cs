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
/// TorchSharp's native Transformer layers as libtorch's C++ frontend computes them (post-norm, LayerNorm epsilon
/// 1e-5, dropout 0), samples first, with a parameter lookup by local name that gives <c>[N, ...parameter shape]</c>
/// (per-sample copies, or the shared value expanded):
/// encoder <c>h = LN1(x + SA(x))</c>, <c>y = LN2(h + FF(h))</c>; decoder <c>h1 = LN1(x + SA(x))</c>,
/// <c>h2 = LN2(h1 + CA(h1, memory))</c>, <c>y = LN3(h2 + FF(h2))</c>, where SA and CA are multi-head attention
/// (<see cref="AttentionCore"/>, packed <c>in_proj_weight</c>) and <c>FF(h) = W2 act(W1 h + b1) + b2</c>.
/// </summary>
public static class TransformerLayers
{
    /// <summary>LayerNorm's epsilon in libtorch's Transformer layers (not configurable there).</summary>
    public const double LayerNormEpsilon = 1e-5;

    /// <summary>The encoder layer's output <c>[N, L, E]</c> for input <c>x [N, L, E]</c>.</summary>
    public static Tensor Encode(Func<string, Tensor> parameter, TransformerLayerBehaviour behaviour, Tensor x,
        Tensor? mask = null, Tensor? keyPaddingMask = null)
    {
        var h = Norm(parameter, "norm1.", x + Attend(parameter, "self_attn.", behaviour.Heads, x, x, mask,
            keyPaddingMask));
        return Norm(parameter, "norm2.", h + FeedForward(parameter, behaviour.Activation, h));
    }

    /// <summary>The decoder layer's output <c>[N, L, E]</c> for target <c>x [N, L, E]</c> and memory
    /// <c>[N, S, E]</c>.</summary>
    public static Tensor Decode(Func<string, Tensor> parameter, TransformerLayerBehaviour behaviour, Tensor x,
        Tensor memory, Tensor? targetMask = null, Tensor? memoryMask = null, Tensor? targetKeyPaddingMask = null,
        Tensor? memoryKeyPaddingMask = null)
    {
        var h1 = Norm(parameter, "norm1.", x + Attend(parameter, "self_attn.", behaviour.Heads, x, x, targetMask,
            targetKeyPaddingMask));
        var h2 = Norm(parameter, "norm2.", h1 + Attend(parameter, "multihead_attn.", behaviour.Heads, h1, memory,
            memoryMask, memoryKeyPaddingMask));
        return Norm(parameter, "norm3.", h2 + FeedForward(parameter, behaviour.Activation, h2));
    }

    private static Tensor Attend(Func<string, Tensor> parameter, string prefix, long heads, Tensor query,
        Tensor keyValue, Tensor? mask, Tensor? keyPaddingMask)
    {
        var packed = parameter(prefix + "in_proj_weight");
        var bias = parameter(prefix + "in_proj_bias");
        long e = packed.shape[^1];
        Tensor Slice(Tensor t, int part) => t.narrow(1, part * e, e);
        var (context, _) = AttentionCore.Attend(Project(query, Slice(packed, 0), Slice(bias, 0)),
            Project(keyValue, Slice(packed, 1), Slice(bias, 1)), Project(keyValue, Slice(packed, 2), Slice(bias, 2)),
            heads, null, null, false, mask, keyPaddingMask);
        return Project(context, parameter(prefix + "out_proj.weight"), parameter(prefix + "out_proj.bias"));
    }

    private static Tensor FeedForward(Func<string, Tensor> parameter, FeedForwardActivation activation, Tensor h)
    {
        var inner = Project(h, parameter("linear1.weight"), parameter("linear1.bias"));
        inner = activation == FeedForwardActivation.GELU ? nn.functional.gelu(inner) : nn.functional.relu(inner);
        return Project(inner, parameter("linear2.weight"), parameter("linear2.bias"));
    }

    // Per-sample weights [N, O, I] and biases [N, O] on [N, L, I].
    private static Tensor Project(Tensor x, Tensor weight, Tensor bias) =>
        bmm(x, weight.transpose(1, 2)) + bias.unsqueeze(1);

    // LayerNorm over the last dimension with per-sample weight and bias [N, E].
    private static Tensor Norm(Func<string, Tensor> parameter, string prefix, Tensor x)
    {
        var normalized = nn.functional.layer_norm(x, [x.shape[^1]], eps: LayerNormEpsilon);
        return normalized * parameter(prefix + "weight").unsqueeze(1) + parameter(prefix + "bias").unsqueeze(1);
    }
}
