using TorchSharp.Modules;
using PerSampleGrads.Engines.Probing;
using static TorchSharp.torch;

namespace PerSampleGrads.Engines.Hooks.Rules;

/// <summary>
/// Embedding: sample n's gradient of the table <c>[V, D]</c> adds the output gradient of every position where the
/// sample used index v to row v (one <c>index_add_</c> over all samples at once); the <c>padding_idx</c> row, which
/// the layer never trains, gets zeros.
/// </summary>
public static class EmbeddingRule
{
    /// <summary>
    /// Adds this call's per-sample gradients of the layer's trainable parameters, <c>[N, ...parameter shape]</c>,
    /// to the sink (the formula is in the class summary).
    /// </summary>
    public static void Compute(LayerCall call, ILayerGradientSink sink)
    {
        if (!sink.Wants("weight")) return;
        var embedding = (Embedding)call.Layer;
        var behaviour = EmbeddingInspection.Inspect(embedding, call.Path);
        sink.Add("weight", Scatter(call, behaviour.PaddingIndex));
    }

    internal static Tensor Scatter(LayerCall call, long? paddingIndex)
    {
        var weight = ((Embedding)call.Layer).weight!;
        long n = call.Input.shape[0], rows = weight.shape[0], width = weight.shape[1];
        var offsets = arange(n, device: call.Input.device).mul(rows).unsqueeze(1);
        var flat = (call.Input.reshape(n, -1) + offsets).reshape(-1);
        var gradient = zeros([n * rows, width], dtype: call.OutputGradient.dtype, device: call.OutputGradient.device)
            .index_add_(0, flat, call.OutputGradient.reshape(-1, width), 1)
            .reshape(n, rows, width);
        if (paddingIndex is { } p) gradient.select(1, p).zero_();
        return gradient;
    }
}
