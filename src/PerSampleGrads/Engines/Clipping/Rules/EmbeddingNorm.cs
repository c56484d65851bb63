using TorchSharp.Modules;
using PerSampleGrads.Engines.Hooks;
using PerSampleGrads.Engines.Hooks.Rules;
using PerSampleGrads.Engines.Probing;
using PerSampleGrads.Maths;

namespace PerSampleGrads.Engines.Clipping.Rules;

/// <summary>
/// Embedding <c>[V, D]</c> with token ids <c>[N, L]</c>: sample n's gradient puts <c>g_l</c> into row <c>id_l</c>, so
/// <c>|dW_n|^2 = sum_{l, m} [id_l = id_m != padding_idx] (g_l . g_m)</c> (ghost, <c>[N, L, L]</c>), or from the
/// materialised <c>[N, V, D]</c> when the vocabulary is small.
/// </summary>
public static class EmbeddingNorm
{
    /// <summary>
    /// Adds this call's per-sample squared gradient norms, <c>[N]</c>, to the sink by the route asked for, and
    /// returns the route taken.
    /// </summary>
    public static NormRoute Compute(LayerCall call, NormRoute route, ISquaredNormSink sink)
    {
        if (!sink.Wants("weight")) return NormRoute.Ghost;
        var embedding = (Embedding)call.Layer;
        var weight = embedding.weight!;
        long positions = call.Input.numel() / call.Input.shape[0];
        bool ghost = route == NormRoute.Ghost
            || route == NormRoute.Auto && GhostNorms.GhostIsCheaper(positions, weight.shape[0], weight.shape[1]);
        if (!ghost) return MaterialisedNorm.Compute(EmbeddingRule.Compute, call, sink);
        var behaviour = EmbeddingInspection.Inspect(embedding, call.Path);
        sink.Add("weight", GhostNorms.Embedding(call.Input, call.OutputGradient, behaviour.PaddingIndex));
        return NormRoute.Ghost;
    }
}
