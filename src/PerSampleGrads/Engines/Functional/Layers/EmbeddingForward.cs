using TorchSharp.Modules;
using PerSampleGrads.Engines.Probing;
using static TorchSharp.torch;

namespace PerSampleGrads.Engines.Functional.Layers;

/// <summary>
/// Embedding with per-sample tables <c>[k, V, D]</c>: <c>y[n, t] = W[n, ids[n, t]]</c> by advanced indexing (no copy
/// of the tables). Positions holding <c>padding_idx</c> read the same value through a detached path, so that row gets
/// no gradient, as in the layer itself.
/// </summary>
public static class EmbeddingForward
{
    /// <summary>The batched forward.</summary>
    public static Tensor Forward(FunctionalCall call)
    {
        var embedding = (Embedding)call.Layer;
        var tables = call.Parameters["weight"]!;
        var ids = call.Input;
        EmbeddingIndexCheck.Validate(embedding, ids, call.Path, "the functional engine");
        long k = ids.shape[0];
        var sample = arange(k, device: ids.device).reshape([k, .. Enumerable.Repeat(1L, (int)ids.dim() - 1)]);
        var y = tables.index([TensorIndex.Tensor(sample), TensorIndex.Tensor(ids)]);
        if (EmbeddingInspection.Inspect(embedding, call.Path).PaddingIndex is { } padding)
            y = where((ids != padding).unsqueeze(-1), y, y.detach());
        return y;
    }
}
