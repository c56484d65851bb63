using static TorchSharp.torch;

namespace PerSampleGrads.Maths;

/// <summary>
/// An EmbeddingBag call as positions: for every id position t, the bag (= sample) it belongs to, the id, and the
/// coefficient its row enters the bag's output with, so that <c>output[n] = sum_{t in bag n} c[t] W[id[t]]</c> for
/// sum and mean: <c>c = per_sample_weight[t]</c> (or 1) in sum mode, <c>1 / (ids of bag n that are not padding)</c>
/// in mean mode, 0 at padding. With 2-d ids <c>[N, bag]</c> row n is bag n; with 1-d ids and offsets <c>[N]</c>
/// (or <c>[N + 1]</c> with <c>include_last_offset</c>) bag n holds positions <c>offsets[n] ..
/// offsets[n + 1] - 1</c>.
/// </summary>
/// <param name="Sample">Bag of each position, <c>[T]</c> (Int64).</param>
/// <param name="Ids">Id of each position, <c>[T]</c> (Int64).</param>
/// <param name="Coefficient">Coefficient of each position, <c>[T]</c>, in the weight's dtype.</param>
/// <param name="Bags">Number of bags N.</param>
public sealed record BagPositions(Tensor Sample, Tensor Ids, Tensor Coefficient, long Bags)
{
    /// <summary>The positions of one call (<paramref name="input"/>, <paramref name="offsets"/>,
    /// <paramref name="weights"/> as the module received them).</summary>
    public static BagPositions Of(Tensor input, Tensor? offsets, Tensor? weights, EmbeddingBagBehaviour behaviour,
        ScalarType dtype)
    {
        var device = input.device;
        Tensor sample, ids;
        long bags;
        if (input.dim() == 2)
        {
            bags = input.shape[0];
            sample = arange(bags, device: device).unsqueeze(1).expand(input.shape).reshape(-1);
            ids = input.reshape(-1);
        }
        else
        {
            var starts = behaviour.IncludeLastOffset ? offsets!.narrow(0, 0, offsets.shape[0] - 1) : offsets!;
            bags = starts.shape[0];
            ids = input.to(ScalarType.Int64);
            var position = arange(ids.shape[0], device: device);
            sample = position.unsqueeze(1).ge(starts.to(ScalarType.Int64).unsqueeze(0)).sum(dim: 1).sub(1);
        }
        ids = ids.to(ScalarType.Int64);
        var keep = behaviour.PaddingIndex is { } padding
            ? ids.ne(padding).to(dtype) : ones(ids.shape[0], dtype: dtype, device: device);
        var coefficient = weights is null ? keep : keep * weights.reshape(-1).to(dtype);
        if (behaviour.Reduction == BagReduction.Mean)
        {
            var count = zeros(bags, dtype: dtype, device: device).index_add_(0, sample, keep, 1);
            coefficient = coefficient / count.clamp_min(1).index_select(0, sample);
        }
        return new BagPositions(sample, ids, coefficient, bags);
    }
}
