using static TorchSharp.torch;

namespace PerSampleGrads.Engines.Hooks;

/// <summary>
/// What the hook engine saw of one call of one layer.
/// </summary>
/// <param name="Layer">The layer.</param>
/// <param name="Path">Its path in the model, for messages.</param>
/// <param name="Input">The layer's input, <c>[N, ...]</c>.</param>
/// <param name="OutputGradient">Gradient of <c>sum_i L_i</c> with respect to the layer's output, <c>[N,
/// ...]</c>.</param>
public sealed record LayerCall(nn.Module Layer, string Path, Tensor Input, Tensor OutputGradient);

/// <summary>Receives one layer call's per-sample gradients, by local parameter name (<c>weight</c>,
/// <c>bias</c>).</summary>
public interface ILayerGradientSink
{
    /// <summary>Whether the parameter is trainable, i.e. wanted.</summary>
    bool Wants(string parameter);

    /// <summary>Adds <c>[N, ...parameter shape]</c> per-sample gradients; several calls of one layer
    /// accumulate.</summary>
    void Add(string parameter, Tensor perSampleGradient);

    /// <summary>
    /// A contiguous <c>[N, ...parameter shape]</c> tensor the rule may write its per-sample gradient into (then pass
    /// that same tensor to <see cref="Add"/>), or null: write a fresh tensor. Offered when the caller reuses a result.
    /// </summary>
    Tensor? Destination(string parameter) => null;
}

/// <summary>
/// A closed-form per-layer rule: from the layer's input and output gradient in one call, each sample's gradient of
/// the layer's own parameters. Pure: reads the call, writes only to the sink.
/// </summary>
public delegate void PerSampleRule(LayerCall call, ILayerGradientSink sink);
