using TorchSharp.Modules;
using PerSampleGrads.Maths;
using static PerSampleGrads.Maths.PerSampleContractions;

namespace PerSampleGrads.Engines.Hooks.Rules;

/// <summary>
/// Conv3d (stride, padding in every mode incl. <c>same</c>/<c>valid</c>, dilation, groups): the input's receptive
/// fields <c>[N, C*K, L]</c> (3-d im2col, <see cref="ConvolutionWindows.Unfold"/>) contracted with the output gradient
/// <c>[N, O, L]</c> over the L output positions, group by group:
/// <c>dW[n, g, o, k] = sum_l grad[n, g, o, l] cols[n, g, k, l]</c>; <c>db[n, o] = sum_l grad[n, o, l]</c>.
/// </summary>
public static class Conv3dRule
{
    /// <summary>
    /// Adds this call's per-sample gradients of the layer's trainable parameters, <c>[N, ...parameter shape]</c>,
    /// to the sink (the formula is in the class summary).
    /// </summary>
    public static void Compute(LayerCall call, ILayerGradientSink sink)
    {
        var conv = (Convolution)call.Layer;
        var geometry = ConvolutionWindows.Of(conv);
        long n = call.OutputGradient.shape[0];
        var g = call.OutputGradient.reshape(n, conv.out_channels, -1);
        if (sink.Wants("weight"))
            sink.Add("weight", GroupedColumnsProduct(g, geometry.Unfold(call.Input), geometry.Groups)
                .reshape([n, .. conv.weight.shape]));
        if (sink.Wants("bias")) sink.Add("bias", g.sum(dim: 2));
    }
}
