using PerSampleGrads.Engines.Probing;
using static TorchSharp.torch;

namespace PerSampleGrads.Engines.Hooks;

/// <summary>
/// One layer call as captured: its arguments in the forward (<see cref="ModuleSignature"/> slots, tensors detached,
/// with the samples moved to dimension 0 where they lie along a dimension), the gradient at each output slot in the
/// backward (null where that output did not reach the loss).
/// </summary>
internal sealed class CapturedCall : IDisposable
{
    private readonly Tensor?[] _outputGradients;

    /// <summary>A one-slot call: <paramref name="input"/> is the samples-first input.</summary>
    public CapturedCall(NamedModule layer, SampleAxis axis, Tensor input)
        : this(layer, axis, [input], LayerAxes.First, [null])
    {
    }

    /// <summary>A call of any signature; <paramref name="outputs"/> only give each output slot's shape and
    /// type.</summary>
    public CapturedCall(NamedModule layer, SampleAxis axis, object?[] arguments, LayerAxes axes, Tensor?[] outputs)
    {
        Layer = layer;
        Axis = axis;
        Arguments = arguments;
        Axes = axes;
        OutputShapes = outputs.Select(o => o?.shape).ToArray();
        OutputTypes = outputs.Select(o => o?.dtype).ToArray();
        _outputGradients = new Tensor?[outputs.Length];
    }

    public NamedModule Layer { get; }

    /// <summary>Where the layer's input and output keep the samples; <see cref="Input"/> has them in front.</summary>
    public SampleAxis Axis { get; }

    /// <summary>Where each slot kept the samples in the module's own call.</summary>
    public LayerAxes Axes { get; }

    /// <summary>The captured arguments, one per signature slot.</summary>
    public object?[] Arguments { get; }

    public long[]?[] OutputShapes { get; }
    public ScalarType?[] OutputTypes { get; }

    public Tensor Input => (Tensor)Arguments[0]!;

    /// <summary>The gradient at output slot 0, or null.</summary>
    public Tensor? OutputGradient => _outputGradients[0];

    /// <summary>The gradients at every output slot (null where none arrived).</summary>
    public IReadOnlyList<Tensor?> OutputGradients => _outputGradients;

    /// <summary>What the layer's recording forward kept, when the engine computed the layer's forward with one
    /// (<see cref="RecordingForward"/>); null otherwise.</summary>
    public ForwardTape? Tape { get; set; }

    /// <summary>Whether some output slot received a gradient.</summary>
    public bool ReachedLoss => _outputGradients.Any(g => g is not null);

    // Runs inside the autograd engine: must not throw. A detached handle shares the gradient's storage, which keeps
    // autograd from accumulating into it in place. A second backward through the same graph (the clipping method's)
    // replaces the first gradient.
    public void Record(Tensor gradient) => Record(0, gradient);

    public void Record(int slot, Tensor gradient)
    {
        var previous = _outputGradients[slot];
        _outputGradients[slot] = gradient.detach().DetachFromDisposeScope();
        previous?.Dispose();
    }

    public void Dispose()
    {
        foreach (var argument in Arguments) (argument as Tensor)?.Dispose();
        foreach (var gradient in _outputGradients) gradient?.Dispose();
        Tape?.Dispose();
    }
}

/// <summary>Which output slot of which call a recorder reports to.</summary>
internal sealed record RecordingSlot(CapturedCall Call, int Output);

/// <summary>
/// TorchSharp has no backward hooks: this pass-through autograd function, applied to a layer's output by a forward
/// hook, records the gradient arriving at that output. Its forward returns a clone: returning the input or a view
/// makes the in-place operations that follow (ReLU(inplace), ResNet's <c>add_</c>) fail. A third argument, the
/// engine's probe leaf, makes every recorder reachable by <c>backward(inputs: [probe])</c>, so the backward computes
/// activation gradients only and skips the batch weight gradients nobody needs.
/// </summary>
internal sealed class GradientRecorder : autograd.SingleTensorFunction<GradientRecorder>
{
    private const string CallKey = "call";

    public override string Name => "PerSampleGradsRecorder";

    // vars: [0] the layer's output, [1] the CapturedCall or RecordingSlot, [2] the probe leaf.
    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        ctx.save_data(CallKey, vars[1]);
        return ((Tensor)vars[0]).clone();
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor grad_output)
    {
        switch (ctx.get_data(CallKey))
        {
            case RecordingSlot slot: slot.Call.Record(slot.Output, grad_output); break;
            case CapturedCall call: call.Record(grad_output); break;
            case TapeSlot slot: slot.Tape.Record(slot.Index, grad_output); break;
        }
        return [grad_output, null!, null!];
    }
}
