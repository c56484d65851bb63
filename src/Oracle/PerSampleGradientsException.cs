namespace PerSampleGrads;

/// <summary>The kinds of bad input every method reports the same way.</summary>
public enum Problem
{
    /// <summary>The batch has no samples.</summary>
    EmptyBatch,
    /// <summary>Inputs and targets disagree on the number of samples.</summary>
    BatchSizeMismatch,
    /// <summary>An input or target holds NaN or infinity.</summary>
    NonFiniteInput,
    /// <summary>BatchNorm in training mode mixes the samples of a batch.</summary>
    BatchNormInTraining,
    /// <summary>Dropout or other randomness is active (training mode).</summary>
    RandomnessInTraining,
    /// <summary>A trainable module has no per-sample rule in the engine's table.</summary>
    UnsupportedLayers,
    /// <summary>The model has no parameter with <c>requires_grad</c>.</summary>
    NoTrainableParameters,
    /// <summary>Inputs, targets and parameters disagree on the element type.</summary>
    DTypeMismatch,
    /// <summary>Inputs, parameters and the requested device disagree.</summary>
    DeviceMismatch,
    /// <summary>CUDA was asked for and is not available.</summary>
    CudaUnavailable,
    /// <summary>Targets do not fit the loss or the output.</summary>
    InvalidTargets,
    /// <summary>A copy of the model was needed (another dtype or device) and no factory was given.</summary>
    ModelCopyUnavailable,
    /// <summary>An index into an embedding table is negative or not below its number of rows.</summary>
    InvalidIds,
    /// <summary>
    /// A trainable layer's input does not carry the samples in a dimension the engine can use (e.g. a convolution
    /// after a transpose that moved the samples out of dimension 0).
    /// </summary>
    BatchLayout,
    /// <summary>
    /// An operation mixes the samples of the batch (a batch statistic outside BatchNorm): sample i's output depends on
    /// other samples, which the batched engines cannot separate.
    /// </summary>
    SampleMixing,
    /// <summary>A hook the caller registered on a trainable layer changes its output, or would see an engine's
    /// stand-in batch.</summary>
    UserHooks,
    /// <summary>A trainable parameter reaches the loss outside its layer's hooked call (<c>forward()</c> instead of
    /// <c>call()</c>, or the tensor used directly), so the engine's hooks cannot see that use.</summary>
    LayerBypassesHooks,
    /// <summary>The model's own forward or backward failed; the inner exception says why.</summary>
    ModelFailed,
    /// <summary>The audit recomputed samples with the single-sample oracle and the engine disagreed.</summary>
    AuditFailed,
    /// <summary>A result handed in for reuse does not fit the call (names, shapes, element type, device,
    /// layout).</summary>
    ResultBufferMismatch,
    /// <summary>A result handed in for reuse was already disposed.</summary>
    ResultBufferDisposed,
    /// <summary>A result handed in for reuse is being written by another call that has not returned.</summary>
    ResultBufferInUse,
    /// <summary>A clipping bound or noise setting is out of range.</summary>
    InvalidClipping,
}

/// <summary>
/// Bad input to a per-sample gradient method: the message names the problem and the fix. Raised before any
/// computation where possible; the caller's model is left as it was.
/// </summary>
public sealed class PerSampleGradientsException : ArgumentException
{
    /// <summary>Creates the exception.</summary>
    public PerSampleGradientsException(Problem problem, string message) : base(message) => Problem = problem;

    /// <summary>Creates the exception around the failure that caused it.</summary>
    public PerSampleGradientsException(Problem problem, string message, Exception inner) : base(message, inner) =>
        Problem = problem;

    /// <summary>Which problem it is, for programs (tests, the command line) that act on it.</summary>
    public Problem Problem { get; }
}
