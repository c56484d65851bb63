using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace PerSampleGrads.Testing.Specs;

/// <summary>Builders shared by the norm layer specs.</summary>
public static class NormLayers
{
    /// <summary>BatchNorm1d for features and signals, 2d for images, 3d for volumes.</summary>
    public static BatchNorm BatchNorm(SampleShape input, bool affine) => input.Spatial.Length switch
    {
        0 or 1 => BatchNorm1d(input.Channels, affine: affine),
        2 => BatchNorm2d(input.Channels, affine: affine),
        _ => BatchNorm3d(input.Channels, affine: affine),
    };

    /// <summary>
    /// Running statistics away from PyTorch's initial 0 and 1 (mean 0.3 z, variance 0.5 + u), drawn from the global
    /// generator (seeded by the architecture's build): a rule that ignores or swaps them then shows.
    /// </summary>
    public static void RandomizeRunningStatistics(NormBase norm)
    {
        using var _ = no_grad();
        norm.running_mean?.copy_(randn_like(norm.running_mean) * 0.3);
        norm.running_var?.copy_(rand_like(norm.running_var) + 0.5);
    }
}

/// <summary>
/// BatchNorm in eval mode over features <c>[F]</c> or the channels of a signal, image or volume: a fixed affine map
/// per channel from random running statistics, with or without its own affine parameters.
/// </summary>
public sealed record BatchNormEvalSpec(bool Affine = true) : LayerSpec
{
    /// <inheritdoc/>
    public override SampleShape? Apply(SampleShape input) =>
        input.Kind == ShapeKind.Features || input.IsSpatial ? input : null;

    /// <inheritdoc/>
    public override Module<Tensor, Tensor> Build(SampleShape input)
    {
        var norm = NormLayers.BatchNorm(input, Affine);
        NormLayers.RandomizeRunningStatistics(norm);
        return norm;
    }

    /// <inheritdoc/>
    public override string Describe(SampleShape input) =>
        $"BatchNorm{Math.Max(1, input.Spatial.Length)}d({input.Channels},eval{(Affine ? "" : ",noaffine")})";

    /// <inheritdoc/>
    public override IEnumerable<LayerSpec> Simpler()
    {
        if (!Affine) yield return this with { Affine = true };
    }

    /// <inheritdoc/>
    public override IEnumerable<string> Exercises(SampleShape input)
    {
        string layer = $"batchnorm{Math.Max(1, input.Spatial.Length)}d";
        yield return layer;
        yield return $"{layer}: eval mode";
        if (input.Kind == ShapeKind.Features) yield return $"{layer}: features";
        if (!Affine) yield return $"{layer}: no affine";
    }
}

/// <summary>
/// InstanceNorm1d/2d/3d over a signal, image or volume whose channels each hold at least
/// <see cref="LayerSpec.MinimumNormalizedValues"/> values: affine or not, running statistics tracked or not, in
/// training mode (instance statistics) or eval mode (the running statistics when tracked).
/// </summary>
public sealed record InstanceNormSpec(bool Affine, bool TrackRunningStats, bool Training) : LayerSpec
{
    /// <inheritdoc/>
    public override SampleShape? Apply(SampleShape input) =>
        input.IsSpatial && input.Elements / input.Channels >= MinimumNormalizedValues ? input : null;

    /// <inheritdoc/>
    public override Module<Tensor, Tensor> Build(SampleShape input)
    {
        long c = input.Channels;
        InstanceNorm norm = input.Spatial.Length switch
        {
            1 => InstanceNorm1d(c, affine: Affine, track_running_stats: TrackRunningStats),
            2 => InstanceNorm2d(c, affine: Affine, track_running_stats: TrackRunningStats),
            _ => InstanceNorm3d(c, affine: Affine, track_running_stats: TrackRunningStats),
        };
        if (TrackRunningStats) NormLayers.RandomizeRunningStatistics(norm);
        return norm;
    }

    /// <inheritdoc/>
    public override bool StaysInTraining => Training;

    /// <inheritdoc/>
    public override string Describe(SampleShape input) =>
        $"InstanceNorm{input.Spatial.Length}d({input.Channels}{(Affine ? ",affine" : "")}" +
        $"{(TrackRunningStats ? ",tracked" : "")},{(Training ? "train" : "eval")})";

    /// <inheritdoc/>
    public override IEnumerable<LayerSpec> Simpler()
    {
        if (TrackRunningStats) yield return this with { TrackRunningStats = false };
        if (Training) yield return this with { Training = false };
    }

    /// <inheritdoc/>
    public override IEnumerable<string> Exercises(SampleShape input)
    {
        string layer = $"instancenorm{input.Spatial.Length}d";
        yield return layer;
        yield return $"{layer}: {(Affine ? "affine" : "no affine")}";
        yield return $"{layer}: {(TrackRunningStats ? "tracked" : "untracked")} statistics in " +
            $"{(Training ? "training" : "eval")} mode";
    }
}

/// <summary>PReLU with one slope or one per channel (features <c>[F]</c> or a spatial sample's channels).</summary>
public sealed record PReLUSpec(bool PerChannel) : LayerSpec
{
    /// <inheritdoc/>
    public override SampleShape? Apply(SampleShape input) =>
        input.Kind == ShapeKind.Features || input.IsSpatial ? input : null;

    /// <inheritdoc/>
    public override Module<Tensor, Tensor> Build(SampleShape input)
    {
        var prelu = PReLU(PerChannel ? input.Channels : 1);
        // Slopes around 0.25 but not all equal, so that a rule mixing up channels shows.
        using (no_grad()) prelu.weight!.copy_(rand_like(prelu.weight!) * 0.5);
        return prelu;
    }

    /// <inheritdoc/>
    public override string Describe(SampleShape input) => $"PReLU({(PerChannel ? input.Channels : 1)})";

    /// <inheritdoc/>
    public override IEnumerable<LayerSpec> Simpler()
    {
        if (PerChannel) yield return this with { PerChannel = false };
    }

    /// <inheritdoc/>
    public override IEnumerable<string> Exercises(SampleShape input)
    {
        yield return "prelu";
        yield return PerChannel ? "prelu: one slope per channel" : "prelu: one slope";
    }
}
