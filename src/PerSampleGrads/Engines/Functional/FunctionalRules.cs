using TorchSharp.Modules;
using PerSampleGrads.Engines.Functional.Layers;

namespace PerSampleGrads.Engines.Functional;

/// <summary>
/// The functional engine's table, layer type to batched forward with per-sample parameters. Layers without
/// trainable parameters are not in it: they run unchanged.
/// </summary>
public static class FunctionalRules
{
    /// <summary>Every layer type the functional engine supports.</summary>
    public static IReadOnlyDictionary<Type, BatchedForward> Default { get; } = new Dictionary<Type, BatchedForward>
    {
        [typeof(Linear)] = LinearForward.Forward,
        [typeof(Conv1d)] = ConvolutionForward.Forward,
        [typeof(Conv2d)] = ConvolutionForward.Forward,
        [typeof(Conv3d)] = Conv3dForward.Forward,
        [typeof(ConvTranspose1d)] = ConvTransposeForward.Forward,
        [typeof(ConvTranspose2d)] = ConvTransposeForward.Forward,
        [typeof(ConvTranspose3d)] = ConvTransposeForward.Forward,
        [typeof(GroupNorm)] = NormalizationForward.GroupNorm,
        [typeof(LayerNorm)] = NormalizationForward.LayerNorm,
        [typeof(InstanceNorm1d)] = NormalizationForward.InstanceNorm,
        [typeof(InstanceNorm2d)] = NormalizationForward.InstanceNorm,
        [typeof(InstanceNorm3d)] = NormalizationForward.InstanceNorm,
        [typeof(BatchNorm1d)] = BatchNormForward.Forward,
        [typeof(BatchNorm2d)] = BatchNormForward.Forward,
        [typeof(BatchNorm3d)] = BatchNormForward.Forward,
        [typeof(PReLU)] = PReLUForward.Forward,
        [typeof(Embedding)] = EmbeddingForward.Forward,
        [typeof(EmbeddingBag)] = EmbeddingBagForward.Forward,
        [typeof(LSTM)] = RecurrentForward.Forward,
        [typeof(GRU)] = RecurrentForward.Forward,
        [typeof(RNN)] = RecurrentForward.Forward,
        [typeof(LSTMCell)] = RecurrentForward.Forward,
        [typeof(GRUCell)] = RecurrentForward.Forward,
        [typeof(RNNCell)] = RecurrentForward.Forward,
        [typeof(MultiheadAttention)] = MultiheadAttentionForward.Forward,
        [typeof(TransformerEncoderLayer)] = TransformerLayerForward.Encoder,
        [typeof(TransformerDecoderLayer)] = TransformerLayerForward.Decoder,
    };
}
