using PerSampleGrads.Engines.Probing;
using static TorchSharp.torch;

namespace PerSampleGrads.Engines.Hooks;

/// <summary>
/// What the hook engine saw of one call of one layer.
/// </summary>
/// <param name="Layer">The layer.</param>
/// <param name="Path">Its path in the model, for messages.</param>
/// <param name="Input">The layer's input, <c>[N, ...]</c>.</param>
/// <param name="OutputGradient">Gradient of <c>sum_i L_i</c> with respect to the layer's output, <c>[N,
/// ...]</c> (zeros when the layer has several outputs and only others reached the loss).</param>
/// <remarks>
/// A module whose signature is not <c>Module&lt;Tensor, Tensor&gt;</c> (<see cref="ModuleSignatures"/>) also gives
/// every argument slot and the gradient at every output slot; <see cref="Input"/> and <see cref="OutputGradient"/>
/// are slot 0 of each.
/// </remarks>
public sealed record LayerCall(nn.Module Layer, string Path, Tensor Input, Tensor OutputGradient)
{
    /// <summary>
    /// Every argument slot of the call (<see cref="ModuleSignature.Arguments"/>): tensors with the samples moved to
    /// dimension 0 where <see cref="ArgumentAxes"/> puts them along a dimension, others as the module received them
    /// (a shared attention mask, EmbeddingBag's 1-d ids and offsets, <c>need_weights</c>).
    /// </summary>
    public IReadOnlyList<object?> Arguments { get; init; } = [Input];

    /// <summary>Where each argument slot kept the samples in the module's own call (null: not located).</summary>
    public IReadOnlyList<SampleAxis?> ArgumentAxes { get; init; } = [SampleAxis.First];

    /// <summary>Gradient of <c>sum_i L_i</c> at every output slot, samples first; null where that output did not
    /// reach the loss.</summary>
    public IReadOnlyList<Tensor?> OutputGradients { get; init; } = [OutputGradient];

    /// <summary>Where each output slot kept the samples in the module's own call (null: not located).</summary>
    public IReadOnlyList<SampleAxis?> OutputAxes { get; init; } = [SampleAxis.First];

    /// <summary>What the layer's recording forward (<see cref="RecordingForward"/>) kept, when the engine computed
    /// the layer's forward with one; null otherwise.</summary>
    public ForwardTape? Tape { get; init; }

    /// <summary>The tensor in argument slot <paramref name="slot"/>, or null.</summary>
    public Tensor? Argument(int slot) => slot < Arguments.Count ? Arguments[slot] as Tensor : null;

    /// <summary>The gradient at output slot <paramref name="slot"/>, or null.</summary>
    public Tensor? Gradient(int slot) => slot < OutputGradients.Count ? OutputGradients[slot] : null;
}

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

/// <summary>
/// A layer's forward computed by the hook engine in place of the module's own, so that the one backward also
/// delivers what the layer's rule needs (a recurrent layer's gradients at every step's gates, attention's at its
/// projections): from the call's <paramref name="arguments"/> in the module's own layout (<see cref="ModuleSignature"/>
/// slots, still in the graph; <paramref name="axes"/> tells where each keeps the samples), the outputs the module
/// would return, one per output slot in its own layout, computed through tensors marked in <paramref name="tape"/>.
/// The rule then reads the tape (<see cref="LayerCall.Tape"/>).
/// </summary>
public delegate Tensor?[] RecordingForward(nn.Module layer, string path, object?[] arguments, LayerAxes axes,
    ForwardTape tape);
