using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace PerSampleGrads;

/// <summary>How a loss combines the terms of a batch: the reduction a training loop declares.</summary>
public enum LossReduction
{
    /// <summary>The batch loss is the sum of the samples' losses.</summary>
    Sum,
    /// <summary>The batch loss is the mean over elements (for the built-in losses, PyTorch's
    /// <c>reduction='mean'</c>).</summary>
    Mean,
}

/// <summary>What a loss expects as targets.</summary>
public enum TargetKind
{
    /// <summary>Integer class indices, <c>[N]</c> (or <c>[N, d1, ...]</c> for per-position outputs).</summary>
    ClassIndices,
    /// <summary>Floating values of the output's shape.</summary>
    Values,
}

/// <summary>
/// A loss with a declared reduction: the one loss abstraction the oracle and every engine share.
/// </summary>
/// <remarks>
/// <para>
/// <b>Per-sample semantics.</b> Sample i's loss <c>L_i</c> is the loss evaluated on the batch of one
/// <c>(x_i, y_i)</c> with the declared reduction. For the built-in losses the batch loss is then exactly
/// <c>sum_i L_i</c> (<see cref="LossReduction.Sum"/>) or <c>(1/N) sum_i L_i</c> (<see cref="LossReduction.Mean"/>),
/// and a per-sample gradient is always the gradient of <c>L_i</c>, whatever the reduction: the engines drop the
/// batch mean's <c>1/N</c> (equivalently, they rescale by N). For losses with several target elements per sample (MSE
/// or L1 on <c>[N, D]</c> outputs, CE or NLL with a class index per position, <c>[N, L]</c> targets) the within-sample
/// mean stays: with <c>Mean</c>, <c>L_i</c> is the mean over the sample's D elements, with <c>Sum</c> their sum, so
/// the two reductions differ by exactly the factor D.
/// </para>
/// <para>Class weights and ignored indices are not offered: with them the batch mean is no longer a mean of the
/// samples' own losses.</para>
/// </remarks>
public sealed class LossFunction
{
    private readonly Func<Tensor, Tensor, nn.Reduction, Tensor>? _builtIn;
    private readonly Func<Tensor, Tensor, Tensor>? _perSample;

    private LossFunction(string name, LossReduction reduction, TargetKind targets,
        Func<Tensor, Tensor, nn.Reduction, Tensor>? builtIn, Func<Tensor, Tensor, Tensor>? perSample)
    {
        Name = name;
        Reduction = reduction;
        Targets = targets;
        _builtIn = builtIn;
        _perSample = perSample;
    }

    /// <summary>Short name: <c>CE</c>, <c>NLL</c>, <c>MSE</c>, <c>L1</c>, or the custom loss's name.</summary>
    public string Name { get; }

    /// <summary>The declared reduction.</summary>
    public LossReduction Reduction { get; }

    /// <summary>What the targets must be.</summary>
    public TargetKind Targets { get; }

    /// <summary>Whether this is a user-supplied per-sample loss.</summary>
    public bool IsCustom => _perSample is not null;

    /// <summary>Cross-entropy on logits <c>[N, C, ...]</c> with class-index targets <c>[N, ...]</c>.</summary>
    public static LossFunction CrossEntropy(LossReduction reduction = LossReduction.Mean) =>
        new("CE", reduction, TargetKind.ClassIndices, (o, t, r) => F.cross_entropy(o, t, reduction: r), null);

    /// <summary>Negative log-likelihood on log-probabilities <c>[N, C, ...]</c> with class-index targets.</summary>
    public static LossFunction NegativeLogLikelihood(LossReduction reduction = LossReduction.Mean) =>
        new("NLL", reduction, TargetKind.ClassIndices, (o, t, r) => F.nll_loss(o, t, reduction: r), null);

    /// <summary>Squared error, targets of the output's shape.</summary>
    public static LossFunction MeanSquaredError(LossReduction reduction = LossReduction.Mean) =>
        new("MSE", reduction, TargetKind.Values, (o, t, r) => F.mse_loss(o, t, r), null);

    /// <summary>Absolute error, targets of the output's shape.</summary>
    public static LossFunction L1(LossReduction reduction = LossReduction.Mean) =>
        new("L1", reduction, TargetKind.Values, (o, t, r) => F.l1_loss(o, t, r), null);

    /// <summary>
    /// A user-supplied loss given as per-sample losses: <paramref name="perSampleLosses"/> maps
    /// <c>(output [N, ...], target [N, ...])</c> to <c>[N]</c>, entry i depending on sample i alone. The batch loss is
    /// their sum or mean over N.
    /// </summary>
    public static LossFunction PerSample(string name, Func<Tensor, Tensor, Tensor> perSampleLosses,
        LossReduction reduction = LossReduction.Mean, TargetKind targets = TargetKind.Values)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(perSampleLosses);
        return new LossFunction(name, reduction, targets, null, perSampleLosses);
    }

    /// <summary>A copy of this loss with another reduction.</summary>
    public LossFunction WithReduction(LossReduction reduction) =>
        new(Name, reduction, Targets, _builtIn, _perSample);

    /// <summary>
    /// The batch loss as a training loop computes it (a scalar): the declared reduction over the whole batch.
    /// The oracle evaluates it on batches of one.
    /// </summary>
    public Tensor BatchLoss(Tensor output, Tensor target)
    {
        if (_builtIn is not null)
            return _builtIn(output, target, Reduction == LossReduction.Sum ? nn.Reduction.Sum : nn.Reduction.Mean);
        using var scope = NewDisposeScope();
        var losses = CustomLosses(output, target);
        return scope.MoveToOuter(Reduction == LossReduction.Sum ? losses.sum() : losses.mean());
    }

    /// <summary>
    /// <c>[N]</c>: each sample's own loss <c>L_i</c>, equal to <see cref="BatchLoss"/> on the batch of one
    /// <c>(x_i, y_i)</c>. The engines differentiate <c>sum_i L_i</c>.
    /// </summary>
    public Tensor PerSampleLosses(Tensor output, Tensor target)
    {
        if (_perSample is not null) return CustomLosses(output, target);
        using var scope = NewDisposeScope();
        var elements = _builtIn!(output, target, nn.Reduction.None);
        if (elements.dim() == 1) return scope.MoveToOuter(elements);
        var perSample = elements.reshape(elements.shape[0], -1);
        return scope.MoveToOuter(Reduction == LossReduction.Sum ? perSample.sum(dim: 1) : perSample.mean([1L]));
    }

    /// <summary>
    /// Checks the whole batch's targets against the model's output (for any number of samples: only the per-sample
    /// shape is compared); throws <see cref="PerSampleGradientsException"/> naming the problem (wrong shape, class
    /// index out of range, non-integer class targets).
    /// </summary>
    public void ValidateTargets(Tensor output, Tensor target)
    {
        if (Targets == TargetKind.ClassIndices && !IsCustom)
        {
            if (target.dtype != ScalarType.Int64)
                throw new PerSampleGradientsException(Problem.InvalidTargets,
                    $"{Name} needs class indices as Int64 targets, got {target.dtype}; convert them with " +
                        $"targets.to(ScalarType.Int64).");
            if (output.dim() < 2 || target.dim() != output.dim() - 1)
                throw new PerSampleGradientsException(Problem.InvalidTargets,
                    $"{Name} needs outputs [N, C, ...] and targets [N, ...]; got outputs [{Shape(output)}] and " +
                        $"targets [{Shape(target)}].");
            long classes = output.shape[1];
            using var scope = NewDisposeScope();
            long min = target.min().item<long>(), max = target.max().item<long>();
            if (min < 0 || max >= classes)
                throw new PerSampleGradientsException(Problem.InvalidTargets,
                    $"{Name} targets must be class indices in [0, {classes - 1}] for {classes} output classes; found " +
                        $"values from {min} to {max}.");
        }
        else if (!IsCustom && !output.shape[1..].SequenceEqual(target.shape[1..]))
        {
            throw new PerSampleGradientsException(Problem.InvalidTargets,
                $"{Name} needs targets shaped like the output, [N, {string.Join(", ", output.shape[1..])}]; got " +
                    $"[{Shape(target)}].");
        }
    }

    private Tensor CustomLosses(Tensor output, Tensor target)
    {
        var losses = _perSample!(output, target);
        if (losses.dim() != 1 || losses.shape[0] != output.shape[0])
            throw new PerSampleGradientsException(Problem.InvalidTargets,
                $"The custom loss '{Name}' must return per-sample losses of shape [{output.shape[0]}]; it returned " +
                    $"[{Shape(losses)}].");
        return losses;
    }

    private static string Shape(Tensor t) => string.Join(", ", t.shape);

    /// <summary>Readable form used in case ids and reports: <c>CE/mean</c>.</summary>
    public override string ToString() => $"{Name}/{(Reduction == LossReduction.Sum ? "sum" : "mean")}";
}
