using PerSampleGrads.Engines.Hooks;
using PerSampleGrads.Engines.Hooks.Rules;
using PerSampleGrads.Maths;
using static PerSampleGrads.Maths.PerSampleContractions;

namespace PerSampleGrads.Engines.Clipping.Rules;

/// <summary>
/// Linear, input <c>[N, ..., I]</c>, output gradient <c>[N, ..., O]</c> over L positions: weight
/// <c>|dW_n|^2 = sum_{l, m} (g_l . g_m)(x_l . x_m)</c> (ghost) or from the materialised <c>[N, O, I]</c>; bias
/// <c>|sum_l g_l|^2</c> directly (<c>[N, O]</c>).
/// </summary>
public static class LinearNorm
{
    /// <summary>
    /// Adds this call's per-sample squared gradient norms, <c>[N]</c>, to the sink by the route asked for, and
    /// returns the route taken.
    /// </summary>
    public static NormRoute Compute(LayerCall call, NormRoute route, ISquaredNormSink sink)
    {
        var g = FlattenPositions(call.OutputGradient);
        var x = FlattenPositions(call.Input);
        bool ghost = route == NormRoute.Ghost
            || route == NormRoute.Auto && GhostNorms.GhostIsCheaper(g.shape[1], g.shape[2], x.shape[2]);
        if (!ghost) return MaterialisedNorm.Compute(LinearRule.Compute, call, sink);
        if (sink.Wants("weight")) sink.Add("weight", GhostNorms.OuterProductSum(g, x));
        if (sink.Wants("bias")) sink.Add("bias", g.sum(dim: 1).square().sum(dim: 1));
        return NormRoute.Ghost;
    }
}
