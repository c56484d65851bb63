using System.Runtime.CompilerServices;
using TorchSharp;
using TorchSharp.Modules;
using PerSampleGrads.Maths;
using static TorchSharp.torch;

namespace PerSampleGrads.Engines.Probing;

/// <summary>
/// Finds an EmbeddingBag's mode, <c>padding_idx</c> and <c>include_last_offset</c> by running it (<c>forward</c>,
/// no hooks) on small bags and asking autograd: one-id bags give every row gradient 1 and the padding row 0; a bag
/// of two distinct ids gives each of their rows gradient 1 (sum), 1/2 (mean) or a 0/1 pattern (max); a bag holding
/// one id twice gives 2 (sum) unless <c>scale_grad_by_freq</c> divides by the frequency (refused); 1-d ids
/// <c>[a, b]</c> with offsets <c>[0, 1]</c> give two bags, or one with <c>include_last_offset</c> (found first: every
/// probe passes 1-d ids with offsets, a final one with <c>include_last_offset</c>). A
/// <c>max_norm</c> bag rewrites its weight during the forward: detected, undone and refused. Cached per module.
/// </summary>
public static class EmbeddingBagInspection
{
    private static readonly ConditionalWeakTable<EmbeddingBag, EmbeddingBagBehaviour> Cache = new();

    /// <summary>The behaviour of <paramref name="bag"/>; throws for options no rule supports.</summary>
    public static EmbeddingBagBehaviour Inspect(EmbeddingBag bag, string path)
    {
        if (Cache.TryGetValue(bag, out var known)) return known;
        var behaviour = Probe(bag, path);
        Cache.AddOrUpdate(bag, behaviour);
        return behaviour;
    }

    private static EmbeddingBagBehaviour Probe(EmbeddingBag bag, string path)
    {
        using var scope = NewDisposeScope();
        var weight = bag.weight!;
        long rows = weight.shape[0];
        var device = weight.device;
        var before = weight.detach().clone();
        // First, as every later probe passes 1-d ids with offsets laid out for it: with include_last_offset,
        // libtorch reads 2-d ids' implicit offsets as N - 1 bags.
        bool includeLast;
        using (no_grad())
            includeLast = bag.forward(tensor(new[] { 0L, rows > 1 ? 1L : 0L }, device: device),
                tensor(new[] { 0L, 1L }, device: device), null).shape[0] == 1;
        // Bags of equal size over the 1-d ids.
        Tensor Bags(long[] ids, long size)
        {
            long count = ids.Length / size + (includeLast ? 1 : 0);
            return RowGradients(bag, tensor(ids, device: device), arange(count, device: device).mul(size), weight);
        }
        var single = Bags(Enumerable.Range(0, (int)rows).Select(r => (long)r).ToArray(), 1);
        using (no_grad())
            if (!weight.equal(before).all().item<bool>())
            {
                weight.copy_(before);
                throw new PerSampleGradientsException(Problem.UnsupportedLayers,
                    $"EmbeddingBag '{path}' uses max_norm: it rewrites its own weight during every forward, so a " +
                    "per-sample gradient of a fixed parameter is not defined. Create it without max_norm.");
            }
        var zeroRows = (single.abs().sum(1) == 0).nonzero();
        long? padding = zeroRows.shape[0] == 0 ? null : zeroRows[0, 0].item<long>();
        var usable = Enumerable.Range(0, (int)rows).Select(r => (long)r).Where(r => r != padding).Take(2).ToArray();
        if (usable.Length < 2) return new EmbeddingBagBehaviour(BagReduction.Sum, padding, includeLast);
        long a = usable[0], b = usable[1];
        var pair = Bags([a, b], 2)[a];
        var reduction = pair.eq(1).all().item<bool>() ? BagReduction.Sum
            : pair.eq(0.5).all().item<bool>() ? BagReduction.Mean : BagReduction.Max;
        var twice = Bags([a, a], 2)[a];
        double expected = reduction == BagReduction.Sum ? 2 : 1;
        if (reduction != BagReduction.Max && Math.Abs(twice[0].ToDouble() - expected) > 1e-6)
            throw new PerSampleGradientsException(Problem.UnsupportedLayers,
                $"EmbeddingBag '{path}' uses scale_grad_by_freq, which scales gradients by frequencies within the " +
                "batch; no per-sample rule supports it. Create it without scale_grad_by_freq.");
        return new EmbeddingBagBehaviour(reduction, padding, includeLast);
    }

    // The gradient of sum(bag(ids)) for the weight, without leaving anything in the caller's weight.grad.
    private static Tensor RowGradients(EmbeddingBag bag, Tensor ids, Tensor offsets, Tensor weight)
    {
        var callers = weight.grad;
        weight.grad = null;
        try
        {
            using var grad = enable_grad();
            var output = bag.forward(ids, offsets, null);
            if (!output.requires_grad) return zeros_like(weight);
            autograd.backward([output.sum()], inputs: [weight]);
            using var g = weight.grad!;
            var dense = g.is_sparse ? g.to_dense() : g;
            return dense.clone();
        }
        finally
        {
            weight.grad = callers;
        }
    }
}
