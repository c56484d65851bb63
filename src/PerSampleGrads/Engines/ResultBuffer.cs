using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PerSampleGrads.Engines;

/// <summary>
/// A caller's earlier result, leased for one engine call that writes the new per-sample gradients into its tensors
/// instead of fresh memory (<c>engine.Compute(model, x, y, loss, into: previous)</c>).
/// </summary>
/// <remarks>
/// <para>Lifetime rules. The result handed in must come from a call on the same model with the same batch size (or
/// otherwise hold, for every trainable parameter in <c>named_parameters()</c> order, a contiguous
/// <c>[N, ...parameter shape]</c> tensor in the parameters' element type on their device). The call overwrites every
/// tensor and returns the same object; views the caller took of it see the new values. While the call runs no other
/// call may write into it (a second one is refused); after a call that throws, its values are unspecified but it
/// stays usable. A disposed result is refused. Each refusal is a <see cref="PerSampleGradientsException"/> raised
/// before anything is computed.</para>
/// </remarks>
internal sealed class ResultBuffer : IDisposable
{
    private readonly PerSampleGradients _into;
    private readonly HashSet<string> _written = new(StringComparer.Ordinal);

    private ResultBuffer(PerSampleGradients into) => _into = into;

    /// <summary>The result being written.</summary>
    public PerSampleGradients Result => _into;

    /// <summary>
    /// Checks <paramref name="into"/> against the call (names, shapes, element type, device, layout, not disposed, not
    /// being written by another call) and leases it; dispose the lease when the call ends.
    /// </summary>
    public static ResultBuffer Lease(PerSampleGradients into, List<(string Name, Parameter Parameter)> trainable,
        long batchSize, string engine)
    {
        ArgumentNullException.ThrowIfNull(into);
        if (into.IsDisposed)
            throw new PerSampleGradientsException(Problem.ResultBufferDisposed,
                $"The result handed to the {engine} engine for reuse was already disposed: pass a live result, or "
                + "call Compute without one to get fresh memory.");
        var problems = new List<string>();
        var expected = trainable.Select(p => p.Name).ToList();
        // The same names in any order: a result lists a tied tensor's names together, the model in its own order.
        if (!expected.Order(StringComparer.Ordinal).SequenceEqual(into.Names.Order(StringComparer.Ordinal)))
            problems.Add($"it holds [{string.Join(", ", into.Names)}] but the model's trainable parameters are "
                + $"[{string.Join(", ", expected)}]");
        else
        {
            foreach (var (name, p) in trainable)
            {
                var t = into[name];
                long[] shape = [batchSize, .. p.shape];
                if (!t.shape.SequenceEqual(shape))
                    problems.Add($"'{name}' is [{string.Join(", ", t.shape)}], the call needs " +
                        $"[{string.Join(", ", shape)}]");
                else if (t.dtype != p.dtype)
                    problems.Add($"'{name}' is {t.dtype}, the parameter {p.dtype}");
                else if (!BatchValidator.SameDevice(t.device, p.device))
                    problems.Add($"'{name}' is on {t.device}, the parameter on {p.device}");
                else if (!t.is_contiguous())
                    problems.Add($"'{name}' is not contiguous");
            }
        }
        if (problems.Count > 0)
            throw new PerSampleGradientsException(Problem.ResultBufferMismatch,
                $"The result handed to the {engine} engine for reuse does not fit this call: " +
                    $"{string.Join("; ", problems)}. "
                + "Reuse a result of the same model and batch size, or call Compute without one.");
        if (!into.TryBeginWrite())
            throw new PerSampleGradientsException(Problem.ResultBufferInUse,
                $"The result handed to the {engine} engine for reuse is being written by another call that has not "
                + "returned: give each concurrent call its own result.");
        return new ResultBuffer(into);
    }

    /// <summary>The tensor of parameter <paramref name="name"/>, <c>[N, ...]</c>.</summary>
    public Tensor this[string name] => _into[name];

    /// <summary>Whether the current call has written <paramref name="name"/> yet.</summary>
    public bool IsWritten(string name) => _written.Contains(name);

    /// <summary>Writes (first time in this call) or adds (later times) a per-sample gradient.</summary>
    public void Write(string name, Tensor perSampleGradient) => Write([name], perSampleGradient);

    /// <summary>
    /// Writes or adds the per-sample gradient of a parameter tensor listed under several <paramref name="names"/>
    /// (weight tying) into the first name's tensor; the others are views of the same memory and count as written.
    /// </summary>
    public void Write(IReadOnlyList<string> names, Tensor perSampleGradient)
    {
        var destination = _into[names[0]];
        bool first = _written.Add(names[0]);
        foreach (var alias in names.Skip(1)) _written.Add(alias);
        if (!first) destination.add_(perSampleGradient);
        else if (!ReferenceEquals(perSampleGradient, destination)) destination.copy_(perSampleGradient);
    }

    /// <summary>Zeros every tensor the call did not write (parameters that did not reach the loss).</summary>
    public void ZeroUnwritten()
    {
        foreach (var name in _into.Names.Where(n => !_written.Contains(n))) _into[name].zero_();
    }

    /// <summary>Ends the lease.</summary>
    public void Dispose() => _into.EndWrite();
}
