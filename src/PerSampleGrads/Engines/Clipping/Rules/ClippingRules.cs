using TorchSharp.Modules;
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
        [typeof(Linear)] = new(LinearNorm.Compute, LinearRule.Compute),
        [typeof(Conv1d)] = new(ConvolutionNorm.Compute, ConvolutionRule.Compute),
        [typeof(Conv2d)] = new(ConvolutionNorm.Compute, ConvolutionRule.Compute),
        [typeof(GroupNorm)] = new(MaterialisedNorm.Of(GroupNormRule.Compute), GroupNormRule.Compute),
        [typeof(LayerNorm)] = new(MaterialisedNorm.Of(LayerNormRule.Compute), LayerNormRule.Compute),
        [typeof(InstanceNorm1d)] = new(MaterialisedNorm.Of(InstanceNormRule.Compute), InstanceNormRule.Compute),
        [typeof(InstanceNorm2d)] = new(MaterialisedNorm.Of(InstanceNormRule.Compute), InstanceNormRule.Compute),
        [typeof(Embedding)] = new(EmbeddingNorm.Compute, EmbeddingRule.Compute),
    };
}
