using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace PerSampleGrads.Testing.Specs;

/// <summary>One spatial axis of a convolution's geometry.</summary>
/// <param name="Kernel">Kernel size along the axis.</param>
/// <param name="Stride">Stride along the axis.</param>
/// <param name="Padding">Padding on each side (explicit padding only).</param>
/// <param name="Dilation">Dilation along the axis.</param>
public sealed record ConvAxis(long Kernel, long Stride, long Padding, long Dilation)
{
    /// <summary>Span of the dilated kernel: <c>dilation * (kernel - 1) + 1</c>.</summary>
    public long Span => Dilation * (Kernel - 1) + 1;

    /// <summary><c>k3s2p1d1</c>.</summary>
    public override string ToString() => $"k{Kernel}s{Stride}p{Padding}d{Dilation}";
}

/// <summary>How a convolution pads: explicit amounts per axis, PyTorch's <c>'same'</c>, or <c>'valid'</c>.</summary>
public enum ConvPadding
{
    /// <summary>The axes' <see cref="ConvAxis.Padding"/>.</summary>
    Explicit,
    /// <summary>Output size equals input size (stride 1; an even span puts the odd unit after).</summary>
    Same,
    /// <summary>No padding.</summary>
    Valid,
}

/// <summary>
/// Conv1d, Conv2d or Conv3d (one <see cref="ConvAxis"/> per spatial dimension, independent per axis), with groups,
/// bias, a padding mode (zeros, reflect, replicate, circular) and explicit, <c>'same'</c> or <c>'valid'</c> padding.
/// </summary>
public sealed record ConvSpec(long Out, IReadOnlyList<ConvAxis> Axes, long Groups, bool Bias = true,
    PaddingModes Mode = PaddingModes.Zeros, ConvPadding Padding = ConvPadding.Explicit) : LayerSpec
{
    /// <summary>Number of spatial dimensions.</summary>
    public int SpatialDims => Axes.Count;

    /// <summary>(before, after) padding of an axis as the layer applies it.</summary>
    public (long Before, long After) PaddingOf(ConvAxis axis) => Padding switch
    {
        ConvPadding.Same => ((axis.Span - 1) / 2, axis.Span - 1 - (axis.Span - 1) / 2),
        ConvPadding.Valid => (0, 0),
        _ => (axis.Padding, axis.Padding),
    };

    /// <inheritdoc/>
    public override SampleShape? Apply(SampleShape input)
    {
        if (input.Kind != SampleShape.SpatialKind(SpatialDims) || Groups < 1 || input.Channels % Groups != 0
            || Out % Groups != 0 || Out < 1)
            return null;
        if (Padding == ConvPadding.Same && Axes.Any(a => a.Stride != 1)) return null;
        var sizes = new long[SpatialDims];
        for (int d = 0; d < SpatialDims; d++)
        {
            var axis = Axes[d];
            var (before, after) = PaddingOf(axis);
            long size = input.Spatial[d];
            if (axis.Kernel < 1 || axis.Stride < 1 || axis.Dilation < 1 || axis.Padding < 0) return null;
            // Reflect padding needs fewer pad elements than the axis has; circular at most as many.
            if (Mode == PaddingModes.Reflect && Math.Max(before, after) >= size) return null;
            if (Mode == PaddingModes.Circular && Math.Max(before, after) > size) return null;
            long padded = size + before + after;
            if (padded < axis.Span) return null;
            sizes[d] = (padded - axis.Span) / axis.Stride + 1;
        }
        return input.With([Out, .. sizes]);
    }

    /// <inheritdoc/>
    public override nn.Module<Tensor, Tensor> Build(SampleShape input)
    {
        long c = input.Channels;
        long[] k = [.. Axes.Select(a => a.Kernel)], s = [.. Axes.Select(a => a.Stride)],
            p = [.. Axes.Select(a => a.Padding)], d = [.. Axes.Select(a => a.Dilation)];
        if (Padding != ConvPadding.Explicit)
        {
            var rule = Padding == ConvPadding.Same ? TorchSharp.Padding.Same : TorchSharp.Padding.Valid;
            return SpatialDims switch
            {
                1 => Conv1d(c, Out, k[0], rule, s[0], d[0], Mode, Groups, Bias),
                2 => Conv2d(c, Out, (k[0], k[1]), rule, (s[0], s[1]), (d[0], d[1]), Mode, Groups, Bias),
                _ => Conv3d(c, Out, (k[0], k[1], k[2]), rule, (s[0], s[1], s[2]), (d[0], d[1], d[2]), Mode, Groups,
                    Bias),
            };
        }
        return SpatialDims switch
        {
            1 => Conv1d(c, Out, k[0], s[0], p[0], d[0], Mode, Groups, Bias),
            2 => Conv2d(c, Out, (k[0], k[1]), (s[0], s[1]), (p[0], p[1]), (d[0], d[1]), Mode, Groups, Bias),
            _ => Conv3d(c, Out, (k[0], k[1], k[2]), (s[0], s[1], s[2]), (p[0], p[1], p[2]), (d[0], d[1], d[2]), Mode,
                Groups, Bias),
        };
    }

    /// <inheritdoc/>
    public override string Describe(SampleShape input)
    {
        string padding = Padding switch
        {
            ConvPadding.Same => ",same",
            ConvPadding.Valid => ",valid",
            _ => "",
        };
        string mode = Mode == PaddingModes.Zeros ? "" : $",{Mode.ToString().ToLowerInvariant()}";
        return $"Conv{SpatialDims}d({input.Channels}->{Out},{string.Join("x", Axes)},g{Groups}{padding}{mode}" +
            $"{(Bias ? "" : ",nobias")})";
    }

    /// <inheritdoc/>
    public override IEnumerable<LayerSpec> Simpler()
    {
        if (Groups > 1) yield return this with { Groups = 1 };
        if (Padding != ConvPadding.Explicit) yield return this with { Padding = ConvPadding.Explicit };
        if (Mode != PaddingModes.Zeros) yield return this with { Mode = PaddingModes.Zeros };
        foreach (var axes in ConvolutionOptions.SimplerAxes(Axes)) yield return this with { Axes = axes };
        if (Out > Groups) yield return this with { Out = Groups };
        if (Out > 2 * Groups) yield return this with { Out = Out - Groups };
    }

    /// <inheritdoc/>
    public override IEnumerable<string> Exercises(SampleShape input)
    {
        string layer = $"conv{SpatialDims}d";
        yield return layer;
        foreach (var option in ConvolutionOptions.Of(Axes, Groups, Bias))
            yield return $"{layer}: {option}";
        if (Padding == ConvPadding.Same) yield return $"{layer}: same{(Axes.Any(a => a.Span % 2 == 0) ? " even" : "")}";
        if (Padding == ConvPadding.Valid) yield return $"{layer}: valid";
        if (Padding == ConvPadding.Explicit && Axes.Any(a => a.Padding > 0))
            yield return $"{layer}: padding {Mode.ToString().ToLowerInvariant()}";
    }
}

/// <summary>
/// ConvTranspose1d, 2d or 3d: one <see cref="ConvAxis"/> per spatial dimension, groups, bias and an output padding
/// (TorchSharp 0.107 applies one output padding to every axis; it must be below the stride or the dilation of each).
/// </summary>
public sealed record ConvTransposeSpec(long Out, IReadOnlyList<ConvAxis> Axes, long Groups, long OutputPadding = 0,
    bool Bias = true) : LayerSpec
{
    /// <summary>Number of spatial dimensions.</summary>
    public int SpatialDims => Axes.Count;

    /// <inheritdoc/>
    public override SampleShape? Apply(SampleShape input)
    {
        if (input.Kind != SampleShape.SpatialKind(SpatialDims) || Groups < 1 || input.Channels % Groups != 0
            || Out % Groups != 0 || Out < 1 || OutputPadding < 0)
            return null;
        var sizes = new long[SpatialDims];
        for (int d = 0; d < SpatialDims; d++)
        {
            var axis = Axes[d];
            if (axis.Kernel < 1 || axis.Stride < 1 || axis.Dilation < 1 || axis.Padding < 0) return null;
            if (OutputPadding >= Math.Max(axis.Stride, axis.Dilation)) return null;
            sizes[d] = (input.Spatial[d] - 1) * axis.Stride - 2 * axis.Padding + axis.Span - 1 + OutputPadding + 1;
        }
        return input.With([Out, .. sizes]);
    }

    /// <inheritdoc/>
    public override nn.Module<Tensor, Tensor> Build(SampleShape input)
    {
        long c = input.Channels, op = OutputPadding;
        long[] k = [.. Axes.Select(a => a.Kernel)], s = [.. Axes.Select(a => a.Stride)],
            p = [.. Axes.Select(a => a.Padding)], d = [.. Axes.Select(a => a.Dilation)];
        return SpatialDims switch
        {
            1 => ConvTranspose1d(c, Out, k[0], s[0], p[0], op, d[0], PaddingModes.Zeros, Groups, Bias),
            2 => ConvTranspose2d(c, Out, (k[0], k[1]), (s[0], s[1]), (p[0], p[1]), (op, op), (d[0], d[1]),
                PaddingModes.Zeros, Groups, Bias),
            _ => ConvTranspose3d(c, Out, (k[0], k[1], k[2]), (s[0], s[1], s[2]), (p[0], p[1], p[2]), (op, op, op),
                (d[0], d[1], d[2]), PaddingModes.Zeros, Groups, Bias),
        };
    }

    /// <inheritdoc/>
    public override string Describe(SampleShape input) =>
        $"ConvTranspose{SpatialDims}d({input.Channels}->{Out},{string.Join("x", Axes)},g{Groups},op{OutputPadding}" +
        $"{(Bias ? "" : ",nobias")})";

    /// <inheritdoc/>
    public override IEnumerable<LayerSpec> Simpler()
    {
        if (Groups > 1) yield return this with { Groups = 1 };
        if (OutputPadding > 0) yield return this with { OutputPadding = 0 };
        foreach (var axes in ConvolutionOptions.SimplerAxes(Axes)) yield return this with { Axes = axes };
        if (Out > Groups) yield return this with { Out = Groups };
    }

    /// <inheritdoc/>
    public override IEnumerable<string> Exercises(SampleShape input)
    {
        string layer = $"convtranspose{SpatialDims}d";
        yield return layer;
        foreach (var option in ConvolutionOptions.Of(Axes, Groups, Bias)) yield return $"{layer}: {option}";
        if (Axes.Any(a => a.Padding > 0)) yield return $"{layer}: padding zeros";
        if (OutputPadding > 0) yield return $"{layer}: output padding";
    }
}

/// <summary>The option values a convolution's geometry exercises, shared by plain and transposed layers.</summary>
public static class ConvolutionOptions
{
    /// <summary>The axes with one option of one axis simplified (dilation, stride, padding, kernel), for
    /// shrinking.</summary>
    public static IEnumerable<ConvAxis[]> SimplerAxes(IReadOnlyList<ConvAxis> axes)
    {
        for (int d = 0; d < axes.Count; d++)
        {
            var axis = axes[d];
            var simpler = new List<ConvAxis>();
            if (axis.Dilation > 1) simpler.Add(axis with { Dilation = 1 });
            if (axis.Stride > 1) simpler.Add(axis with { Stride = 1 });
            if (axis.Padding > 0) simpler.Add(axis with { Padding = axis.Padding - 1 });
            if (axis.Kernel > 1) simpler.Add(axis with { Kernel = axis.Kernel - 1 });
            int at = d;
            foreach (var candidate in simpler) yield return [.. axes.Select((a, i) => i == at ? candidate : a)];
        }
    }

    /// <summary>Stride, dilation, kernel shape, per-axis differences, groups and bias.</summary>
    public static IEnumerable<string> Of(IReadOnlyList<ConvAxis> axes, long groups, bool bias)
    {
        if (axes.Any(a => a.Stride > 1)) yield return "stride";
        if (axes.Any(a => a.Dilation > 1 && a.Kernel > 1)) yield return "dilation";
        if (axes.Any(a => a.Kernel % 2 == 0)) yield return "even kernel";
        if (axes.Count > 1 && axes.Distinct().Count() > 1) yield return "axes differ";
        if (groups > 1) yield return "groups";
        if (!bias) yield return "no bias";
    }
}
