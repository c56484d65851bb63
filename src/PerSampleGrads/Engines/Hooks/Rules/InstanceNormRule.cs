using TorchSharp.Modules;
using PerSampleGrads.Maths;
using static PerSampleGrads.Maths.PerSampleContractions;

namespace PerSampleGrads.Engines.Hooks.Rules;

/// <summary>
/// InstanceNorm1d/2d/3d with affine: like GroupNorm with one channel per group. x_hat uses the sample's own
/// statistics in training mode or without running statistics, else the running ones (eval with
/// <c>track_running_stats</c>); see <see cref="Normalized.Instance"/>.
/// </summary>
public static class InstanceNormRule
{
    /// <summary>
    /// Adds this call's per-sample gradients of the layer's trainable parameters, <c>[N, ...parameter shape]</c>,
    /// to the sink (the formula is in the class summary).
    /// </summary>
    public static void Compute(LayerCall call, ILayerGradientSink sink)
    {
        var norm = (InstanceNorm)call.Layer;
        var (weight, bias) = PerChannelAffine(call.OutputGradient, () => Normalized.Instance(norm, call.Input),
            sink.Wants("weight"), sink.Wants("bias"));
        if (weight is not null) sink.Add("weight", weight);
        if (bias is not null) sink.Add("bias", bias);
    }
}
