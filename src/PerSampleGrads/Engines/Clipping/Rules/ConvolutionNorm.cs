using TorchSharp.Modules;
using PerSampleGrads.Engines.Hooks;
using PerSampleGrads.Engines.Hooks.Rules;
using PerSampleGrads.Maths;

namespace PerSampleGrads.Engines.Clipping.Rules;

/// <summary>
/// Conv1d and Conv2d (every option the hook rule supports): the input unfolded into receptive fields
/// <c>[N, C*K, L]</c> and the output gradient <c>[N, O, L]</c> give, group by group, the weight's ghost norm from two
/// <c>[L, L]</c> Gram matrices per sample, or the materialised <c>[N, O, C/G*K]</c> where that is cheaper (few
/// channels, many positions: a network's first layer); bias <c>|sum_l g_l|^2</c> directly.
/// </summary>
public static class ConvolutionNorm
{
    /// <summary>
    /// Adds this call's per-sample squared gradient norms, <c>[N]</c>, to the sink by the route asked for, and
    /// returns the route taken.
    /// </summary>
    public static NormRoute Compute(LayerCall call, NormRoute route, ISquaredNormSink sink)
    {
        var conv = (Convolution)call.Layer;
        var geometry = ConvolutionGeometry.Of(conv);
        long n = call.OutputGradient.shape[0];
        var g = call.OutputGradient.reshape(n, conv.out_channels, -1);
        long positions = g.shape[2];
        long perGroupIn = conv.in_channels / geometry.Groups * geometry.KernelElements;
        bool ghost = route == NormRoute.Ghost
            || route == NormRoute.Auto && GhostNorms.GhostIsCheaper(positions, conv.out_channels / geometry.Groups,
                perGroupIn);
        if (!ghost) return MaterialisedNorm.Compute(ConvolutionRule.Compute, call, sink);
        if (sink.Wants("weight")) sink.Add("weight", GhostNorms.GroupedColumns(g, geometry.Unfold(call.Input),
            geometry.Groups));
        if (sink.Wants("bias")) sink.Add("bias", g.sum(dim: 2).square().sum(dim: 1));
        return NormRoute.Ghost;
    }
}
