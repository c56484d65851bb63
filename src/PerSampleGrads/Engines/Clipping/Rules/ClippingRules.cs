using TorchSharp.Modules;
using PerSampleGrads.Engines.Hooks;
using PerSampleGrads.Engines.Hooks.Rules;

namespace PerSampleGrads.Engines.Clipping.Rules;

/// <summary>
/// The clipping method's table, layer type to norm rule (and the per-sample rule used for shared layers), read top to
/// bottom. A method receives a table; this is the default. Every layer type the engines support is in it.
/// </summary>
public static class ClippingRules
{
    /// <summary>Every layer type the clipping method supports.</summary>
    public static IReadOnlyDictionary<Type, ClippingRule> Default { get; } = new Dictionary<Type, ClippingRule>
    {
        [typeof(Linear)] = new(LinearNorm.Compute, LinearRule.Compute, BatchSums.Linear),
        [typeof(Conv1d)] = new(ConvolutionNorm.Compute, ConvolutionRule.Compute, BatchSums.Convolution),
        [typeof(Conv2d)] = new(ConvolutionNorm.Compute, ConvolutionRule.Compute, BatchSums.Convolution),
        [typeof(GroupNorm)] = Materialised(GroupNormRule.Compute),
        [typeof(LayerNorm)] = Materialised(LayerNormRule.Compute),
        [typeof(InstanceNorm1d)] = Materialised(InstanceNormRule.Compute),
        [typeof(InstanceNorm2d)] = Materialised(InstanceNormRule.Compute),
        [typeof(Embedding)] = new(EmbeddingNorm.Compute, EmbeddingRule.Compute, BatchSums.Embedding),
        // No ghost norm yet: these layers' gradients are materialised one layer at a time (mixed ghost clipping).
        [typeof(Conv3d)] = Materialised(Conv3dRule.Compute),
        [typeof(ConvTranspose1d)] = Materialised(ConvTransposeRule.Compute),
        [typeof(ConvTranspose2d)] = Materialised(ConvTransposeRule.Compute),
        [typeof(ConvTranspose3d)] = Materialised(ConvTransposeRule.Compute),
        [typeof(InstanceNorm3d)] = Materialised(InstanceNormRule.Compute),
        [typeof(BatchNorm1d)] = Materialised(BatchNormRule.Compute),
        [typeof(BatchNorm2d)] = Materialised(BatchNormRule.Compute),
        [typeof(BatchNorm3d)] = Materialised(BatchNormRule.Compute),
        [typeof(PReLU)] = Materialised(PReLURule.Compute),
    };

    /// <summary>A rule that materialises the layer's per-sample gradients (by <paramref name="rule"/>) for its norms
    /// and for its clipped sum.</summary>
    public static ClippingRule Materialised(PerSampleRule rule) => new(MaterialisedNorm.Of(rule), rule,
        BatchSums.Materialised(rule));
}
