using PerSampleGrads.Engines.Probing;
using TorchSharp.Modules;
using PerSampleGrads.Maths;
using static TorchSharp.torch;

namespace PerSampleGrads.Engines.Functional.Layers;

/// <summary>
/// EmbeddingBag (sum or mean mode) with per-sample tables <c>[k, V, D]</c>: each id position t of bag n reads row
/// <c>id[t]</c> of table n by advanced indexing, scaled by its coefficient (<see cref="BagPositions"/>: per-sample
/// weight or 1 in sum mode, 1/count in mean mode, 0 at padding), and the positions are summed into their bags with
/// one <c>index_add</c>. Bags are samples: the rows of 2-d ids, or the bags the offsets of 1-d ids delimit.
/// </summary>
public static class EmbeddingBagForward
{
    /// <summary>The batched forward.</summary>
    public static Tensor Forward(FunctionalCall call)
    {
        var bag = (EmbeddingBag)call.Layer;
        var behaviour = EmbeddingBagInspection.Inspect(bag, call.Path);
        if (behaviour.Reduction == BagReduction.Max)
            throw new PerSampleGradientsException(Problem.UnsupportedLayers,
                $"EmbeddingBag '{call.Path}' uses max mode, which the functional engine does not support. Use sum " +
                "or mean mode, or freeze its weight.");
        var tables = call.Parameters["weight"]!;
        var positions = BagPositions.Of(call.Input, call.Argument(1), call.Argument(2), behaviour, tables.dtype);
        var rows = tables.index([TensorIndex.Tensor(positions.Sample), TensorIndex.Tensor(positions.Ids)]);
        return zeros([positions.Bags, tables.shape[2]], dtype: tables.dtype, device: tables.device)
            .index_add_(0, positions.Sample, rows * positions.Coefficient.unsqueeze(1), 1);
    }
}
