using TorchSharp.Modules;
using PerSampleGrads.Maths;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace PerSampleGrads.Engines.Functional.Layers;

/// <summary>
/// GroupNorm, LayerNorm and InstanceNorm with per-sample affine parameters: normalise without affine as the module
/// does, then scale and shift each sample by its own copy.
/// </summary>
public static class NormalizationForward
{
    /// <summary>GroupNorm: weight and bias <c>[k, C]</c> broadcast over the spatial dimensions.</summary>
    public static Tensor GroupNorm(FunctionalCall call)
    {
        var norm = (GroupNorm)call.Layer;
        return PerChannelAffine(F.group_norm(call.Input, norm.num_groups, eps: norm.eps), call.Parameters);
    }

    /// <summary>InstanceNorm1d/2d/3d with affine, statistics as the module's mode dictates.</summary>
    public static Tensor InstanceNorm(FunctionalCall call) =>
        PerChannelAffine(Normalized.Instance((InstanceNorm)call.Layer, call.Input), call.Parameters);

    /// <summary>LayerNorm: weight and bias <c>[k, ...D]</c> broadcast over the positions between batch and D.</summary>
    public static Tensor LayerNorm(FunctionalCall call)
    {
        var norm = (LayerNorm)call.Layer;
        var y = F.layer_norm(call.Input, norm.normalized_shape, eps: norm.eps);
        long k = call.Input.shape[0];
        long[] shape = [k, .. Enumerable.Repeat(1L, (int)call.Input.dim() - 1 - norm.normalized_shape.Length),
            .. norm.normalized_shape];
        if (call.Parameters["weight"] is { } weight) y = y * weight.reshape(shape);
        if (call.Parameters["bias"] is { } bias) y = y + bias.reshape(shape);
        return y;
    }

    /// <summary>Scales and shifts <c>[k, C, ...]</c> by per-sample <c>[k, C]</c> weight and bias, when
    /// present.</summary>
    internal static Tensor PerChannelAffine(Tensor normalized, SampleParameters parameters)
    {
        long[] shape = [normalized.shape[0], normalized.shape[1], .. Enumerable.Repeat(1L, (int)normalized.dim() - 2)];
        if (parameters["weight"] is { } weight) normalized = normalized * weight.reshape(shape);
        if (parameters["bias"] is { } bias) normalized = normalized + bias.reshape(shape);
        return normalized;
    }
}
