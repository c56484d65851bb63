using PerSampleGrads.Engines.Probing;
using static TorchSharp.torch;

namespace PerSampleGrads.Engines.Functional;

/// <summary>How the functional engine evaluates a convolution with per-sample weights.</summary>
public enum ConvolutionStrategy
{
    /// <summary>Pick per layer shape and device from measurements (see <see
    /// cref="Layers.ConvolutionForward"/>).</summary>
    Auto,
    /// <summary>One grouped convolution over the batch: input <c>[1, N*C, H, W]</c>, weights <c>[N*O, C/G, kh, kw]</c>,
    /// N*G groups.</summary>
    GroupedConvolution,
    /// <summary>im2col (unfold) and one batched matrix product per sample and group.</summary>
    UnfoldMatmul,
    /// <summary>
    /// The layer's own convolution with the shared weight gives the value and the input's gradient (the per-sample
    /// copies all equal that weight); unfold + batched product with the per-sample copies forms a term <c>t -
    /// t.detach()</c>, zero in value, whose gradient is each sample's weight gradient. Autograd still does every
    /// reduction.
    /// </summary>
    SharedValueUnfold,
}

/// <summary>
/// One layer's parameters for a chunk of k samples, <c>[k, ...parameter shape]</c>: the engine's per-sample leaves for
/// trainable parameters (slice i is sample i's copy), a broadcast view of the parameter for frozen ones.
/// </summary>
public sealed class SampleParameters
{
    private readonly IReadOnlyDictionary<string, Tensor> _byLocalName;
    private readonly IReadOnlyDictionary<string, Tensor> _sharedByLocalName;

    /// <summary>
    /// The parameters of one call, for calling a <see cref="BatchedForward"/> directly (a test of a new layer's
    /// forward, or a forward that wraps another).
    /// </summary>
    /// <param name="perSample">By local name, <c>[k, ...parameter shape]</c>: slice i is sample i's copy.</param>
    /// <param name="shared">By local name, the parameter's own value (equal to every per-sample copy).</param>
    public SampleParameters(IReadOnlyDictionary<string, Tensor> perSample, IReadOnlyDictionary<string, Tensor> shared)
    {
        ArgumentNullException.ThrowIfNull(perSample);
        ArgumentNullException.ThrowIfNull(shared);
        _byLocalName = perSample;
        _sharedByLocalName = shared;
    }

    /// <summary>The local names of the parameters.</summary>
    public IEnumerable<string> Names => _byLocalName.Keys;

    /// <summary>The parameter by local name (<c>weight</c>, <c>bias</c>), or null when the layer has none.</summary>
    public Tensor? this[string local] => _byLocalName.GetValueOrDefault(local);

    /// <summary>
    /// The parameter's own value (detached, not per sample), or null when the layer has none: every per-sample copy
    /// equals it, so a layer may compute its output's value from it.
    /// </summary>
    public Tensor? Shared(string local) => _sharedByLocalName.GetValueOrDefault(local);
}

/// <summary>
/// One call of a layer in the functional engine.
/// </summary>
/// <param name="Layer">The layer (its configuration is read; its own parameters are not used).</param>
/// <param name="Path">Its path in the model, for messages.</param>
/// <param name="Input">The real input, <c>[k, ...]</c>.</param>
/// <param name="Parameters">Per-sample parameters.</param>
/// <param name="Convolution">The convolution strategy asked for.</param>
/// <remarks>
/// A module whose signature is not <c>Module&lt;Tensor, Tensor&gt;</c> (<see cref="ModuleSignatures"/>) also gets
/// every argument slot; the forward returns output slot 0 and writes any further outputs into
/// <see cref="OtherOutputs"/> (samples first, as the returned one).
/// </remarks>
public sealed record FunctionalCall(nn.Module Layer, string Path, Tensor Input, SampleParameters Parameters,
    ConvolutionStrategy Convolution)
{
    /// <summary>
    /// Every argument slot (<see cref="ModuleSignature.Arguments"/>): tensors with the samples moved to dimension 0
    /// where <see cref="ArgumentAxes"/> puts them along a dimension, others as the module received them.
    /// </summary>
    public IReadOnlyList<object?> Arguments { get; init; } = [Input];

    /// <summary>Where each argument slot kept the samples in the module's own call (null: not located).</summary>
    public IReadOnlyList<SampleAxis?> ArgumentAxes { get; init; } = [SampleAxis.First];

    /// <summary>Where each output slot keeps the samples in the module's own call (null: not located).</summary>
    public IReadOnlyList<SampleAxis?> OutputAxes { get; init; } = [SampleAxis.First];

    /// <summary>Output slots after the first, filled in by the forward (slot 0 unused); empty for one-output
    /// modules.</summary>
    public Tensor?[] OtherOutputs { get; init; } = [];

    /// <summary>The tensor in argument slot <paramref name="slot"/>, or null.</summary>
    public Tensor? Argument(int slot) => slot < Arguments.Count ? Arguments[slot] as Tensor : null;
}

/// <summary>
/// A layer's forward for a batch in which sample i uses its own parameter copy i: a plain differentiable computation;
/// autograd does every reduction, there is no hand-written backward.
/// </summary>
public delegate Tensor BatchedForward(FunctionalCall call);
