using TorchSharp.Modules;
using F = TorchSharp.torch.nn.functional;

namespace PerSampleGrads.Engines.Hooks.Rules;

/// <summary>
/// LayerNorm over one or more trailing dimensions D with elementwise affine: <c>dw[n] = sum_positions g * x_hat</c>
/// and <c>db[n] = sum_positions g</c>, both <c>[N, ...D]</c>, summing over the dimensions between the batch and D.
/// </summary>
public static class LayerNormRule
{
    /// <summary>
    /// Adds this call's per-sample gradients of the layer's trainable parameters, <c>[N, ...parameter shape]</c>,
    /// to the sink (the formula is in the class summary).
    /// </summary>
    public static void Compute(LayerCall call, ILayerGradientSink sink)
    {
        var norm = (LayerNorm)call.Layer;
        long n = call.Input.shape[0];
        long features = norm.normalized_shape.Aggregate(1L, (a, b) => a * b);
        long[] shape = [n, .. norm.normalized_shape];
        if (sink.Wants("weight"))
        {
            var normalized = F.layer_norm(call.Input, norm.normalized_shape, eps: norm.eps);
            sink.Add("weight", (call.OutputGradient * normalized).reshape(n, -1, features).sum(dim: 1).reshape(shape));
        }
        if (sink.Wants("bias")) sink.Add("bias", call.OutputGradient.reshape(n, -1,
            features).sum(dim: 1).reshape(shape));
    }
}
