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
        [typeof(GroupNorm)] = Small(GroupNormRule.Compute),
        [typeof(LayerNorm)] = Small(LayerNormRule.Compute),
        [typeof(InstanceNorm1d)] = Small(InstanceNormRule.Compute),
        [typeof(InstanceNorm2d)] = Small(InstanceNormRule.Compute),
        [typeof(Embedding)] = new(EmbeddingNorm.Compute, EmbeddingRule.Compute, BatchSums.Embedding),
    };

    // A layer with small per-sample gradients: materialised for its norms and for its clipped sum.
    private static ClippingRule Small(PerSampleRule rule) => new(MaterialisedNorm.Of(rule), rule,
        BatchSums.Materialised(rule));
}
