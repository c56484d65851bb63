using static TorchSharp.torch;

namespace PerSampleGrads;

/// <summary>
/// A way to compute per-sample gradients. The oracle and every engine answer the same question through this
/// interface: given a model, a batch and a loss, return each sample's gradient of its own loss.
/// </summary>
/// <remarks>
/// Every method records gradients whatever the caller's grad mode (<c>no_grad</c>, <c>inference_mode</c>) and
/// restores it; treats a parameter tensor as one parameter however many modules use it or names list it (its gradient
/// is the sum of every use, reported under each name); serialises calls on one model from several threads (a lock per
/// model); and raises <see cref="PerSampleGradientsException"/> rather than return a result it cannot vouch for.
/// </remarks>
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
