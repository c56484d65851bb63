using PerSampleGrads.Engines.Probing;
using static TorchSharp.torch;

namespace PerSampleGrads.Engines.Hooks;

/// <summary>One layer call as captured: its input in the forward, its output gradient in the backward.</summary>
internal sealed class CapturedCall(NamedModule layer, SampleAxis axis, Tensor input) : IDisposable
{
    public NamedModule Layer { get; } = layer;

    /// <summary>Where the layer's input and output keep the samples; <see cref="Input"/> has them in front.</summary>
    public SampleAxis Axis { get; } = axis;

    public Tensor Input { get; } = input;
    public Tensor? OutputGradient { get; private set; }

    // Runs inside the autograd engine: must not throw. A detached handle shares the gradient's storage, which keeps
    // autograd from accumulating into it in place. A second backward through the same graph (the clipping method's)
    // replaces the first gradient.
    public void Record(Tensor gradient)
    {
        var previous = OutputGradient;
        OutputGradient = gradient.detach().DetachFromDisposeScope();
        previous?.Dispose();
    }

    public void Dispose()
    {
        Input.Dispose();
        OutputGradient?.Dispose();
    }
}

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

    // vars: [0] the layer's output, [1] the CapturedCall, [2] the probe leaf.
    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        ctx.save_data(CallKey, vars[1]);
        return ((Tensor)vars[0]).clone();
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor grad_output)
    {
        ((CapturedCall)ctx.get_data(CallKey)).Record(grad_output);
        return [grad_output, null!, null!];
    }
}
