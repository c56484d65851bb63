using PerSampleGrads.Cases;
using PerSampleGrads.Zoo;

namespace PerSampleGrads.Testing.Specs;

/// <summary>The losses the generators draw from.</summary>
public enum LossKind
{
    /// <summary>Cross-entropy on logits, class targets.</summary>
    CrossEntropy,
    /// <summary>NLL on log-probabilities (the head ends with LogSoftmax), class targets.</summary>
    NegativeLogLikelihood,
    /// <summary>Squared error, value targets.</summary>
    MeanSquaredError,
    /// <summary>Absolute error, value targets.</summary>
    L1,
    /// <summary>The catalogue's custom per-sample loss (<see cref="CaseCatalogue.SoftMargin"/>), one term per
    /// sample.</summary>
    Custom,
}

/// <summary>
/// A generated gradient case: an architecture, a batch size, a loss with its reduction and the seed of the model and
/// the batch. Its <see cref="ToString"/> is the one line a failing property prints.
/// </summary>
public sealed record CaseSpec(ArchitectureSpec Architecture, long BatchSize, LossKind Loss, LossReduction Reduction,
    long Seed)
{
    /// <summary>Whether the loss takes class indices.</summary>
    public bool ClassTargets => Loss is LossKind.CrossEntropy or LossKind.NegativeLogLikelihood;

    /// <summary>The loss with the declared reduction.</summary>
    public LossFunction LossFunction => Create(Loss, Reduction);

    /// <summary>A valid architecture, N at least 1, at least two classes for class losses, LogSoftmax exactly for
    /// NLL.</summary>
    public bool IsValid =>
        Architecture.IsValid && BatchSize >= 1 && (!ClassTargets || Architecture.Outputs >= 2)
        && Architecture.LogSoftmax == (Loss == LossKind.NegativeLogLikelihood)
        && !(Architecture.PositionwiseHead && Loss == LossKind.Custom);

    /// <summary>What the case exercises: its layers' options, then its loss's target layout and N = 1.</summary>
    public IEnumerable<string> Exercises()
    {
        foreach (var exercised in Architecture.Exercises()) yield return exercised;
        string targets = ClassTargets ? "class" : "value";
        yield return Architecture.PositionwiseHead ? $"loss: {targets} targets per position"
            : ClassTargets || Architecture.Outputs == 1 ? $"loss: {targets} targets"
            : "loss: several values per sample";
        yield return $"loss: {Loss}/{Reduction}";
        if (BatchSize == 1) yield return "batch: N = 1";
    }

    /// <summary>The case as a catalogue case: the same model factory, batch maker and loss as the named
    /// cases.</summary>
    public GradientCase ToGradientCase() => new(ToString(), Architecture.ToString(), () => Architecture.Build(Seed),
        Architecture.Input.Dims, LossFunction, BatchSize,
        Architecture.Input.Kind == ShapeKind.TokenIds ? Architecture.Input.Vocabulary : 0, Seed);

    /// <summary>The loss of <paramref name="kind"/> with <paramref name="reduction"/>.</summary>
    public static LossFunction Create(LossKind kind, LossReduction reduction) => kind switch
    {
        LossKind.CrossEntropy => LossFunction.CrossEntropy(reduction),
        LossKind.NegativeLogLikelihood => LossFunction.NegativeLogLikelihood(reduction),
        LossKind.MeanSquaredError => LossFunction.MeanSquaredError(reduction),
        LossKind.L1 => LossFunction.L1(reduction),
        _ => CaseCatalogue.SoftMargin(reduction),
    };

    /// <summary><c>[3x8x8] Conv2d(3->4,k3,s2,p1,d1,g1)+...+Linear(36->5) N=3 CE/mean seed=42</c>.</summary>
    public override string ToString() => $"{Architecture} N={BatchSize} {LossFunction} seed={Seed}";
}

/// <summary>
/// A case for comparing a float32 computation with the float64 oracle: its architecture normalises only after smooth
/// activations (<see cref="ArchitectureSpec.NormalizesOnlyAfterSmoothActivations"/>).
/// </summary>
public sealed record Float32CaseSpec(CaseSpec Case)
{
    /// <summary>A valid case whose normalisations follow Tanh or GELU.</summary>
    public bool IsValid => Case.IsValid && Case.Architecture.NormalizesOnlyAfterSmoothActivations;

    /// <inheritdoc/>
    public override string ToString() => $"{Case} float32";
}

/// <summary>A configuration every method must refuse.</summary>
public enum Fault
{
    /// <summary>A BatchNorm layer in training mode.</summary>
    BatchNormInTraining,
    /// <summary>A trainable layer without a per-sample rule (a custom module with raw parameters).</summary>
    UnsupportedTrainableLayer,
    /// <summary>No samples.</summary>
    EmptyBatch,
}

/// <summary>
/// A valid case with one fault planted: a layer inserted into the body at <paramref name="Position"/>, or the batch
/// emptied. Generated directly (the fault is always applicable), never filtered.
/// </summary>
public sealed record InvalidCaseSpec(CaseSpec Valid, Fault Fault, int Position)
{
    /// <summary>The problem the engines must report.</summary>
    public Problem Expected => Fault switch
    {
        Fault.BatchNormInTraining => Problem.BatchNormInTraining,
        Fault.UnsupportedTrainableLayer => Problem.UnsupportedLayers,
        _ => Problem.EmptyBatch,
    };

    /// <summary>The faulty architecture (the valid one for an empty batch).</summary>
    public ArchitectureSpec Architecture => FaultLayer is { } layer
        ? Valid.Architecture with { Body = [.. Valid.Architecture.Body.Take(Position), layer,
            .. Valid.Architecture.Body.Skip(Position)] }
        : Valid.Architecture;

    /// <summary>Whether the planted fault fits where it is planted.</summary>
    public bool IsValid => Valid.IsValid && Position >= 0 && Position <= Valid.Architecture.Body.Count
        && Architecture.IsValid;

    /// <summary>The inserted layer, if the fault is one.</summary>
    public LayerSpec? FaultLayer => Fault switch
    {
        Fault.BatchNormInTraining => new BatchNormInTrainingSpec(),
        Fault.UnsupportedTrainableLayer => new UnsupportedTrainableSpec(),
        _ => null,
    };

    /// <inheritdoc/>
    public override string ToString() => Fault == Fault.EmptyBatch
        ? $"{Valid with { BatchSize = 0 }} (empty batch)"
        : $"{Valid with { Architecture = Architecture }} (fault: {Fault})";
}
