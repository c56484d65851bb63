using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace PerSampleGrads.Cases;

/// <summary>
/// A custom layer that owns raw <c>Parameter</c>s and has no per-sample rule in either engine:
/// <c>y = tanh(x * gain + shift)</c> with <c>gain</c> and <c>shift</c> of shape <c>[F]</c> over the last dimension.
/// </summary>
public sealed class GainShiftTanh : Module<Tensor, Tensor>
{
    private readonly Parameter gain;
    private readonly Parameter shift;

    /// <summary>Creates it for <paramref name="features"/> features, gain 1 + 0.2 z and shift 0.2 z.</summary>
    public GainShiftTanh(long features) : base(nameof(GainShiftTanh))
    {
        gain = Parameter(1 + 0.2 * randn(features));
        shift = Parameter(0.2 * randn(features));
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor input) => (input * gain + shift).tanh();
}

/// <summary>
/// The most common custom layer: one raw <c>Parameter</c> and nothing else, <c>y = x * gain</c> with <c>gain</c> of
/// shape <c>[F]</c> over the last dimension. Its per-sample gradient is <c>sum over positions of g * x</c>.
/// </summary>
public sealed class FeatureGain : Module<Tensor, Tensor>
{
    private readonly Parameter gain;

    /// <summary>Creates it for <paramref name="features"/> features, gain 1 + 0.2 z.</summary>
    public FeatureGain(long features) : base(nameof(FeatureGain))
    {
        gain = Parameter(1 + 0.2 * randn(features));
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor input) => input * gain;
}

/// <summary>
/// A custom layer whose forward uses one of its two trainable raw parameters: <c>y = tanh(x * gain)</c>, with
/// <c>spare</c> (an option switched off, say) never used. Its per-sample gradient is zero: the fallback's rerun finds
/// no gradient on it at all and must write zeros, not skip or fail.
/// </summary>
public sealed class GainTanhWithSpare : Module<Tensor, Tensor>
{
    private readonly Parameter gain;
    private readonly Parameter spare;

    /// <summary>Creates it for <paramref name="features"/> features, gain 1 + 0.2 z, spare 0.2 z.</summary>
    public GainTanhWithSpare(long features) : base(nameof(GainTanhWithSpare))
    {
        gain = Parameter(1 + 0.2 * randn(features));
        spare = Parameter(0.2 * randn(features));
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor input) => (input * gain).tanh();
}

/// <summary>
/// A custom layer with a raw parameter and a child that has a rule: <c>y = linear(x) * scale</c>, <c>scale</c> of
/// shape <c>[out]</c>. The fallback re-runs it with its child.
/// </summary>
public sealed class ScaledLinear : Module<Tensor, Tensor>
{
    private readonly Linear linear;
    private readonly Parameter scale;

    /// <summary>Creates it, scale 1 + 0.2 z.</summary>
    public ScaledLinear(long inputs, long outputs) : base(nameof(ScaledLinear))
    {
        linear = Linear(inputs, outputs);
        scale = Parameter(1 + 0.2 * randn(outputs));
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor input) => linear.call(input) * scale;
}

/// <summary>
/// A custom layer that keeps its raw parameters in a list: <c>y = tanh(x * gains[0] + gains[1])</c>, the gains in a
/// <c>ParameterList</c> (names <c>gains.0</c>, <c>gains.1</c>). The list owns the parameters and has no forward, so
/// the fallback re-runs this layer, and the functional engine's copy must swap parameters held in a list.
/// </summary>
public sealed class ListedGainsTanh : Module<Tensor, Tensor>
{
    private readonly ParameterList gains;

    /// <summary>Creates it for <paramref name="features"/> features, gain 1 + 0.2 z and shift 0.2 z.</summary>
    public ListedGainsTanh(long features) : base(nameof(ListedGainsTanh))
    {
        gains = new ParameterList(Parameter(1 + 0.2 * randn(features)), Parameter(0.2 * randn(features)));
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor input) => (input * gains[0] + gains[1]).tanh();
}
