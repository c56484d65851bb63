using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace PerSampleGrads.Maths;

/// <summary>
/// The affine-free normalised input of a normalisation layer, <c>x_hat</c>, as the module computes it in its current
/// mode: the part of the layer that both engines share (each then applies or differentiates the per-channel affine).
/// </summary>
public static class Normalized
{
    /// <summary>
    /// InstanceNorm1d/2d/3d: each sample's own statistics in training mode or without running statistics, else the
    /// running ones (eval with <c>track_running_stats</c>).
    /// </summary>
    public static Tensor Instance(InstanceNorm norm, Tensor input)
    {
        bool inputStatistics = norm.training || !norm.track_running_stats;
        return inputStatistics
            ? F.instance_norm(input, eps: norm.eps)
            : F.instance_norm(input, norm.running_mean, norm.running_var, use_input_stats: false, eps: norm.eps);
    }

    /// <summary>
    /// BatchNorm1d/2d/3d in eval mode with running statistics: <c>(x - running_mean) / sqrt(running_var + eps)</c>
    /// per channel, a fixed map of each sample alone. (In training mode, or without running statistics, BatchNorm
    /// normalises with the batch's statistics and the validator refuses it.)
    /// </summary>
    public static Tensor Batch(BatchNorm norm, Tensor input) =>
        F.batch_norm(input, norm.running_mean, norm.running_var, training: false, eps: norm.eps);
}
