using PerSampleGrads.Engines.Probing;
using TorchSharp.Modules;
using PerSampleGrads.Maths;
using static TorchSharp.torch;

namespace PerSampleGrads.Engines.Functional.Layers;

/// <summary>
/// MultiheadAttention with per-sample parameters (samples first: query <c>[k, L, E_in]</c>): each sample's input
/// and output projections are batched matrix products with its own weights (<c>x W[n]^T + b[n]</c>), the attention
/// core between them is <see cref="AttentionCore"/> (heads, scale, masks, bias_kv, zero attention), and the
/// head-averaged weights are the second output when the call asks for them.
/// </summary>
public static class MultiheadAttentionForward
{
    /// <summary>The batched forward.</summary>
    public static Tensor Forward(FunctionalCall call)
    {
        var attention = (MultiheadAttention)call.Layer;
        var behaviour = AttentionInspection.Inspect(attention, call.Path);
        var p = AttentionParameters.Of(name => call.Parameters[name]);
        long k = call.Input.shape[0];
        var (context, weights) = AttentionCore.Attend(Project(call.Argument(0)!, p.Query, p.QueryBias),
            Project(call.Argument(1)!, p.Key, p.KeyBias), Project(call.Argument(2)!, p.Value, p.ValueBias),
            behaviour.Heads, p.BiasKey?.reshape(k, 1, -1), p.BiasValue?.reshape(k, 1, -1), behaviour.ZeroAttention,
            call.Argument(5), call.Argument(3));
        if (call.Arguments[4] is true && call.OtherOutputs.Length > 1) call.OtherOutputs[1] = weights;
        return Project(context, p.Output, p.OutputBias);
    }

    // Per-sample weights [k, O, I] and biases [k, O].
    private static Tensor Project(Tensor x, Tensor weight, Tensor? bias)
    {
        var y = bmm(x, weight.transpose(1, 2));
        return bias is null ? y : y + bias.unsqueeze(1);
    }
}
