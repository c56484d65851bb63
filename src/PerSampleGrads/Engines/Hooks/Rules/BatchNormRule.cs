using TorchSharp.Modules;
using PerSampleGrads.Maths;
using static PerSampleGrads.Maths.PerSampleContractions;

namespace PerSampleGrads.Engines.Hooks.Rules;

/// <summary>
/// BatchNorm1d/2d/3d in eval mode with running statistics: a fixed per-channel affine map
/// <c>y = x_hat * w + b</c> with <c>x_hat = (x - running_mean) / sqrt(running_var + eps)</c>, so
/// <c>dw[n, c] = sum_positions g[n, c] * x_hat[n, c]</c> and <c>db[n, c] = sum_positions g[n, c]</c>. (The validator
/// refuses BatchNorm in training mode and without running statistics, where x_hat mixes the samples.)
/// </summary>
public static class BatchNormRule
{
    /// <summary>
    /// Adds this call's per-sample gradients of the layer's trainable parameters, <c>[N, ...parameter shape]</c>,
    /// to the sink (the formula is in the class summary).
    /// </summary>
    public static void Compute(LayerCall call, ILayerGradientSink sink)
    {
        var norm = (BatchNorm)call.Layer;
        var (weight, bias) = PerChannelAffine(call.OutputGradient, () => Normalized.Batch(norm, call.Input),
            sink.Wants("weight"), sink.Wants("bias"));
        if (weight is not null) sink.Add("weight", weight);
        if (bias is not null) sink.Add("bias", bias);
    }
}
