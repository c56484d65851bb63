using static TorchSharp.torch;

namespace PerSampleGrads;

/// <summary>
/// The one result type: every trainable parameter's per-sample gradient, <c>[N, ...parameter shape]</c>, keyed by
/// the parameter's qualified name (<c>layer1.0.conv1.weight</c>) in <c>named_parameters()</c> order. Slice i is the
/// gradient of sample i's own loss <c>L_i</c> (see <see cref="LossFunction"/>), in the units of the loss per unit
/// of the parameter.
/// </summary>
/// <remarks>The result owns its tensors (they belong to no dispose scope): dispose it when done.</remarks>
public sealed class PerSampleGradients : IDisposable
{
    private readonly Dictionary<string, Tensor> _byName;
    private readonly List<string> _names;
    private int _writers;

    /// <summary>Takes ownership of <paramref name="gradients"/> (detaching them from any dispose scope).</summary>
    public PerSampleGradients(string method, long batchSize, IEnumerable<(string Name, Tensor Gradient)> gradients)
    {
        Method = method;
        BatchSize = batchSize;
        _names = [];
        _byName = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, gradient) in gradients)
        {
            if (gradient.shape.Length == 0 || gradient.shape[0] != batchSize)
                throw new ArgumentException($"Per-sample gradient of '{name}' has shape " +
                    $"[{string.Join(", ", gradient.shape)}]; its first dimension must be the batch size {batchSize}.");
            _names.Add(name);
            _byName.Add(name, gradient.DetachFromDisposeScope());
        }
    }

    /// <summary>Which method computed it (<c>oracle</c>, <c>hooks</c>, <c>functional</c>, ...).</summary>
    public string Method { get; }

    /// <summary>The engine's audit of itself, when it was asked for one (<c>EngineOptions.AuditSamples</c>).</summary>
    public AuditReport? Audit { get; internal set; }

    /// <summary>N, the number of samples.</summary>
    public long BatchSize { get; }

    /// <summary>Qualified parameter names in <c>named_parameters()</c> order.</summary>
    public IReadOnlyList<string> Names => _names;

    /// <summary>Number of parameters.</summary>
    public int Count => _names.Count;

    /// <summary>The per-sample gradient of one parameter, <c>[N, ...parameter shape]</c>.</summary>
    public Tensor this[string name] => _byName.TryGetValue(name, out var t)
        ? t
        : throw new KeyNotFoundException($"No per-sample gradient for '{name}'. Known: {string.Join(", ", _names)}.");

    /// <summary>Whether a parameter is present.</summary>
    public bool Contains(string name) => _byName.ContainsKey(name);

    /// <summary>Name and gradient pairs in order.</summary>
    public IEnumerable<(string Name, Tensor Gradient)> Entries => _names.Select(n => (n, _byName[n]));

    /// <summary>Whether <see cref="Dispose"/> was called: the tensors are gone.</summary>
    public bool IsDisposed { get; private set; }

    /// <summary>Marks the result as being written by a call; false when another call is already writing it.</summary>
    internal bool TryBeginWrite() => Interlocked.CompareExchange(ref _writers, 1, 0) == 0;

    /// <summary>Ends <see cref="TryBeginWrite"/>.</summary>
    internal void EndWrite() => Interlocked.Exchange(ref _writers, 0);

    /// <summary>Releases every tensor.</summary>
    public void Dispose()
    {
        IsDisposed = true;
        foreach (var t in _byName.Values) t.Dispose();
        _byName.Clear();
        _names.Clear();
    }
}
