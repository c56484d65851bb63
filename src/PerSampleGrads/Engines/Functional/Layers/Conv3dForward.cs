using TorchSharp.Modules;
using PerSampleGrads.Maths;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace PerSampleGrads.Engines.Functional.Layers;

/// <summary>
/// Conv3d with per-sample weights as one grouped convolution over the chunk: input <c>[1, k*C, D, H, W]</c>, weights
/// <c>[k*O, C/G, kd, kh, kw]</c>, k*G groups, so sample i's channels meet only copy i. Padding modes other than
/// symmetric zeros are applied first, as the layer does.
/// </summary>
public static class Conv3dForward
{
    /// <summary>The batched forward.</summary>
    public static Tensor Forward(FunctionalCall call)
    {
        var conv = (Convolution)call.Layer;
        var geometry = ConvolutionWindows.Of(conv);
        var weight = call.Parameters["weight"]!;
        long k = call.Input.shape[0];
        bool zeros = geometry.SymmetricZeroPadding;
        var padded = zeros ? call.Input : geometry.Pad(call.Input);
        var input = padded.reshape([1, k * conv.in_channels, .. padded.shape[2..]]);
        var kernels = weight.reshape([k * conv.out_channels, .. weight.shape[2..]]);
        var y = F.conv3d(input, kernels, null, geometry.Stride, zeros ? geometry.PadBefore : [0, 0, 0],
            geometry.Dilation, k * geometry.Groups);
        y = y.reshape([k, conv.out_channels, .. y.shape[2..]]);
        if (call.Parameters["bias"] is { } bias) y = y + bias.reshape(k, conv.out_channels, 1, 1, 1);
        return y;
    }
}
