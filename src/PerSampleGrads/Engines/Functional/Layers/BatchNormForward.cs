using TorchSharp.Modules;
using PerSampleGrads.Maths;
using static TorchSharp.torch;

namespace PerSampleGrads.Engines.Functional.Layers;

/// <summary>
/// BatchNorm1d/2d/3d in eval mode with running statistics and per-sample affine parameters: the running statistics
/// normalise (<see cref="Normalized.Batch"/>), then each sample is scaled and shifted by its own copy.
/// </summary>
public static class BatchNormForward
{
    /// <summary>The batched forward.</summary>
    public static Tensor Forward(FunctionalCall call) =>
        NormalizationForward.PerChannelAffine(Normalized.Batch((BatchNorm)call.Layer, call.Input), call.Parameters);
}
