using PerSampleGrads;
using static TorchSharp.torch;

namespace KitSample;

/// <summary>
/// A deliberately simple per-sample gradient method, written as a user of the package would: run the model on each
/// sample alone and ask autograd for the gradient of that sample's loss. Slow (N backward passes), easy to trust.
/// </summary>
public class LoopMethod : IPerSampleGradientMethod
{
    /// <inheritdoc/>
    public virtual string Name => "loop";

    /// <inheritdoc/>
    public PerSampleGradients Compute(nn.Module<Tensor, Tensor> model, Tensor inputs, Tensor targets,
        LossFunction loss)
    {
        // The refusals the kit checks: no samples, BatchNorm in training mode, randomness, bad targets.
        BatchValidator.RequireArguments(model, inputs, targets, loss);
        BatchValidator.CheckModel(model);
        BatchValidator.Validate(model, inputs, targets, loss);
        var parameters = model.named_parameters().Where(p => p.parameter.requires_grad).ToList();
        long n = inputs.shape[0];
        var perSample = parameters.Select(_ => new List<Tensor>()).ToList();
        using var grad = enable_grad();
        for (long i = 0; i < n; i++)
        {
            using var scope = NewDisposeScope();
            var sampleLoss = SampleLoss(model, inputs.narrow(0, i, 1), targets.narrow(0, i, 1), loss);
            // allow_unused: autograd.grad aborts the process on an unused input otherwise.
            var gradients = autograd.grad([sampleLoss], parameters.Select(p => (Tensor)p.parameter).ToList(),
                allow_unused: true);
            for (int k = 0; k < parameters.Count; k++)
            {
                var g = gradients[k].IsInvalid ? zeros_like(parameters[k].parameter) : gradients[k].detach().clone();
                perSample[k].Add(g.MoveToOuterDisposeScope());
            }
        }
        var stacked = parameters.Select((p, k) => (p.name, stack(perSample[k]))).ToList();
        foreach (var list in perSample) foreach (var t in list) t.Dispose();
        return new PerSampleGradients(Name, n, stacked);
    }

    /// <summary>The loss of one sample, given as a batch of one.</summary>
    protected virtual Tensor SampleLoss(nn.Module<Tensor, Tensor> model, Tensor input, Tensor target,
        LossFunction loss) => loss.BatchLoss(model.call(input), target);
}

/// <summary>
/// The same loop with a subtle bug: "a batch of one has one sample, so mean and sum are the same" - true for
/// cross-entropy, false for a loss with several elements per sample. With MSE or L1 on D outputs and a mean
/// reduction, every gradient comes out D times too large. Every classification case passes.
/// </summary>
public sealed class SumForMeanLoopMethod : LoopMethod
{
    /// <inheritdoc/>
    public override string Name => "loop (sum for mean)";

    /// <inheritdoc/>
    protected override Tensor SampleLoss(nn.Module<Tensor, Tensor> model, Tensor input, Tensor target,
        LossFunction loss) => loss.WithReduction(LossReduction.Sum).BatchLoss(model.call(input), target);
}
