using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace PerSampleGrads.Maths;

/// <summary>
/// A Conv1d/Conv2d layer's geometry in one form for the per-sample maths: always two spatial dimensions (a 1-d
/// convolution is a 2-d one of height 1), padding resolved to explicit (before, after) amounts per dimension.
/// </summary>
/// <param name="Kernel">Kernel size (height, width).</param>
/// <param name="Stride">Stride (height, width).</param>
/// <param name="Dilation">Dilation (height, width).</param>
/// <param name="PadTop">Padding before the first row.</param>
/// <param name="PadBottom">Padding after the last row.</param>
/// <param name="PadLeft">Padding before the first column.</param>
/// <param name="PadRight">Padding after the last column.</param>
/// <param name="Mode">How padding is filled.</param>
/// <param name="Groups">Number of channel groups.</param>
/// <param name="SpatialDims">1 for Conv1d, 2 for Conv2d.</param>
public sealed record ConvolutionGeometry(
    (long H, long W) Kernel, (long H, long W) Stride, (long H, long W) Dilation,
    long PadTop, long PadBottom, long PadLeft, long PadRight, PaddingModes Mode, long Groups, int SpatialDims)
{
    /// <summary>Reads the geometry of a Conv1d or Conv2d module.</summary>
    public static ConvolutionGeometry Of(Convolution conv)
    {
        int dims = conv.kernel_size.Length;
        if (dims is not (1 or 2) || conv.transposed)
            throw new NotSupportedException($"Only Conv1d and Conv2d are supported, not {conv.GetType().Name}.");
        var pads = new (long Before, long After)[dims];
        for (int d = 0; d < dims; d++)
        {
            if (conv.padding_type == Padding.Same)
            {
                // PyTorch's 'same': total padding dilation*(k-1), the odd unit after.
                long total = conv.dilation[d] * (conv.kernel_size[d] - 1);
                pads[d] = (total / 2, total - total / 2);
            }
            else if (conv.padding_type == Padding.Valid) pads[d] = (0, 0);
            else { long p = conv.padding?[d] ?? 0; pads[d] = (p, p); }
        }
        var mode = conv.padding_mode == PaddingModes.Zeros ? PaddingModes.Constant : conv.padding_mode;
        return dims == 1
            ? new ConvolutionGeometry((1, conv.kernel_size[0]), (1, conv.stride[0]), (1, conv.dilation[0]),
                0, 0, pads[0].Before, pads[0].After, mode, conv.groups, 1)
            : new ConvolutionGeometry((conv.kernel_size[0], conv.kernel_size[1]), (conv.stride[0], conv.stride[1]),
                (conv.dilation[0], conv.dilation[1]), pads[0].Before, pads[0].After, pads[1].Before, pads[1].After,
                mode, conv.groups, 2);
    }

    /// <summary>Kernel elements per channel (kh * kw).</summary>
    public long KernelElements => Kernel.H * Kernel.W;

    private bool SymmetricZeroPadding => Mode == PaddingModes.Constant && PadTop == PadBottom && PadLeft == PadRight;

    /// <summary>A 1-d layer's <c>[N, C, L]</c> tensor as <c>[N, C, 1, L]</c>; 2-d tensors pass through.</summary>
    public Tensor As2d(Tensor t) => SpatialDims == 1 ? t.unsqueeze(2) : t;

    /// <summary>
    /// The input padded as the layer pads it, <c>[N, C, H', W']</c>, plus the padding still to apply symmetrically with
    /// zeros (unfold and conv2d do that without a copy when they can).
    /// </summary>
    public (Tensor Padded, (long H, long W) ZeroPadding) Pad(Tensor input2d)
    {
        if (SymmetricZeroPadding) return (input2d, (PadTop, PadLeft));
        // F.pad takes (left, right, top, bottom) for the last two dimensions.
        return (F.pad(input2d, [PadLeft, PadRight, PadTop, PadBottom], Mode), (0, 0));
    }

    /// <summary>
    /// im2col: the input's receptive fields, <c>[N, C * kh * kw, L]</c> with L output positions.
    /// </summary>
    public Tensor Unfold(Tensor input)
    {
        var (padded, zeros) = Pad(As2d(input));
        return F.unfold(padded, Kernel, Dilation, zeros, Stride);
    }
}
