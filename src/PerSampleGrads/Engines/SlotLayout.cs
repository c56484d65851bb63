using PerSampleGrads.Engines.Probing;
using static TorchSharp.torch;

namespace PerSampleGrads.Engines;

/// <summary>
/// Moving a call's slots between the module's own layout and the engines' samples-first one, given the probe's
/// <see cref="LayerAxes"/>.
/// </summary>
internal static class SlotLayout
{
    /// <summary>
    /// The axes the engines work with once a shared primary input has been expanded to the batch (engines do that
    /// in a pre-hook): argument slot 0 and every shared output then hold the samples in dimension 0.
    /// </summary>
    public static LayerAxes AfterExpansion(LayerAxes axes)
    {
        if (!axes.Primary.IsShared || axes.Arguments.Count == 0 || axes.Arguments[0] is null) return axes;
        return new LayerAxes([SampleAxis.First, .. axes.Arguments.Skip(1)],
            axes.Outputs.Select(o => o is { IsShared: true } ? SampleAxis.First : o).ToList());
    }

    /// <summary>The tensor with the samples in dimension 0 when <paramref name="axis"/> puts them along a
    /// dimension; otherwise as it is.</summary>
    public static Tensor First(Tensor t, SampleAxis? axis) =>
        axis is { IsShared: false, Dimension: > 0 } a ? t.movedim([a.Dimension], [0]) : t;

    /// <summary>The inverse of <see cref="First"/>.</summary>
    public static Tensor Back(Tensor t, SampleAxis? axis) =>
        axis is { IsShared: false, Dimension: > 0 } a ? t.movedim([0], [a.Dimension]) : t;

    /// <summary>Every argument with tensors samples-first and passed through <paramref name="keep"/>; other values
    /// as they are.</summary>
    public static object?[] ArgumentsFirst(object?[] arguments, LayerAxes axes, Func<Tensor, Tensor> keep) =>
        arguments.Select((a, i) => a is Tensor t
            ? (object)keep(First(t, i < axes.Arguments.Count ? axes.Arguments[i] : null)) : a).ToArray();

    /// <summary>
    /// The arguments of a call whose outputs are discarded, on one sample: every tensor narrowed to its first sample
    /// along its located dimension; null (the arguments as given) when some tensor's samples were not located or are
    /// shared.
    /// </summary>
    public static object?[]? OneSampleStandIn(object?[] arguments, LayerAxes axes)
    {
        var standIn = new object?[arguments.Length];
        for (int slot = 0; slot < arguments.Length; slot++)
        {
            if (arguments[slot] is not Tensor t)
            {
                standIn[slot] = arguments[slot];
                continue;
            }
            if (slot >= axes.Arguments.Count || axes.Arguments[slot] is not { IsShared: false } axis) return null;
            standIn[slot] = t.narrow(axis.Dimension, 0, 1);
        }
        return standIn;
    }

    /// <summary>Whether <paramref name="slot"/> holds one value per sample along a dimension.</summary>
    public static bool PerSample(IReadOnlyList<SampleAxis?> axes, int slot) =>
        slot < axes.Count && axes[slot] is { IsShared: false };
}
