using static TorchSharp.torch;

namespace PerSampleGrads.Engines.Clipping;

/// <summary>
/// The per-sample arithmetic between the layers' norms and the weighted backward: the total norm of each sample from
/// its per-parameter squared norms, and each sample's loss weight in the second backward. A method receives an
/// instance; <see cref="Default"/> is the definition. Tests hand the method a subclass to plant a bug.
/// </summary>
public class ClippingSteps
{
    /// <summary>The steps as DP-SGD defines them: the shipped arithmetic.</summary>
    public static ClippingSteps Default { get; } = new();

    /// <summary>
    /// <c>[N]</c>: each sample's gradient norm over every trainable parameter,
    /// <c>|g_i| = sqrt(sum_p |g_{i,p}|^2)</c>, from the per-parameter squared norms (each <c>[N]</c>).
    /// </summary>
    public virtual Tensor TotalNorms(IReadOnlyList<(string Name, Tensor SquaredNorms)> perParameter) =>
        stack(perParameter.Select(p => p.SquaredNorms).ToArray()).sum(dim: 0).sqrt();

    /// <summary>
    /// <c>[N]</c>: each sample's weight <c>min(1, C / |g_i|)</c> (1 for a zero gradient) in the second backward,
    /// whose gradient <c>sum_i w_i grad L_i</c> is then the clipped sum.
    /// </summary>
    public virtual Tensor LossWeights(Tensor totalNorms, IReadOnlyList<(string Name, Tensor SquaredNorms)> perParameter,
        double clipBound) => ClippedGradients.Factors(totalNorms, clipBound);
}
