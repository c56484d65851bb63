using TorchSharp.Modules;
using PerSampleGrads.Maths;
using static PerSampleGrads.Maths.PerSampleContractions;

namespace PerSampleGrads.Engines.Hooks.Rules;

/// <summary>
/// Conv1d and Conv2d (stride, padding in every mode, dilation, groups): unfold the input into receptive fields
/// <c>[N, C*K, L]</c> and contract with the output gradient <c>[N, O, L]</c> over the L output positions, group by
/// group: <c>dW[n, g, o, k] = sum_l grad[n, g, o, l] cols[n, g, k, l]</c>; <c>db[n, o] = sum_l grad[n, o, l]</c>.
/// </summary>
public static class ConvolutionRule
{
    /// <summary>
    /// Adds this call's per-sample gradients of the layer's trainable parameters, <c>[N, ...parameter shape]</c>,
    /// to the sink (the formula is in the class summary).
    /// </summary>
    public static void Compute(LayerCall call, ILayerGradientSink sink) =>
        Compute(call, sink, ConvolutionGeometry.Of((Convolution)call.Layer));

    internal static void Compute(LayerCall call, ILayerGradientSink sink, ConvolutionGeometry geometry)
    {
        var conv = (Convolution)call.Layer;
        long n = call.OutputGradient.shape[0];
        var g = call.OutputGradient.reshape(n, conv.out_channels, -1);
        if (sink.Wants("weight"))
        {
            var columns = geometry.Unfold(call.Input);
            if (sink.Destination("weight") is { } destination && WorthWritingInPlace(destination))
            {
                GroupedColumnsProductInto(g, columns, geometry.Groups, destination.view(n, conv.out_channels, -1));
                sink.Add("weight", destination);
            }
            else sink.Add("weight", GroupedColumnsProduct(g, columns, geometry.Groups).reshape([n,
                .. conv.weight.shape]));
        }
        if (sink.Wants("bias")) sink.Add("bias", g.sum(dim: 2));
    }
}
