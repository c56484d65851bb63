using TorchSharp.Modules;
using static PerSampleGrads.Maths.PerSampleContractions;
using F = TorchSharp.torch.nn.functional;

namespace PerSampleGrads.Engines.Hooks.Rules;

/// <summary>
/// InstanceNorm1d/2d with affine: like GroupNorm with one channel per group. x_hat uses the sample's own statistics
/// in training mode or without running statistics, else the running ones (eval with <c>track_running_stats</c>).
/// </summary>
public static class InstanceNormRule
{
    /// <summary>The rule.</summary>
    public static void Compute(LayerCall call, ILayerGradientSink sink)
    {
        var norm = (InstanceNorm)call.Layer;
        var (weight, bias) = PerChannelAffine(call.OutputGradient, () => Normalize(norm, call.Input), sink.Wants("weight"), sink.Wants("bias"));
        if (weight is not null) sink.Add("weight", weight);
        if (bias is not null) sink.Add("bias", bias);
    }

    /// <summary>The affine-free normalised input, as the module computes it in its current mode.</summary>
    internal static TorchSharp.torch.Tensor Normalize(InstanceNorm norm, TorchSharp.torch.Tensor input)
    {
        bool inputStatistics = norm.training || !norm.track_running_stats;
        return inputStatistics
            ? F.instance_norm(input, eps: norm.eps)
            : F.instance_norm(input, norm.running_mean, norm.running_var, use_input_stats: false, eps: norm.eps);
    }
}
