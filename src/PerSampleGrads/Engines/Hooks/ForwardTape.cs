using static TorchSharp.torch;

namespace PerSampleGrads.Engines.Hooks;

/// <summary>
/// What a recording forward (<see cref="RecordingForward"/>) kept of one layer call for its rule, in the order it
/// kept them: values it computed (detached) and, once the backward has run, the gradient of <c>sum_i L_i</c> at each
/// tensor it marked (null where none arrived).
/// </summary>
public sealed class ForwardTape : IDisposable
{
    private readonly Tensor _probe;
    private readonly List<Tensor> _values = [];
    private readonly List<Tensor?> _gradients = [];

    internal ForwardTape(Tensor probe) => _probe = probe;

    /// <summary>The kept values, in the order <see cref="Keep"/> was called.</summary>
    public IReadOnlyList<Tensor> Values => _values;

    /// <summary>The gradient at each marked tensor, in the order <see cref="Mark"/> was called; null where the
    /// backward did not reach it.</summary>
    public IReadOnlyList<Tensor?> Gradients => _gradients;

    /// <summary>Keeps <paramref name="value"/>, detached.</summary>
    public void Keep(Tensor value) => _values.Add(value.detach().DetachFromDisposeScope());

    /// <summary>
    /// <paramref name="value"/> as the forward must use it for the backward to record the gradient at it (the next
    /// entry of <see cref="Gradients"/>).
    /// </summary>
    public Tensor Mark(Tensor value)
    {
        _gradients.Add(null);
        return GradientRecorder.apply(value, new TapeSlot(this, _gradients.Count - 1), _probe);
    }

    // Runs inside the autograd engine: must not throw (see CapturedCall.Record).
    internal void Record(int index, Tensor gradient)
    {
        var previous = _gradients[index];
        _gradients[index] = gradient.detach().DetachFromDisposeScope();
        previous?.Dispose();
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var value in _values) value.Dispose();
        foreach (var gradient in _gradients) gradient?.Dispose();
    }
}

/// <summary>Which marked tensor of which tape a recorder reports to.</summary>
internal sealed record TapeSlot(ForwardTape Tape, int Index);
