using PerSampleGrads.Engines.Hooks;
using static TorchSharp.torch;

namespace PerSampleGrads.Engines.Clipping;

/// <summary>How a layer's per-sample gradient norms are computed.</summary>
public enum NormRoute
{
    /// <summary>Per layer, whichever of the two is cheaper for its shape (<see cref="Maths.GhostNorms.GhostIsCheaper"/>).</summary>
    Auto,
    /// <summary>From Gram matrices of the layer's inputs and output gradients over positions, never the gradient itself.</summary>
    Ghost,
    /// <summary>Materialise that one layer's per-sample gradient (<c>[N, ...parameter shape]</c>) and take its norms.</summary>
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
/// One entry of the clipping method's table: the norm rule for a layer called once, and the per-sample rule that
/// materialises the layer's gradient when it is called several times in one forward (shared weights), where norms of
/// the calls do not add.
/// </summary>
/// <param name="Norms">The norm rule.</param>
/// <param name="PerSample">The hook engine's per-sample rule for the same layer type.</param>
public sealed record ClippingRule(SquaredNormRule Norms, PerSampleRule PerSample);
