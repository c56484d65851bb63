using TorchSharp;
using TorchSharp.Modules;
using PerSampleGrads.Maths;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace PerSampleGrads.Engines.Functional.Layers;

/// <summary>
/// Conv1d/Conv2d with per-sample weights, by one of two routes (<see cref="ConvolutionStrategy"/>): a grouped
/// convolution over the whole batch, or unfold + batched matrix product. Which is faster depends on the device and the
/// layer's shape (see <see cref="Choose"/>).
/// </summary>
public static class ConvolutionForward
{
    /// <summary>
    /// Output positions at or below which unfold + matmul beats the grouped convolution on the CPU. Measured with
    /// ResNet-18's layers at N = 32 on 2 cores (docs/benchmarks.md, "Convolution routes"): unfold wins at 8x8 and
    /// smaller, the grouped convolution from 16x16 up, where unfold's buffer (C*k*k x positions per sample) grows large.
    /// </summary>
    public const long CpuUnfoldMaxPositions = 64;

    /// <summary>The batched forward.</summary>
    public static Tensor Forward(FunctionalCall call)
    {
        var conv = (Convolution)call.Layer;
        var geometry = ConvolutionGeometry.Of(conv);
        var weight = call.Parameters["weight"]!;
        var bias = call.Parameters["bias"];
        long k = call.Input.shape[0];
        var (padded, zeros) = geometry.Pad(geometry.As2d(call.Input));
        long outH = OutputSize(padded.shape[2], zeros.H, geometry.Kernel.H, geometry.Stride.H, geometry.Dilation.H);
        long outW = OutputSize(padded.shape[3], zeros.W, geometry.Kernel.W, geometry.Stride.W, geometry.Dilation.W);

        var y = Choose(call.Convolution, call.Input.device, outH * outW) == ConvolutionStrategy.GroupedConvolution
            ? Grouped(padded, zeros, weight, geometry, conv, k)
            : Unfolded(padded, zeros, weight, geometry, conv, k, outH, outW);
        if (bias is not null) y = y + bias.reshape(k, conv.out_channels, 1, 1);
        return geometry.SpatialDims == 1 ? y.squeeze(2) : y;
    }

    /// <summary>The route for a layer with <paramref name="positions"/> output positions on <paramref name="device"/>.</summary>
    public static ConvolutionStrategy Choose(ConvolutionStrategy requested, Device device, long positions) => requested switch
    {
        ConvolutionStrategy.Auto when device.type == DeviceType.CUDA => ConvolutionStrategy.GroupedConvolution,
        ConvolutionStrategy.Auto => positions <= CpuUnfoldMaxPositions ? ConvolutionStrategy.UnfoldMatmul : ConvolutionStrategy.GroupedConvolution,
        _ => requested,
    };

    private static Tensor Grouped(Tensor padded, (long H, long W) zeros, Tensor weight, ConvolutionGeometry g, Convolution conv, long k)
    {
        var input = padded.reshape(1, k * padded.shape[1], padded.shape[2], padded.shape[3]);
        var kernels = weight.reshape(k * conv.out_channels, weight.shape[2], g.Kernel.H, g.Kernel.W);
        var y = F.conv2d(input, kernels, null, [g.Stride.H, g.Stride.W], [zeros.H, zeros.W], [g.Dilation.H, g.Dilation.W], k * g.Groups);
        return y.reshape(k, conv.out_channels, y.shape[2], y.shape[3]);
    }

    private static Tensor Unfolded(Tensor padded, (long H, long W) zeros, Tensor weight, ConvolutionGeometry g, Convolution conv,
        long k, long outH, long outW)
    {
        var columns = F.unfold(padded, g.Kernel, g.Dilation, zeros, g.Stride);
        long perGroup = columns.shape[1] / g.Groups;
        var y = matmul(
            weight.reshape(k, g.Groups, conv.out_channels / g.Groups, perGroup),
            columns.reshape(k, g.Groups, perGroup, columns.shape[2]));
        return y.reshape(k, conv.out_channels, outH, outW);
    }

    private static long OutputSize(long paddedSize, long zeroPadding, long kernel, long stride, long dilation) =>
        (paddedSize + 2 * zeroPadding - dilation * (kernel - 1) - 1) / stride + 1;
}
