using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PerSampleGrads.Engines.Hooks.Rules;

/// <summary>
/// PReLU, <c>y = x</c> where <c>x &gt; 0</c>, else <c>a * x</c>, with one slope (<c>num_parameters = 1</c>) or one per
/// channel (dimension 1): <c>da[n, c] = sum_positions g[n, c] * min(x[n, c], 0)</c>, summed over every non-batch
/// dimension for a single slope.
/// </summary>
public static class PReLURule
{
    /// <summary>
    /// Adds this call's per-sample gradients of the layer's trainable parameters, <c>[N, ...parameter shape]</c>,
    /// to the sink (the formula is in the class summary).
    /// </summary>
    public static void Compute(LayerCall call, ILayerGradientSink sink)
    {
        if (!sink.Wants("weight")) return;
        var prelu = (PReLU)call.Layer;
        long n = call.Input.shape[0];
        var contribution = call.OutputGradient * call.Input.clamp_max(0);
        sink.Add("weight", prelu.num_parameters == 1
            ? contribution.reshape(n, -1).sum(dim: 1, keepdim: true)
            : contribution.reshape(n, prelu.num_parameters, -1).sum(dim: 2));
    }
}
