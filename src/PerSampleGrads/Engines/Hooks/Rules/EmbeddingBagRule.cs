using PerSampleGrads.Engines.Probing;
using TorchSharp.Modules;
using PerSampleGrads.Maths;
using static TorchSharp.torch;

namespace PerSampleGrads.Engines.Hooks.Rules;

/// <summary>
/// EmbeddingBag in sum or mean mode. Samples are bags: with 2-d ids <c>[N, bag]</c> row n is sample n; with 1-d ids
/// and offsets <c>[N]</c> the n-th bag is sample n (N = number of bags, the rows of the output <c>[N, D]</c>). Sample
/// n's gradient of the table <c>[V, D]</c> adds <c>c[t] g[n]</c> to row <c>id[t]</c> for every position t of its bag,
/// with the coefficients of <see cref="BagPositions"/> (per-sample weight or 1 in sum mode, 1/count in mean mode, 0
/// at padding); one <c>index_add_</c> over all samples at once. Max mode is refused.
/// </summary>
public static class EmbeddingBagRule
{
    /// <summary>
    /// Adds this call's per-sample gradients of the layer's trainable parameters, <c>[N, ...parameter shape]</c>,
    /// to the sink (the formula is in the class summary).
    /// </summary>
    public static void Compute(LayerCall call, ILayerGradientSink sink)
    {
        if (!sink.Wants("weight")) return;
        var bag = (EmbeddingBag)call.Layer;
        var behaviour = Supported(bag, call.Path);
        var g = call.OutputGradient;
        var positions = BagPositions.Of(call.Input, call.Argument(1), call.Argument(2), behaviour, g.dtype);
        long rows = bag.weight!.shape[0], width = g.shape[1], n = positions.Bags;
        var flat = positions.Sample * rows + positions.Ids;
        var values = g.index_select(0, positions.Sample) * positions.Coefficient.unsqueeze(1);
        sink.Add("weight", zeros([n * rows, width], dtype: g.dtype, device: g.device)
            .index_add_(0, flat, values, 1).reshape(n, rows, width));
    }

    /// <summary>The bag's behaviour; throws for max mode.</summary>
    internal static EmbeddingBagBehaviour Supported(EmbeddingBag bag, string path)
    {
        var behaviour = EmbeddingBagInspection.Inspect(bag, path);
        if (behaviour.Reduction == BagReduction.Max)
            throw new PerSampleGradientsException(Problem.UnsupportedLayers,
                $"EmbeddingBag '{path}' uses max mode: its gradient goes to the largest row per feature, which no " +
                "per-sample rule computes. Use sum or mean mode, or freeze its weight.");
        return behaviour;
    }
}
