using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace PerSampleGrads.Maths;

/// <summary>
/// A convolution's geometry in any number of spatial dimensions (1, 2 or 3; plain or transposed), padding resolved
/// to explicit (before, after) amounts per dimension, for the per-sample maths of Conv3d and the transposed layers.
/// </summary>
/// <param name="Kernel">Kernel size per spatial dimension.</param>
/// <param name="Stride">Stride per spatial dimension.</param>
/// <param name="Dilation">Dilation per spatial dimension.</param>
/// <param name="PadBefore">Padding before the first element, per spatial dimension.</param>
/// <param name="PadAfter">Padding after the last element, per spatial dimension.</param>
/// <param name="OutputPadding">
/// Transposed layers: the extra output elements per dimension that the module really adds (TorchSharp 0.107 applies
/// its first <c>output_padding</c> value to every dimension); zeros otherwise.
/// </param>
/// <param name="Mode">How padding is filled (<see cref="PaddingModes.Constant"/> for zeros).</param>
/// <param name="Groups">Number of channel groups.</param>
/// <param name="Transposed">Whether the layer is a transposed convolution.</param>
public sealed record ConvolutionWindows(long[] Kernel, long[] Stride, long[] Dilation, long[] PadBefore,
    long[] PadAfter,
    long[] OutputPadding, PaddingModes Mode, long Groups, bool Transposed)
{
    /// <summary>Number of spatial dimensions.</summary>
    public int SpatialDims => Kernel.Length;

    /// <summary>Kernel elements per channel (the product of the kernel sizes).</summary>
    public long KernelElements => Kernel.Aggregate(1L, (a, b) => a * b);

    /// <summary>Reads the geometry of any convolution module (Conv1d/2d/3d, ConvTranspose1d/2d/3d).</summary>
    public static ConvolutionWindows Of(Convolution conv)
    {
        int dims = conv.kernel_size.Length;
        var before = new long[dims];
        var after = new long[dims];
        for (int d = 0; d < dims; d++)
        {
            if (conv.padding_type == Padding.Same)
            {
                // PyTorch's 'same': total padding dilation*(k-1), the odd unit after.
                long total = conv.dilation[d] * (conv.kernel_size[d] - 1);
                (before[d], after[d]) = (total / 2, total - total / 2);
            }
            else if (conv.padding_type == Padding.Valid) (before[d], after[d]) = (0, 0);
            else before[d] = after[d] = conv.padding?[d] ?? 0;
        }
        // Transposed layers always pad with zeros (PyTorch refuses other modes; TorchSharp ignores them).
        var mode = conv.transposed || conv.padding_mode == PaddingModes.Zeros ? PaddingModes.Constant
            : conv.padding_mode;
        long[] outputPadding = conv.transposed
            ? Enumerable.Repeat(conv.output_padding.Length > 0 ? conv.output_padding[0] : 0, dims).ToArray()
            : new long[dims];
        return new ConvolutionWindows([.. conv.kernel_size], [.. conv.stride], [.. conv.dilation], before, after,
            outputPadding, mode, conv.groups, conv.transposed);
    }

    /// <summary>Whether the padding is zeros, the same amount on both sides of every dimension.</summary>
    public bool SymmetricZeroPadding => Mode == PaddingModes.Constant && PadBefore.SequenceEqual(PadAfter);

    /// <summary>The input <c>[N, C, ...spatial]</c> padded as the layer pads it (a plain convolution's
    /// input).</summary>
    public Tensor Pad(Tensor input)
    {
        if (PadBefore.All(p => p == 0) && PadAfter.All(p => p == 0)) return input;
        // F.pad takes (before, after) pairs from the last dimension backwards.
        var pairs = new long[2 * SpatialDims];
        for (int d = 0; d < SpatialDims; d++)
        {
            pairs[2 * (SpatialDims - 1 - d)] = PadBefore[d];
            pairs[2 * (SpatialDims - 1 - d) + 1] = PadAfter[d];
        }
        return F.pad(input, pairs, Mode);
    }

    /// <summary>
    /// im2col in any dimension: the receptive fields of <paramref name="input"/> <c>[N, C, ...spatial]</c>,
    /// <c>[N, C * K, L]</c> with K kernel elements (row-major, as <c>F.unfold</c> orders them) and L output positions.
    /// With <paramref name="positions"/>, only the first positions[d] outputs of each dimension are kept.
    /// </summary>
    public Tensor Unfold(Tensor input, long[]? positions = null)
    {
        long n = input.shape[0], channels = input.shape[1];
        var windows = Pad(input);
        for (int d = 0; d < SpatialDims; d++)
        {
            long span = Dilation[d] * (Kernel[d] - 1) + 1;
            // Tensor.unfold appends the window as the last dimension: [N, C, o_1.., o_d, rest.., w_1.., w_d].
            windows = windows.unfold(2 + d, span, Stride[d]);
            if (Dilation[d] > 1) windows = windows.slice(-1, 0, span, Dilation[d]);
            if (positions is not null) windows = windows.narrow(2 + d, 0, positions[d]);
        }
        long outputs = windows.shape[2..(2 + SpatialDims)].Aggregate(1L, (a, b) => a * b);
        // [N, C, o.., w..] -> [N, C, w.., o..] -> [N, C * K, L].
        long[] order = [0, 1, .. Enumerable.Range(2 + SpatialDims, SpatialDims).Select(i => (long)i),
            .. Enumerable.Range(2, SpatialDims).Select(i => (long)i)];
        return windows.permute(order).reshape(n, channels * KernelElements, outputs);
    }
}
