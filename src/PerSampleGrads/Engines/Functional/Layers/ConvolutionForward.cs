using TorchSharp;
using TorchSharp.Modules;
using PerSampleGrads.Maths;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace PerSampleGrads.Engines.Functional.Layers;

/// <summary>
/// Conv1d/Conv2d with per-sample weights, by one of three routes (<see cref="ConvolutionStrategy"/>): a grouped
/// convolution over the whole batch, unfold + batched matrix product, or the shared-value route (the layer's own
/// convolution for the value and the input gradient, unfold + batched product for the per-sample weight path). Which
/// is faster depends on the device and the layer's shape (see <see cref="Choose"/>).
/// </summary>
public static class ConvolutionForward
{

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

        var strategy = Choose(call.Convolution, call.Input.device, outH * outW);
        Tensor y;
        if (strategy == ConvolutionStrategy.SharedValueUnfold)
        {
            y = SharedValue(padded, zeros, call.Parameters, geometry, conv, k, outH, outW);
        }
        else
        {
            y = strategy == ConvolutionStrategy.GroupedConvolution
                ? Grouped(padded, zeros, weight, geometry, conv, k)
                : Unfolded(padded, zeros, weight, geometry, conv, k, outH, outW);
            if (bias is not null) y = y + bias.reshape(k, conv.out_channels, 1, 1);
        }
        return geometry.SpatialDims == 1 ? y.squeeze(2) : y;
    }

    /// <summary>
    /// Output positions from which the CPU takes the grouped convolution (oneDNN, N*C groups); below, the shared-value
    /// route. Measured on 2 cores (docs/benchmarks.md, "Convolution routes"): the small CNN's 32x32 and 16x16 layers
    /// run 1.5x faster grouped; ResNet-18's 8x8 and smaller layers run faster shared-value (the whole model 0.97 s
    /// against 1.08 s with the grouped route from 4x4 up at N = 32), and grouped kernels collapse at 1x1 (25x slower).
    /// </summary>
    public const long CpuGroupedMinPositions = 256;

    /// <summary>
    /// The route for a layer with <paramref name="positions"/> output positions on <paramref name="device"/> when
    /// <paramref name="requested"/> is <see cref="ConvolutionStrategy.Auto"/>. On CUDA the grouped convolution (cuDNN),
    /// not yet measured there.
    /// </summary>
    public static ConvolutionStrategy Choose(ConvolutionStrategy requested, Device device, long positions)
        => requested switch
    {
        ConvolutionStrategy.Auto when device.type == DeviceType.CUDA => ConvolutionStrategy.GroupedConvolution,
        ConvolutionStrategy.Auto => positions >= CpuGroupedMinPositions ? ConvolutionStrategy.GroupedConvolution
            : ConvolutionStrategy.SharedValueUnfold,
        _ => requested,
    };

    private static Tensor Grouped(Tensor padded, (long H, long W) zeros, Tensor weight, ConvolutionGeometry g,
        Convolution conv, long k)
    {
        var input = padded.reshape(1, k * padded.shape[1], padded.shape[2], padded.shape[3]);
        var kernels = weight.reshape(k * conv.out_channels, weight.shape[2], g.Kernel.H, g.Kernel.W);
        var y = F.conv2d(input, kernels, null, [g.Stride.H, g.Stride.W], [zeros.H, zeros.W],
            [g.Dilation.H, g.Dilation.W], k * g.Groups);
        return y.reshape(k, conv.out_channels, y.shape[2], y.shape[3]);
    }

    private static Tensor Unfolded(Tensor padded, (long H, long W) zeros, Tensor weight, ConvolutionGeometry g,
        Convolution conv,
        long k, long outH, long outW)
    {
        var columns = F.unfold(padded, g.Kernel, g.Dilation, zeros, g.Stride);
        long perGroup = columns.shape[1] / g.Groups;
        var y = matmul(
            weight.reshape(k, g.Groups, conv.out_channels / g.Groups, perGroup),
            columns.reshape(k, g.Groups, perGroup, columns.shape[2]));
        return y.reshape(k, conv.out_channels, outH, outW);
    }

    // value: the layer's convolution with the shared weight and bias (its backward gives the input's gradient);
    // plus, per trainable parameter, t - t.detach() with t computed from the per-sample copies: zero in value,
    // gradient exactly the per-sample one.
    private static Tensor SharedValue(Tensor padded, (long H, long W) zeros, SampleParameters parameters,
        ConvolutionGeometry g,
        Convolution conv, long k, long outH, long outW)
    {
        var y = F.conv2d(padded, parameters.Shared("weight")!.reshape(conv.out_channels, -1, g.Kernel.H, g.Kernel.W),
            parameters.Shared("bias"), [g.Stride.H, g.Stride.W], [zeros.H, zeros.W], [g.Dilation.H, g.Dilation.W],
                g.Groups);
        var weight = parameters["weight"]!;
        if (weight.requires_grad)
        {
            var columns = F.unfold(padded.detach(), g.Kernel, g.Dilation, zeros, g.Stride);
            long perGroup = columns.shape[1] / g.Groups, positions = columns.shape[2];
            var w = weight.reshape(k, g.Groups, conv.out_channels / g.Groups, perGroup);
            var t = matmul(w, columns.reshape(k, g.Groups, perGroup, positions));
            t = t.reshape(k, conv.out_channels, outH, outW);
            y = y + (t - t.detach());
        }
        if (parameters["bias"] is { requires_grad: true } bias)
        {
            var b = bias.reshape(k, conv.out_channels, 1, 1);
            y = y + (b - b.detach());
        }
        return y;
    }

    private static long OutputSize(long paddedSize, long zeroPadding, long kernel, long stride, long dilation) =>
        (paddedSize + 2 * zeroPadding - dilation * (kernel - 1) - 1) / stride + 1;
}
