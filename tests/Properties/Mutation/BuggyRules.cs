using TorchSharp.Modules;
using PerSampleGrads.Engines.Hooks;
using PerSampleGrads.Engines.Hooks.Rules;
using PerSampleGrads.Maths;
using static PerSampleGrads.Maths.PerSampleContractions;
using F = TorchSharp.torch.nn.functional;

namespace PerSampleGrads.Tests.Mutation;

/// <summary>
/// Per-layer rules with one realistic bug each, built from the same maths helpers as the real rules. They reach the
/// hook engine only through its rule table (<see cref="HookEngine"/>'s constructor), never through the default table.
/// </summary>
internal static class BuggyRules
{
    /// <summary>Convolution: unfolds the input with dilation 1 whatever the layer's dilation.</summary>
    public static void ConvolutionIgnoringDilation(LayerCall call, ILayerGradientSink sink) =>
        ConvolutionRule.Compute(call, sink,
            ConvolutionGeometry.Of((Convolution)call.Layer) with { Dilation = (1, 1) });

    /// <summary>Convolution: contracts every output channel with the first group's input channels.</summary>
    public static void ConvolutionIgnoringGroups(LayerCall call, ILayerGradientSink sink)
    {
        var conv = (Convolution)call.Layer;
        var geometry = ConvolutionGeometry.Of(conv);
        long n = call.OutputGradient.shape[0];
        var g = call.OutputGradient.reshape(n, conv.out_channels, -1);
        if (sink.Wants("weight"))
        {
            var columns = geometry.Unfold(call.Input);
            var firstGroup = columns.narrow(1, 0, columns.shape[1] / geometry.Groups);
            sink.Add("weight", GroupedColumnsProduct(g, firstGroup, 1).reshape([n, .. conv.weight.shape]));
        }
        if (sink.Wants("bias")) sink.Add("bias", g.sum(dim: 2));
    }

    /// <summary>Linear: the bias gradient summed over samples and positions (the batch gradient), handed to every
    /// sample.</summary>
    public static void LinearBiasSummedOverTheBatch(LayerCall call, ILayerGradientSink sink)
    {
        var g = FlattenPositions(call.OutputGradient);
        if (sink.Wants("weight")) sink.Add("weight", SumOfOuterProducts(g, FlattenPositions(call.Input)));
        if (sink.Wants("bias")) sink.Add("bias", g.sum([0L, 1L]).unsqueeze(0).repeat(g.shape[0], 1));
    }

    /// <summary>Linear: <c>x g^T</c> instead of <c>g x^T</c>, reshaped into the weight's shape.</summary>
    public static void LinearWithTransposedOperands(LayerCall call, ILayerGradientSink sink)
    {
        var g = FlattenPositions(call.OutputGradient);
        var weight = ((Linear)call.Layer).weight!;
        if (sink.Wants("weight")) sink.Add("weight", SumOfOuterProducts(FlattenPositions(call.Input),
            g).reshape([g.shape[0], .. weight.shape]));
        if (sink.Wants("bias")) sink.Add("bias", g.sum(dim: 1));
    }

    /// <summary>GroupNorm: normalises strided channel sets (channel c in group c mod G) instead of contiguous
    /// blocks.</summary>
    public static void GroupNormGroupingByTheWrongAxis(LayerCall call, ILayerGradientSink sink)
    {
        var norm = (GroupNorm)call.Layer;
        if (sink.Wants("weight"))
        {
            var x = call.Input;
            long n = x.shape[0], channels = x.shape[1], groups = norm.num_groups;
            long[] spatial = x.shape[2..];
            var strided = x.reshape([n, channels / groups, groups, .. spatial]).transpose(1, 2).reshape(x.shape);
            var normalized = F.group_norm(strided, groups, eps: norm.eps)
                .reshape([n, groups, channels / groups, .. spatial]).transpose(1, 2).reshape(x.shape);
            sink.Add("weight", SumSpatial(call.OutputGradient * normalized));
        }
        if (sink.Wants("bias")) sink.Add("bias", SumSpatial(call.OutputGradient));
    }

    /// <summary>Embedding: the <c>padding_idx</c> row keeps the gradient of the positions that hold padding.</summary>
    public static void EmbeddingKeepingThePaddingRow(LayerCall call, ILayerGradientSink sink)
    {
        if (sink.Wants("weight")) sink.Add("weight", EmbeddingRule.Scatter(call, paddingIndex: null));
    }
}
