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

    /// <summary>Which problem it is, for programs (tests, the command line) that act on it.</summary>
    public Problem Problem { get; }
}
