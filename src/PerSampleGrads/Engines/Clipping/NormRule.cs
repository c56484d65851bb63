using PerSampleGrads.Engines.Hooks;
using static TorchSharp.torch;

namespace PerSampleGrads.Engines.Clipping;

/// <summary>How a layer's per-sample gradient norms are computed.</summary>
public enum NormRoute
{
    /// <summary>Per layer, whichever of the two is cheaper for its shape (<see
    /// cref="Maths.GhostNorms.GhostIsCheaper"/>).</summary>
    Auto,
    /// <summary>From Gram matrices of the layer's inputs and output gradients over positions, never the gradient
    /// itself.</summary>
    Ghost,
    /// <summary>Materialise that one layer's per-sample gradient (<c>[N, ...parameter shape]</c>) and take its
    /// norms.</summary>
    Materialise,
}

/// <summary>Receives one layer call's per-sample squared gradient norms, by local parameter name.</summary>
public interface ISquaredNormSink
{
    /// <summary>Whether the parameter is trainable, i.e. wanted.</summary>
    bool Wants(string parameter);

    /// <summary>Adds <c>[N]</c> squared norms of the parameter's per-sample gradients.</summary>
    void Add(string parameter, Tensor squaredNorms);
}

/// <summary>
/// A layer's norm rule: from one call's input and output gradient, each sample's squared gradient norm of the layer's
/// own parameters, by the route asked for (<see cref="NormRoute.Auto"/>: the rule's choice). Returns the route taken.
/// </summary>
public delegate NormRoute SquaredNormRule(LayerCall call, NormRoute route, ISquaredNormSink sink);

/// <summary>
/// A layer's book-keeping rule: from one call whose output gradient already carries each sample's clip factor, the
/// layer's gradient summed over samples, handed to the sink as a batch of one (<c>[1, ...parameter shape]</c>).
/// </summary>
public delegate void BatchSumRule(LayerCall call, ILayerGradientSink sink);

/// <summary>How the clipping method forms the clipped sum <c>sum_i f_i g_i</c>.</summary>
public enum ClippedSumRoute
{
    /// <summary>
    /// Book-keeping (Bu et al.): per layer, from the captured inputs and the output gradients scaled by each sample's
    /// factor (<see cref="BatchSumRule"/>); no second backward.
    /// </summary>
    BookKeeping,
    /// <summary>A second backward through the kept graph, of <c>sum_i f_i L_i</c>, into the parameters'
    /// gradients.</summary>
    SecondBackward,
}

/// <summary>
/// One entry of the clipping method's table: the norm rule for a layer called once, the per-sample rule that
/// materialises the layer's gradient when it is called several times in one forward (shared weights, whose norms do
/// not add over calls), and the book-keeping rule for the clipped sum.
/// </summary>
/// <param name="Norms">The norm rule.</param>
/// <param name="PerSample">The hook engine's per-sample rule for the same layer type.</param>
/// <param name="ClippedSum">The book-keeping rule.</param>
public sealed record ClippingRule(SquaredNormRule Norms, PerSampleRule PerSample, BatchSumRule ClippedSum);
