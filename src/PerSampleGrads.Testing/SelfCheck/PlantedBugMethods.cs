using PerSampleGrads.Oracle;
using static TorchSharp.torch;

namespace PerSampleGrads.Testing.SelfCheck;

/// <summary>
/// Loop methods for the kit's self-check: the oracle's loop (one backward per sample) as the control, and the same
/// loop with one realistic bug planted after it. The kit must pass the control and catch every bug.
/// </summary>
public static class PlantedBugMethods
{
    /// <summary>The correct loop method: one forward and backward per sample.</summary>
    public static IPerSampleGradientMethod Control() => new PlantedBugMethod("loop (control)", (_, _) => { });

    /// <summary>
    /// Differentiates the batch's mean loss per sample and forgets to rescale: with a mean reduction every gradient
    /// comes out N times too small.
    /// </summary>
    public static IPerSampleGradientMethod MeanNotRescaled() => new PlantedBugMethod("loop forgetting the mean's 1/N",
        (gradients, loss) =>
        {
            if (loss.Reduction != LossReduction.Mean) return;
            foreach (var (_, gradient) in gradients.Entries) gradient.div_(gradients.BatchSize);
        });

    /// <summary>Hands sample 0 the gradient of sample 1 and sample 1 that of sample 0 (when N is at least 2).</summary>
    public static IPerSampleGradientMethod FirstTwoSamplesSwapped() =>
        new PlantedBugMethod("loop swapping samples 0 and 1",
        (gradients, _) =>
        {
            if (gradients.BatchSize < 2) return;
            foreach (var (_, gradient) in gradients.Entries)
            {
                using var scope = NewDisposeScope();
                var first = gradient[0].clone();
                gradient[0].copy_(gradient[1]);
                gradient[1].copy_(first);
            }
        });

    /// <summary>Every planted bug, by name.</summary>
    public static IReadOnlyList<(string Bug, Func<IPerSampleGradientMethod> Create)> Bugs { get; } =
    [
        ("the mean reduction's 1/N is not rescaled", MeanNotRescaled),
        ("samples 0 and 1 get each other's gradients", FirstTwoSamplesSwapped),
    ];

    private sealed class PlantedBugMethod(string name, Action<PerSampleGradients, LossFunction> plant)
        : IPerSampleGradientMethod
    {
        public string Name => name;

        public PerSampleGradients Compute(nn.Module<Tensor, Tensor> model, Tensor inputs, Tensor targets,
            LossFunction loss)
        {
            // The oracle lists a tied parameter's second name as a view of the first: plant on separate copies.
            using var correct = new PerSampleGradientOracle().Compute(model, inputs, targets, loss);
            var planted = new PerSampleGradients(name, correct.BatchSize,
                correct.Entries.Select(e => (e.Name, e.Gradient.clone())).ToList());
            using (no_grad()) plant(planted, loss);
            return planted;
        }
    }
}
