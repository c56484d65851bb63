using static TorchSharp.torch;

namespace PerSampleGrads.Interop;

/// <summary>One PyTorch method's outcome for a problem.</summary>
/// <param name="Method">
/// <see cref="PyTorchReference.LoopFloat64"/>, <see cref="PyTorchReference.Vmap"/> or
/// <see cref="PyTorchReference.ExpandedWeights"/>.
/// </param>
/// <param name="DType">The element type PyTorch computed in (float64 for the loop; the run's dtype otherwise).</param>
/// <param name="Gradients">Per-sample gradients <c>[N, ...parameter shape]</c> by qualified name, on the CPU; null when
/// unsupported.</param>
/// <param name="UnsupportedReason">PyTorch's reason when the method cannot handle the model; null when it ran.</param>
public sealed record PyTorchMethodResult(string Method, ScalarType DType, PerSampleGradients? Gradients,
    string? UnsupportedReason)
{
    /// <summary>Whether the method ran.</summary>
    public bool Supported => Gradients is not null;
}

/// <summary>
/// PyTorch's answers for one problem: every method's per-sample gradients (each the gradient of the sample's own loss,
/// <see cref="LossFunction"/>), with the versions and thread count it ran with. Owns the gradient tensors: dispose it.
/// </summary>
public sealed class PyTorchReferenceResult : IDisposable
{
    private readonly List<PyTorchMethodResult> _methods;

    internal PyTorchReferenceResult(string problem, string architecture, PyTorchVersions versions, int threads,
        List<PyTorchMethodResult> methods)
    {
        Problem = problem;
        Architecture = architecture;
        Versions = versions;
        Threads = threads;
        _methods = methods;
    }

    /// <summary>The problem id.</summary>
    public string Problem { get; }

    /// <summary>The architecture name PyTorch built.</summary>
    public string Architecture { get; }

    /// <summary>Versions of Python, PyTorch and numpy.</summary>
    public PyTorchVersions Versions { get; }

    /// <summary><c>torch.get_num_threads()</c> during the run.</summary>
    public int Threads { get; }

    /// <summary>Every method, supported or not, in the order the script ran them.</summary>
    public IReadOnlyList<PyTorchMethodResult> Methods => _methods;

    /// <summary>
    /// The per-sample gradients of <paramref name="method"/> (owned by this result: do not dispose). A method PyTorch
    /// could not run throws <see cref="PyTorchReferenceException"/> with its reason and the PyTorch version.
    /// </summary>
    public PerSampleGradients this[string method]
    {
        get
        {
            var outcome = _methods.FirstOrDefault(m => m.Method == method)
                ?? throw new PyTorchReferenceException(PyTorchReferenceFailure.MethodUnavailable,
                    $"The PyTorch reference did not run '{method}' for {Problem}; it ran: " +
                        $"{string.Join(", ", _methods.Select(m => m.Method))}.");
            return outcome.Gradients ?? throw new PyTorchReferenceException(PyTorchReferenceFailure.MethodUnavailable,
                $"{method} is unsupported for {Problem} on PyTorch {Versions.Torch}: {outcome.UnsupportedReason}");
        }
    }

    /// <summary>Releases every gradient tensor.</summary>
    public void Dispose()
    {
        foreach (var method in _methods) method.Gradients?.Dispose();
    }
}
