using PerSampleGrads.Engines.Hooks;
using PerSampleGrads.Maths;
using static TorchSharp.torch;

namespace PerSampleGrads.Engines.Clipping.Rules;

/// <summary>
/// Norms through the layer's materialised per-sample gradient: the hook engine's rule writes <c>[N, ...]</c> for this
/// one layer, whose squared norms are taken at once. The route for layers whose gradients are small (GroupNorm,
/// LayerNorm, InstanceNorm: <c>[N, C]</c>) and for any layer where it is the cheaper one.
/// </summary>
public static class MaterialisedNorm
{
    /// <summary>A norm rule that always materialises through <paramref name="rule"/>.</summary>
    public static SquaredNormRule Of(PerSampleRule rule) => (call, _, sink) => Compute(rule, call, sink);

    /// <summary>Runs <paramref name="rule"/> on <paramref name="call"/> and adds the squared norms of what it
    /// writes.</summary>
    public static NormRoute Compute(PerSampleRule rule, LayerCall call, ISquaredNormSink sink)
    {
        rule(call, new Squaring(sink));
        return NormRoute.Materialise;
    }

    private sealed class Squaring(ISquaredNormSink sink) : ILayerGradientSink
    {
        public bool Wants(string parameter) => sink.Wants(parameter);

        public void Add(string parameter, Tensor perSampleGradient) =>
            sink.Add(parameter, GhostNorms.Materialised(perSampleGradient));
    }
}
