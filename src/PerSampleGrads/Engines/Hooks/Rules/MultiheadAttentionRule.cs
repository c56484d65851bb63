using PerSampleGrads.Engines.Probing;
using TorchSharp;
using TorchSharp.Modules;
using PerSampleGrads.Maths;
using static PerSampleGrads.Maths.PerSampleContractions;
using static TorchSharp.torch;

namespace PerSampleGrads.Engines.Hooks.Rules;

/// <summary>
/// MultiheadAttention (sequence-first <c>[L, N, E]</c>; samples are the N). From the captured query, key and value
/// (samples first, <c>x [N, L, E_in]</c>), the projections <c>p = x W^T + b</c> are recomputed as autograd leaves,
/// the attention core (<see cref="AttentionCore"/>: heads, 1/sqrt(d) scale, masks, bias_kv, zero attention) is run
/// on them, and one backward of <c>&lt;g_out W_o, context&gt; + &lt;g_weights, weights&gt;</c> gives the gradient
/// <c>g_p</c> at each projection's output. Then, as for Linear: <c>dW[n] = sum_l g_p[n, l] x[n, l]^T</c>,
/// <c>db[n] = sum_l g_p[n, l]</c>; out_proj from the context and <c>g_out</c>; <c>bias_k</c>/<c>bias_v</c> from their
/// leaves' gradients. Dropout must be 0 or the layer in eval mode.
/// </summary>
public static class MultiheadAttentionRule
{
    /// <summary>
    /// Adds this call's per-sample gradients of the layer's trainable parameters, <c>[N, ...parameter shape]</c>,
    /// to the sink (the formula is in the class summary).
    /// </summary>
    public static void Compute(LayerCall call, ILayerGradientSink sink) => Compute(call, sink, null);

    internal static void Compute(LayerCall call, ILayerGradientSink sink, double? scale)
    {
        var attention = (MultiheadAttention)call.Layer;
        var behaviour = AttentionInspection.Inspect(attention, call.Path);
        var p = AttentionParameters.Of(name => attention.get_parameter(name)?.detach());
        var (query, key, value) = (call.Argument(0)!, call.Argument(1)!, call.Argument(2)!);
        var gOut = call.OutputGradient;
        long n = gOut.shape[0];
        using var grad = enable_grad();
        Tensor Leaf(Tensor t) => t.detach().clone().requires_grad_(true);
        var qp = Leaf(Project(query, p.Query, p.QueryBias));
        var kp = Leaf(Project(key, p.Key, p.KeyBias));
        var vp = Leaf(Project(value, p.Value, p.ValueBias));
        var biasKey = p.BiasKey is { } bk ? Leaf(bk.reshape(1, 1, -1).expand(n, 1, -1)) : null;
        var biasValue = p.BiasValue is { } bv ? Leaf(bv.reshape(1, 1, -1).expand(n, 1, -1)) : null;
        var (context, weights) = AttentionCore.Attend(qp, kp, vp, behaviour.Heads, biasKey, biasValue,
            behaviour.ZeroAttention, call.Argument(5), call.Argument(3), scale);
        if (sink.Wants("out_proj.weight")) sink.Add("out_proj.weight", SumOfOuterProducts(gOut, context.detach()));
        if (sink.Wants("out_proj.bias")) sink.Add("out_proj.bias", gOut.sum(dim: 1));
        var outputs = new List<Tensor> { context };
        var gradients = new List<Tensor> { matmul(gOut, p.Output) };
        if (call.Gradient(1) is { } gWeights)
        {
            outputs.Add(weights);
            gradients.Add(gWeights);
        }
        var leaves = new[] { qp, kp, vp, biasKey, biasValue }.OfType<Tensor>().ToList();
        autograd.backward(outputs, gradients, inputs: leaves);
        using var _ = no_grad();
        var (gq, gk, gv) = (Gradient(qp), Gradient(kp), Gradient(vp));
        if (sink.Wants("in_proj_weight"))
            sink.Add("in_proj_weight", cat([SumOfOuterProducts(gq, query), SumOfOuterProducts(gk, key),
                SumOfOuterProducts(gv, value)], 1));
        if (sink.Wants("q_proj_weight")) sink.Add("q_proj_weight", SumOfOuterProducts(gq, query));
        if (sink.Wants("k_proj_weight")) sink.Add("k_proj_weight", SumOfOuterProducts(gk, key));
        if (sink.Wants("v_proj_weight")) sink.Add("v_proj_weight", SumOfOuterProducts(gv, value));
        if (sink.Wants("in_proj_bias")) sink.Add("in_proj_bias", cat([gq.sum(dim: 1), gk.sum(dim: 1),
            gv.sum(dim: 1)], 1));
        if (biasKey is not null && sink.Wants("bias_k")) sink.Add("bias_k", Gradient(biasKey).reshape(n, 1, 1, -1));
        if (biasValue is not null && sink.Wants("bias_v"))
            sink.Add("bias_v", Gradient(biasValue).reshape(n, 1, 1, -1));
    }

    private static Tensor Project(Tensor x, Tensor weight, Tensor? bias) =>
        bias is null ? matmul(x, weight.t()) : matmul(x, weight.t()) + bias;

    // A leaf's gradient, zeros when nothing reached it (a fully masked key).
    private static Tensor Gradient(Tensor leaf) => leaf.grad is { IsInvalid: false } g ? g : zeros_like(leaf);
}
