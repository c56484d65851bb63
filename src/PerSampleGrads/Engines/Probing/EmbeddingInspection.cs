using System.Runtime.CompilerServices;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PerSampleGrads.Engines.Probing;

/// <summary>What an Embedding does to gradients, which TorchSharp 0.107 does not expose as properties.</summary>
/// <param name="PaddingIndex">The row that receives no gradient, if any.</param>
public sealed record EmbeddingBehaviour(long? PaddingIndex);

/// <summary>
/// Finds an Embedding's <c>padding_idx</c> by asking autograd: a forward over every index twice, then the gradient
/// of the sum: ordinary rows get 2, the padding row 0, and all rows 1 under <c>scale_grad_by_freq</c>. A
/// <c>max_norm</c> embedding rewrites its weight during the forward: that is detected, undone and refused. The
/// answer is cached per module instance.
/// </summary>
public static class EmbeddingInspection
{
    private static readonly ConditionalWeakTable<Embedding, EmbeddingBehaviour> Cache = new();

    /// <summary>The behaviour of <paramref name="embedding"/>; throws for options no rule supports.</summary>
    public static EmbeddingBehaviour Inspect(Embedding embedding, string path)
    {
        if (Cache.TryGetValue(embedding, out var known)) return known;
        var behaviour = Probe(embedding, path);
        Cache.AddOrUpdate(embedding, behaviour);
        return behaviour;
    }

    private static EmbeddingBehaviour Probe(Embedding embedding, string path)
    {
        using var scope = NewDisposeScope();
        var weight = embedding.weight!;
        if (!weight.requires_grad) return new EmbeddingBehaviour(null);
        var before = weight.detach().clone();
        // forward(), not call(): the probe must not fire the engines' hooks.
        var output = embedding.forward(arange(weight.shape[0], device: weight.device).repeat(2));
        bool changed;
        using (no_grad())
        {
            changed = !weight.equal(before).all().item<bool>();
            if (changed) weight.copy_(before);
        }
        if (changed)
            throw new PerSampleGradientsException(Problem.UnsupportedLayers,
                $"Embedding '{path}' uses max_norm: it rewrites its own weight during every forward, so a per-sample " +
                    $"gradient of a fixed parameter is not defined. Create it without max_norm.");
        var perRow = RowGradients(output, weight);
        if (perRow.max().to(ScalarType.Float64).item<double>() < 1.5)
            throw new PerSampleGradientsException(Problem.UnsupportedLayers,
                $"Embedding '{path}' uses scale_grad_by_freq, which scales gradients by frequencies within the " +
                    $"batch; no per-sample rule supports it. Create it without scale_grad_by_freq.");
        var zeroRows = (perRow == 0).nonzero();
        return new EmbeddingBehaviour(zeroRows.shape[0] == 0 ? null : zeroRows[0, 0].item<long>());
    }

    // Column 0 of the gradient of sum(output) for the weight, without leaving anything in the caller's weight.grad.
    private static Tensor RowGradients(Tensor output, Tensor weight)
    {
        var callers = weight.grad;
        weight.grad = null;
        try
        {
            autograd.backward([output.sum()], inputs: [weight]);
            using var g = weight.grad!;
            var dense = g.is_sparse ? g.to_dense() : g;
            return dense.select(1, 0).clone();
        }
        finally
        {
            weight.grad = callers;
            callers?.Dispose();
        }
    }
}
