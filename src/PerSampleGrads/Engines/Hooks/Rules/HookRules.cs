using TorchSharp.Modules;

namespace PerSampleGrads.Engines.Hooks.Rules;

/// <summary>
/// The hook engine's table, layer type to rule, read top to bottom. An engine receives a table; this is the default.
/// To support another layer, pass a copy with your entry added (<c>new Dictionary&lt;Type,
/// PerSampleRule&gt;(HookRules.Default) { [typeof(MyLayer)] = MyRule.Compute }</c>).
/// </summary>
public static class HookRules
{
    /// <summary>Every layer type the hook engine supports.</summary>
    public static IReadOnlyDictionary<Type, PerSampleRule> Default { get; } = new Dictionary<Type, PerSampleRule>
    {
        [typeof(Linear)] = LinearRule.Compute,
        [typeof(Conv1d)] = ConvolutionRule.Compute,
        [typeof(Conv2d)] = ConvolutionRule.Compute,
        [typeof(Conv3d)] = Conv3dRule.Compute,
        [typeof(ConvTranspose1d)] = ConvTransposeRule.Compute,
        [typeof(ConvTranspose2d)] = ConvTransposeRule.Compute,
        [typeof(ConvTranspose3d)] = ConvTransposeRule.Compute,
        [typeof(GroupNorm)] = GroupNormRule.Compute,
        [typeof(LayerNorm)] = LayerNormRule.Compute,
        [typeof(InstanceNorm1d)] = InstanceNormRule.Compute,
        [typeof(InstanceNorm2d)] = InstanceNormRule.Compute,
        [typeof(InstanceNorm3d)] = InstanceNormRule.Compute,
        [typeof(BatchNorm1d)] = BatchNormRule.Compute,
        [typeof(BatchNorm2d)] = BatchNormRule.Compute,
        [typeof(BatchNorm3d)] = BatchNormRule.Compute,
        [typeof(PReLU)] = PReLURule.Compute,
        [typeof(Embedding)] = EmbeddingRule.Compute,
        [typeof(EmbeddingBag)] = EmbeddingBagRule.Compute,
        [typeof(LSTM)] = RecurrentRule.Compute,
        [typeof(GRU)] = RecurrentRule.Compute,
        [typeof(RNN)] = RecurrentRule.Compute,
        [typeof(LSTMCell)] = RecurrentRule.Compute,
        [typeof(GRUCell)] = RecurrentRule.Compute,
        [typeof(RNNCell)] = RecurrentRule.Compute,
        [typeof(MultiheadAttention)] = MultiheadAttentionRule.Compute,
        [typeof(TransformerEncoderLayer)] = TransformerLayerRule.Compute,
        [typeof(TransformerDecoderLayer)] = TransformerLayerRule.Compute,
    };

    /// <summary>
    /// Layers whose forward the hook engine computes itself (<see cref="RecordingForward"/>), so that the model's one
    /// backward gives their rule what it would otherwise recompute: the recurrent layers' gradients at every step's
    /// gates, attention's at its projections. The module's own forward then runs on one sample where every tensor
    /// argument has its samples located (its outputs are replaced).
    /// </summary>
    public static IReadOnlyDictionary<Type, RecordingForward> RecordingForwards { get; } =
        new Dictionary<Type, RecordingForward>
        {
            [typeof(LSTM)] = RecurrentRule.Forward,
            [typeof(GRU)] = RecurrentRule.Forward,
            [typeof(RNN)] = RecurrentRule.Forward,
            [typeof(LSTMCell)] = RecurrentRule.Forward,
            [typeof(GRUCell)] = RecurrentRule.Forward,
            [typeof(RNNCell)] = RecurrentRule.Forward,
            [typeof(MultiheadAttention)] = MultiheadAttentionRule.Forward,
        };
}
