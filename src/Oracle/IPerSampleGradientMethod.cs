using static TorchSharp.torch;

namespace PerSampleGrads;

/// <summary>
/// A way to compute per-sample gradients. The oracle and every engine answer the same question through this
/// interface: given a model, a batch and a loss, return each sample's gradient of its own loss.
/// </summary>
public interface IPerSampleGradientMethod
{
    /// <summary>Short name used in reports: <c>oracle</c>, <c>hooks</c>, <c>functional</c>.</summary>
    string Name { get; }

    /// <summary>
    /// Computes per-sample gradients.
    /// </summary>
    /// <param name="model">The model; it is left unchanged (parameters, flags, buffers, hooks, <c>.grad</c>).</param>
    /// <param name="inputs">Inputs <c>[N, ...]</c>.</param>
    /// <param name="targets">Targets <c>[N, ...]</c> as the loss expects them.</param>
    /// <param name="loss">The loss with its declared reduction.</param>
    PerSampleGradients Compute(nn.Module<Tensor, Tensor> model, Tensor inputs, Tensor targets, LossFunction loss);
}
