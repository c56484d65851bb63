using TorchSharp.Modules;
using PerSampleGrads.Engines.Hooks;
using PerSampleGrads.Engines.Hooks.Rules;
using PerSampleGrads.Maths;
using static PerSampleGrads.Maths.PerSampleContractions;
using static TorchSharp.torch;

namespace PerSampleGrads.Engines.Clipping.Rules;

/// <summary>
/// The book-keeping rules (Bu et al. 2023): a layer's gradient summed over the samples of a call whose output gradient
/// already carries each sample's clip factor, <c>sum_n f_n g_n</c>, from the captured input and output gradient, as a
/// "batch of one" <c>[1, ...parameter shape]</c>. No second backward, no per-sample gradient of the big layers.
/// </summary>
public static class BatchSums
{
    /// <summary>
    /// Linear: every sample's positions become positions of one sample (the per-sample rule is a sum over positions of
    /// products, so the merged sample's gradient is the sum over samples).
    /// </summary>
    public static void Linear(LayerCall call, ILayerGradientSink sink)
    {
        var input = call.Input.reshape(1, -1, call.Input.shape[^1]);
        var gradient = call.OutputGradient.reshape(1, -1, call.OutputGradient.shape[^1]);
        LinearRule.Compute(call with { Input = input, OutputGradient = gradient }, sink);
    }

    /// <summary>Embedding: every sample's tokens become tokens of one sample, as for <see cref="Linear"/>.</summary>
    public static void Embedding(LayerCall call, ILayerGradientSink sink)
    {
        var width = call.OutputGradient.shape[^1];
        EmbeddingRule.Compute(call with { Input = call.Input.reshape(1, -1),
            OutputGradient = call.OutputGradient.reshape(1, -1, width) }, sink);
    }

    /// <summary>
    /// Conv1d/Conv2d: receptive fields per sample (im2col), then one product per group over samples and positions
    /// together; bias: the output gradient summed over samples and positions.
    /// </summary>
    public static void Convolution(LayerCall call, ILayerGradientSink sink)
    {
        var conv = (Convolution)call.Layer;
        var geometry = ConvolutionGeometry.Of(conv);
        long n = call.OutputGradient.shape[0];
        var g = call.OutputGradient.reshape(n, conv.out_channels, -1);
        if (sink.Wants("weight"))
            sink.Add("weight", GroupedColumnsProductSummedOverSamples(g, geometry.Unfold(call.Input), geometry.Groups)
                .reshape([1, .. conv.weight.shape]));
        if (sink.Wants("bias")) sink.Add("bias", g.sum([0L, 2L]).unsqueeze(0));
    }

    /// <summary>
    /// Any layer through its per-sample rule, summed over samples: for layers whose per-sample gradients are small
    /// (GroupNorm, LayerNorm, InstanceNorm: <c>[N, C]</c>) and whose per-sample maths does not merge samples.
    /// </summary>
    public static BatchSumRule Materialised(PerSampleRule rule) => (call, sink) => rule(call, new Summing(sink));

    private sealed class Summing(ILayerGradientSink sink) : ILayerGradientSink
    {
        public bool Wants(string parameter) => sink.Wants(parameter);

        public void Add(string parameter, Tensor perSampleGradient) =>
            sink.Add(parameter, perSampleGradient.sum(dim: 0, keepdim: true));
    }
}
