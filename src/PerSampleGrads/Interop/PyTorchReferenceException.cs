namespace PerSampleGrads.Interop;

/// <summary>Why the PyTorch cross-check could not give an answer.</summary>
public enum PyTorchReferenceFailure
{
    /// <summary>No Python at the configured path, or one without torch or numpy: the message gives the fix.</summary>
    PythonUnavailable,
    /// <summary>The two sides describe different things (architecture, parameter names or shapes, loss, batch): the
    /// message names what differs.</summary>
    Mismatch,
    /// <summary>PyTorch could not run a method that was asked for (its version lacks it, or it rejects the
    /// model).</summary>
    MethodUnavailable,
    /// <summary>The script failed, timed out, or answered something malformed: the message holds its exit status and
    /// output.</summary>
    ScriptFailed,
}

/// <summary>
/// The PyTorch reference could not answer. Never a partial answer: a comparison either has PyTorch's result for every
/// parameter or fails with this, naming the parameter, shape, version or failure.
/// </summary>
public sealed class PyTorchReferenceException(PyTorchReferenceFailure failure, string message, Exception? inner = null)
    : Exception(message, inner)
{
    /// <summary>The kind of failure, for callers that act on it (tests skip only on an explicit opt-out).</summary>
    public PyTorchReferenceFailure Failure { get; } = failure;
}
