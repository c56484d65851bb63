using PerSampleGrads.Zoo;

namespace PerSampleGrads.Runs;

/// <summary>
/// Every zoo model with every built-in loss and both reductions, each at a small batch: the comparison a quick check
/// runs so that every layer family the zoo holds meets every loss.
/// </summary>
public static class CompareSweep
{
    /// <summary>The built-in losses by their command-line names, with both reductions.</summary>
    public static IReadOnlyList<LossFunction> Losses { get; } =
    [
        .. new[] { LossReduction.Mean, LossReduction.Sum }.SelectMany(r => new[]
        {
            LossFunction.CrossEntropy(r), LossFunction.NegativeLogLikelihood(r),
            LossFunction.MeanSquaredError(r), LossFunction.L1(r),
        }),
    ];

    /// <summary>N for <paramref name="model"/>: 2 for ResNet-18 (its float64 oracle dominates), else 3.</summary>
    public static long BatchSize(ZooModel model) => model == ModelZoo.ResNet18GroupNorm ? 2 : 3;

    /// <summary>
    /// One settings per zoo model and loss, taking seed, device, dtype, TF32 and engines from
    /// <paramref name="template"/> (its model, batch size and loss are replaced).
    /// </summary>
    public static IReadOnlyList<CompareSettings> Settings(CompareSettings template) =>
    [
        .. ModelZoo.All.SelectMany(model => Losses.Select(loss =>
            template with { Model = model, BatchSize = BatchSize(model), Loss = loss })),
    ];
}
