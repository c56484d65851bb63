using TorchSharp.Modules;
using PerSampleGrads.Maths;
using static PerSampleGrads.Maths.PerSampleContractions;

namespace PerSampleGrads.Engines.Hooks.Rules;

/// <summary>
/// ConvTranspose1d/2d/3d (stride, padding, output padding, dilation, groups, bias). A transposed convolution is the
/// adjoint of the convolution C_W with the same weight and geometry: <c>y = C_W^T x</c>, so
/// <c>&lt;g, C_W^T x&gt; = &lt;C_W g, x&gt;</c> and its weight gradient is that of C_W applied to the output
/// gradient g with output gradient x: <c>dW[n, g, i, (o, k)] = sum_l x[n, g, i, l] cols(g)[n, g, (o, k), l]</c>, with
/// cols the receptive fields of g under C_W's geometry, cut to the input's positions l (output padding adds outputs
/// no input position reaches). Weight <c>[C_in, C_out/G, ...K]</c>; <c>db[n, o] = sum_positions g[n, o]</c>.
/// </summary>
public static class ConvTransposeRule
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
        if (sink.Wants("weight"))
        {
            var columns = geometry.Unfold(call.OutputGradient, positions: call.Input.shape[2..]);
            var input = call.Input.reshape(n, conv.in_channels, -1);
            sink.Add("weight", GroupedColumnsProduct(input, columns,
                geometry.Groups).reshape([n, .. conv.weight.shape]));
        }
        if (sink.Wants("bias")) sink.Add("bias", call.OutputGradient.reshape(n, conv.out_channels, -1).sum(dim: 2));
    }
}
