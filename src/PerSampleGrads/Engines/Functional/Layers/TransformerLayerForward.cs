using PerSampleGrads.Engines.Probing;
using PerSampleGrads.Maths;
using static TorchSharp.torch;

namespace PerSampleGrads.Engines.Functional.Layers;

/// <summary>
/// TorchSharp's native TransformerEncoderLayer and TransformerDecoderLayer with per-sample parameters, recomposed
/// (<see cref="TransformerLayers"/>): the layers hold no managed children and no parameter fields, so neither the
/// other batched forwards nor the per-sample rerun can reach inside them. Heads and activation come from
/// <see cref="TransformerInspection"/>, which refuses a layer the recomposition does not reproduce.
/// </summary>
public static class TransformerLayerForward
{
    /// <summary>The encoder layer's batched forward (<c>src</c> samples first, <c>[k, L, E]</c>).</summary>
    public static Tensor Encoder(FunctionalCall call) =>
        TransformerLayers.Encode(Lookup(call), TransformerInspection.Inspect(call.Layer, call.Path), call.Input);

    /// <summary>The decoder layer's batched forward: <c>tgt [k, L, E]</c>, <c>memory [k, S, E]</c>, shared
    /// attention masks, key padding masks <c>[k, ...]</c>.</summary>
    public static Tensor Decoder(FunctionalCall call) =>
        TransformerLayers.Decode(Lookup(call), TransformerInspection.Inspect(call.Layer, call.Path),
            call.Argument(0)!, call.Argument(1)!, call.Argument(2), call.Argument(3), call.Argument(4),
            call.Argument(5));

    private static PerSampleTransformerMaps Lookup(FunctionalCall call) => new(name => call.Parameters[name]
        ?? throw new PerSampleGradientsException(Problem.UnsupportedLayers,
            $"{call.Layer.GetType().Name} '{call.Path}' has no parameter '{name}', which the recomposed layer " +
            "needs. Use the hook engine."));
}
