using TorchSharp;
using static TorchSharp.torch;

namespace PerSampleGrads.Maths;

/// <summary>
/// Exact per-sample gradients of one module's parameters without a closed form: for each sample n, the module alone
/// runs forward on <c>x[n]</c> (a batch of one) and autograd gives the gradient of <c>&lt;g[n], module(x[n])&gt;</c>
/// for its parameters (and, when asked, for <c>x[n]</c>), with g the gradient the whole batch's backward delivered at
/// the module's output. Valid for modules that treat samples independently (the definition of a per-sample gradient
/// needs it); <see cref="CheckOneSample"/> checks the output shape and, given the batch's output, that row 0 is
/// sample 0's own output. Cost: N forward and backward passes of the module on one sample each.
/// </summary>
public static class PerSampleRerun
{
    /// <summary>
    /// Runs the module on sample 0 alone and checks that its output is one row shaped like the batch output's rows
    /// (<paramref name="batchOutputShape"/>) and, when <paramref name="batchOutput"/> is given, equal to its row 0
    /// within the dtype's tolerance; throws <see cref="PerSampleGradientsException"/> naming the module otherwise.
    /// </summary>
    public static void CheckOneSample(nn.Module<Tensor, Tensor> module, string path, Tensor input,
        long[] batchOutputShape,
        Tensor? batchOutput = null)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var one = module.forward(input.narrow(0, 0, 1));
        long[] expected = [1, .. batchOutputShape[1..]];
        if (!one.shape.SequenceEqual(expected))
            throw new PerSampleGradientsException(Problem.UnsupportedLayers,
                $"Module '{path}' ({module.GetType().Name}) has no per-sample rule, and the rerun fallback needs it " +
                    $"to map a batch of one to one row of its batch output: it gave shape " +
                    $"[{string.Join(", ", one.shape)}], not [{string.Join(", ", expected)}]. Add a rule to the " +
                    $"engine's table, or freeze its parameters.");
        if (batchOutput is null) return;
        var tolerance = Checking.TolerancePolicy.ToleranceFor(one.dtype);
        var row = batchOutput.narrow(0, 0, 1);
        double scale = Math.Max(1e-30, row.abs().max().to(ScalarType.Float64).item<double>());
        double gap = (one - row).abs().max().to(ScalarType.Float64).item<double>();
        if (gap > tolerance.Relative * scale)
            throw new PerSampleGradientsException(Problem.UnsupportedLayers,
                $"Module '{path}' ({module.GetType().Name}) has no per-sample rule, and its output for sample 0 " +
                    $"alone differs from its output for sample 0 within the batch (largest gap {gap:G3}): it mixes " +
                    $"the samples of a batch or draws random numbers, so its per-sample gradient is not defined. Put " +
                    $"it in eval mode, add a rule, or freeze its parameters.");
    }

    /// <summary>
    /// Per-sample gradients <c>[N, ...]</c> of <paramref name="parameters"/> (the module's own tensors, in order);
    /// zeros where the module's output does not depend on one.
    /// </summary>
    public static List<Tensor> Gradients(nn.Module<Tensor, Tensor> module, IReadOnlyList<Tensor> parameters,
        Tensor input, Tensor outputGradient)
    {
        long n = input.shape[0];
        var results = parameters.Select(p => zeros([n, .. p.shape], dtype: p.dtype, device: p.device)).ToList();
        using var grad = enable_grad();
        // backward() (autograd.grad aborts the process on any error) accumulates into .grad: the caller's are set
        // aside meanwhile.
        using var setAside = new SetAsideGradients(parameters);
        for (long i = 0; i < n; i++)
        {
            using var scope = NewDisposeScope();
            var output = module.forward(input.narrow(0, i, 1).detach());
            if (!output.requires_grad) continue;
            autograd.backward([output], [outputGradient.narrow(0, i, 1)], inputs: parameters.ToList());
            using var _ = no_grad();
            for (int j = 0; j < parameters.Count; j++)
            {
                using var gradient = parameters[j].grad;
                if (gradient is null || gradient.IsInvalid) continue;
                results[j][i].copy_(gradient);
                parameters[j].grad = null;
            }
        }
        return results;
    }

    /// <summary>
    /// Per-sample gradients <c>[N, ...]</c> of <paramref name="parameters"/> for a module of any signature:
    /// <paramref name="sample"/> runs the module on sample n alone and returns each output that reached the loss
    /// with the gradient the batch's backward delivered there for that sample (same shapes); the result for sample n
    /// is the gradient of <c>sum_j &lt;gradient_j, output_j&gt;</c>. Zeros where no output depends on a parameter.
    /// </summary>
    public static List<Tensor> Gradients(IReadOnlyList<Tensor> parameters, long n,
        Func<long, IReadOnlyList<(Tensor Output, Tensor Gradient)>> sample)
    {
        var results = parameters.Select(p => zeros([n, .. p.shape], dtype: p.dtype, device: p.device)).ToList();
        using var grad = enable_grad();
        using var setAside = new SetAsideGradients(parameters);
        for (long i = 0; i < n; i++)
        {
            using var scope = NewDisposeScope();
            var pairs = sample(i).Where(p => p.Output.requires_grad).ToList();
            if (pairs.Count == 0) continue;
            autograd.backward(pairs.Select(p => p.Output).ToList(), pairs.Select(p => p.Gradient).ToList(),
                inputs: parameters.ToList());
            using var _ = no_grad();
            for (int j = 0; j < parameters.Count; j++)
            {
                using var gradient = parameters[j].grad;
                if (gradient is null || gradient.IsInvalid) continue;
                results[j][i].copy_(gradient);
                parameters[j].grad = null;
            }
        }
        return results;
    }
}
