using TorchSharp.Modules;
using PerSampleGrads.Maths;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace PerSampleGrads.Engines.Functional.Layers;

/// <summary>
/// ConvTranspose1d/2d/3d with per-sample weights as one grouped transposed convolution over the chunk: input
/// <c>[1, k*C_in, ...]</c>, weights <c>[k*C_in, C_out/G, ...K]</c>, k*G groups (sample i's input channels meet only
/// copy i), with the layer's stride, padding, output padding and dilation.
/// </summary>
public static class ConvTransposeForward
{
    /// <summary>The batched forward.</summary>
    public static Tensor Forward(FunctionalCall call)
    {
        var conv = (Convolution)call.Layer;
        var g = ConvolutionWindows.Of(conv);
        var weight = call.Parameters["weight"]!;
        long k = call.Input.shape[0];
        var input = call.Input.reshape([1, k * conv.in_channels, .. call.Input.shape[2..]]);
        var kernels = weight.reshape([k * conv.in_channels, .. weight.shape[2..]]);
        long groups = k * g.Groups;
        var y = g.SpatialDims switch
        {
            1 => F.conv_transpose1d(input, kernels, null, g.Stride[0], g.PadBefore[0], g.OutputPadding[0],
                g.Dilation[0],
                groups),
            2 => F.conv_transpose2d(input, kernels, null, g.Stride, g.PadBefore, g.OutputPadding, g.Dilation, groups),
            _ => F.conv_transpose3d(input, kernels, null, g.Stride, g.PadBefore, g.OutputPadding, g.Dilation, groups),
        };
        y = y.reshape([k, conv.out_channels, .. y.shape[2..]]);
        if (call.Parameters["bias"] is { } bias)
            y = y + bias.reshape([k, conv.out_channels, .. Enumerable.Repeat(1L, g.SpatialDims)]);
        return y;
    }
}
