using static PerSampleGrads.Maths.PerSampleContractions;

namespace PerSampleGrads.Engines.Hooks.Rules;

/// <summary>
/// Linear, input <c>[N, ..., in]</c> with any number of middle dimensions:
/// <c>dW[n] = sum_l g[n, l, :] x[n, l, :]^T</c> (<c>[N, out, in]</c>), <c>db[n] = sum_l g[n, l, :]</c>.
/// </summary>
public static class LinearRule
{
    /// <summary>
    /// Adds this call's per-sample gradients of the layer's trainable parameters, <c>[N, ...parameter shape]</c>,
    /// to the sink (the formula is in the class summary).
    /// </summary>
    public static void Compute(LayerCall call, ILayerGradientSink sink)
    {
        var g = FlattenPositions(call.OutputGradient);
        if (sink.Wants("weight"))
        {
            var x = FlattenPositions(call.Input);
            if (sink.Destination("weight") is { } destination && WorthWritingInPlace(destination))
            {
                SumOfOuterProductsInto(g, x, destination);
                sink.Add("weight", destination);
            }
            else sink.Add("weight", SumOfOuterProducts(g, x));
        }
        if (sink.Wants("bias")) sink.Add("bias", g.sum(dim: 1));
    }
}
