using PerSampleGrads.Engines.Probing;
using TorchSharp;
using TorchSharp.Modules;
using PerSampleGrads.Maths;
using static PerSampleGrads.Maths.PerSampleContractions;
using static TorchSharp.torch;

namespace PerSampleGrads.Engines.Hooks.Rules;

/// <summary>
/// MultiheadAttention (sequence-first <c>[L, N, E]</c>; samples are the N). The gradient <c>g_p</c> at each input
/// projection's output <c>p = x W^T + b</c> (query, key, value; samples first, <c>x [N, L, E_in]</c>) comes either
/// from the engine's own forward of the layer (<see cref="Forward"/>: the projections, the attention core
/// <see cref="AttentionCore"/> with heads, 1/sqrt(d) scale, masks, bias_kv and zero attention, and out_proj, with each
/// projection marked, so the model's backward records <c>g_p</c>), or, when the engine did not run it, from the
/// projections recomputed as autograd leaves and one backward of <c>&lt;g_out W_o, context&gt; + &lt;g_weights,
/// weights&gt;</c>. Then, as for Linear: <c>dW[n] = sum_l g_p[n, l] x[n, l]^T</c>, <c>db[n] = sum_l g_p[n, l]</c>;
/// out_proj from the context and <c>g_out</c>; <c>bias_k</c>/<c>bias_v</c> from the gradients at their rows. Dropout
/// must be 0 or the layer in eval mode.
/// </summary>
public static class MultiheadAttentionRule
{
    /// <summary>
    /// Adds this call's per-sample gradients of the layer's trainable parameters, <c>[N, ...parameter shape]</c>, to
    /// the sink (the formula is in the class summary).
    /// </summary>
    public static void Compute(LayerCall call, ILayerGradientSink sink) => Compute(call, sink, null);

    internal static void Compute(LayerCall call, ILayerGradientSink sink, double? scale)
    {
        var attention = (MultiheadAttention)call.Layer;
        var p = AttentionParameters.Of(name => attention.get_parameter(name)?.detach());
        var gOut = call.OutputGradient;
        long n = gOut.shape[0];
        var (query, key, value, context, gq, gk, gv, gBiasKey, gBiasValue) = call.Tape is { } tape
            ? Recorded(tape, p, n)
            : Rerun(call, attention, p, scale);
        using var _ = no_grad();
        if (sink.Wants("out_proj.weight")) sink.Add("out_proj.weight", SumOfOuterProducts(gOut, context));
        if (sink.Wants("out_proj.bias")) sink.Add("out_proj.bias", gOut.sum(dim: 1));
        if (sink.Wants("in_proj_weight"))
            sink.Add("in_proj_weight", cat([SumOfOuterProducts(gq, query), SumOfOuterProducts(gk, key),
                SumOfOuterProducts(gv, value)], 1));
        if (sink.Wants("q_proj_weight")) sink.Add("q_proj_weight", SumOfOuterProducts(gq, query));
        if (sink.Wants("k_proj_weight")) sink.Add("k_proj_weight", SumOfOuterProducts(gk, key));
        if (sink.Wants("v_proj_weight")) sink.Add("v_proj_weight", SumOfOuterProducts(gv, value));
        if (sink.Wants("in_proj_bias")) sink.Add("in_proj_bias", cat([gq.sum(dim: 1), gk.sum(dim: 1),
            gv.sum(dim: 1)], 1));
        if (gBiasKey is not null && sink.Wants("bias_k"))
            sink.Add("bias_k", gBiasKey.reshape(n, 1, 1, -1).contiguous());
        if (gBiasValue is not null && sink.Wants("bias_v"))
            sink.Add("bias_v", gBiasValue.reshape(n, 1, 1, -1).contiguous());
    }

    /// <summary>
    /// The layer's forward as libtorch computes it, from the projections up (the class summary), with each projection
    /// and the <c>bias_k</c>/<c>bias_v</c> rows marked in <paramref name="tape"/>. Keeps query, key, value and the
    /// context, samples first; marks the query, key and value projections, then <c>bias_k</c> and <c>bias_v</c>.
    /// </summary>
    public static Tensor?[] Forward(nn.Module layer, string path, object?[] arguments, LayerAxes axes,
        ForwardTape tape) => ScaledForward(layer, path, arguments, axes, tape, null);

    // Forward with another score scale than 1/sqrt(d) (a planted bug's).
    internal static Tensor?[] ScaledForward(nn.Module layer, string path, object?[] arguments, LayerAxes axes,
        ForwardTape tape, double? scale)
    {
        var attention = (MultiheadAttention)layer;
        var behaviour = AttentionInspection.Inspect(attention, path);
        var p = AttentionParameters.Of(name => attention.get_parameter(name)?.detach());
        Tensor? Argument(int slot) => ModuleSignature.TensorAt(arguments, slot) is { } t
            ? SlotLayout.First(t, slot < axes.Arguments.Count ? axes.Arguments[slot] : null) : null;
        var (query, key, value) = (Argument(0)!, Argument(1)!, Argument(2)!);
        long n = query.shape[0];
        foreach (var x in new[] { query, key, value }) tape.Keep(x);
        var qp = tape.Mark(Project(query, p.Query, p.QueryBias));
        var kp = tape.Mark(Project(key, p.Key, p.KeyBias));
        var vp = tape.Mark(Project(value, p.Value, p.ValueBias));
        var biasKey = p.BiasKey is { } bk ? tape.Mark(bk.reshape(1, 1, -1).expand(n, 1, -1)) : null;
        var biasValue = p.BiasValue is { } bv ? tape.Mark(bv.reshape(1, 1, -1).expand(n, 1, -1)) : null;
        var (context, weights) = AttentionCore.Attend(qp, kp, vp, behaviour.Heads, biasKey, biasValue,
            behaviour.ZeroAttention, Argument(5), Argument(3), scale);
        tape.Keep(context);
        Tensor? Back(Tensor t, int slot) => SlotLayout.Back(t, slot < axes.Outputs.Count ? axes.Outputs[slot] : null);
        return [Back(Project(context, p.Output, p.OutputBias), 0), Back(weights, 1)];
    }

    private record struct Projections(Tensor Query, Tensor Key, Tensor Value, Tensor Context, Tensor Gq, Tensor Gk,
        Tensor Gv, Tensor? GBiasKey, Tensor? GBiasValue);

    // What Forward kept and what the backward recorded; zeros where nothing reached (a fully masked key).
    private static Projections Recorded(ForwardTape tape, AttentionParameters p, long n)
    {
        var (query, key, value, context) = (tape.Values[0], tape.Values[1], tape.Values[2], tape.Values[3]);
        long e = p.Output.shape[0];
        Tensor At(int mark, long positions) => tape.Gradients[mark]
            ?? zeros([n, positions, e], dtype: context.dtype, device: context.device);
        return new Projections(query, key, value, context, At(0, query.shape[1]), At(1, key.shape[1]),
            At(2, value.shape[1]), p.BiasKey is null ? null : At(3, 1), p.BiasValue is null ? null : At(4, 1));
    }

    // The projections recomputed as leaves and the attention core run again, from the call alone.
    private static Projections Rerun(LayerCall call, MultiheadAttention attention, AttentionParameters p,
        double? scale)
    {
        var behaviour = AttentionInspection.Inspect(attention, call.Path);
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
        var outputs = new List<Tensor> { context };
        var gradients = new List<Tensor> { matmul(gOut, p.Output) };
        if (call.Gradient(1) is { } gWeights)
        {
            outputs.Add(weights);
            gradients.Add(gWeights);
        }
        var leaves = new[] { qp, kp, vp, biasKey, biasValue }.OfType<Tensor>().ToList();
        autograd.backward(outputs, gradients, inputs: leaves);
        return new Projections(query, key, value, context.detach(), Gradient(qp), Gradient(kp), Gradient(vp),
            biasKey is null ? null : Gradient(biasKey), biasValue is null ? null : Gradient(biasValue));
    }

    private static Tensor Project(Tensor x, Tensor weight, Tensor? bias) =>
        bias is null ? matmul(x, weight.t()) : matmul(x, weight.t()) + bias;

    // A leaf's gradient, zeros when nothing reached it (a fully masked key).
    private static Tensor Gradient(Tensor leaf) => leaf.grad is { IsInvalid: false } g ? g : zeros_like(leaf);
}
