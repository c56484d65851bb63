using TorchSharp.Modules;
using static PerSampleGrads.Maths.PerSampleContractions;
using F = TorchSharp.torch.nn.functional;

namespace PerSampleGrads.Engines.Hooks.Rules;

/// <summary>
/// GroupNorm with any group count: <c>y = x_hat * w + b</c> per channel, so
/// <c>dw[n, c] = sum_spatial g[n, c] * x_hat[n, c]</c> and <c>db[n, c] = sum_spatial g[n, c]</c>, with x_hat the
/// input normalised per sample and group (recomputed from the captured input).
/// </summary>
public static class GroupNormRule
{
    /// <summary>
    /// Adds this call's per-sample gradients of the layer's trainable parameters, <c>[N, ...parameter shape]</c>,
    /// to the sink (the formula is in the class summary).
    /// </summary>
    public static void Compute(LayerCall call, ILayerGradientSink sink)
    {
        var norm = (GroupNorm)call.Layer;
        var (weight, bias) = PerChannelAffine(call.OutputGradient,
            () => F.group_norm(call.Input, norm.num_groups, eps: norm.eps),
            sink.Wants("weight"), sink.Wants("bias"));
        if (weight is not null) sink.Add("weight", weight);
        if (bias is not null) sink.Add("bias", bias);
    }
}
