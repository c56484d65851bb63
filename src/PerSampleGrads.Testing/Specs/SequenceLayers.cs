using TorchSharp;
using TorchSharp.Modules;
using PerSampleGrads.Cases;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace PerSampleGrads.Testing.Specs;

/// <summary>
/// A recurrent layer over tokens <c>[T, D]</c>, giving <c>[T, H]</c> (<c>[T, 2H]</c> bidirectional): LSTM, GRU or RNN
/// (tanh or ReLU) with any number of layers, batch-first or handed <c>[T, N, D]</c>, with or without biases; or the
/// <c>*Cell</c> version, called once per step from a zero state.
/// </summary>
public sealed record RecurrentSpec(RecurrentCellKind Kind, long Hidden, long Layers = 1, bool Bidirectional = false,
    bool BatchFirst = true, bool Bias = true, bool Cell = false) : LayerSpec
{
    /// <inheritdoc/>
    public override SampleShape? Apply(SampleShape input) =>
        input.Kind == ShapeKind.Tokens && Hidden >= 1 && Layers >= 1 && (!Cell || (Layers == 1 && !Bidirectional))
            ? input.With(input.Dims[0], Hidden * (Bidirectional ? 2 : 1))
            : null;

    /// <inheritdoc/>
    public override Module<Tensor, Tensor> Build(SampleShape input) => new RecurrentBlock(this, input.Channels);

    private string Layer => (Kind switch
    {
        RecurrentCellKind.Lstm => "lstm",
        RecurrentCellKind.Gru => "gru",
        _ => "rnn",
    }) + (Cell ? "cell" : "");

    /// <inheritdoc/>
    public override string Describe(SampleShape input)
    {
        var options = new List<string> { $"{input.Channels}->{Hidden}" };
        if (Kind == RecurrentCellKind.RnnRelu) options.Add("relu");
        if (Layers > 1) options.Add($"layers{Layers}");
        if (Bidirectional) options.Add("bidirectional");
        if (!BatchFirst && !Cell) options.Add("seqfirst");
        if (!Bias) options.Add("nobias");
        return $"{Layer.ToUpperInvariant()}({string.Join(",", options)})";
    }

    /// <inheritdoc/>
    public override IEnumerable<LayerSpec> Simpler()
    {
        if (Layers > 1) yield return this with { Layers = 1 };
        if (Bidirectional) yield return this with { Bidirectional = false };
        if (!BatchFirst) yield return this with { BatchFirst = true };
        if (!Bias) yield return this with { Bias = true };
        if (Hidden > 1) yield return this with { Hidden = 1 };
    }

    /// <inheritdoc/>
    public override IEnumerable<string> Exercises(SampleShape input)
    {
        yield return Layer;
        if (Kind == RecurrentCellKind.RnnRelu) yield return $"{Layer}: relu";
        if (Layers > 1) yield return $"{Layer}: several layers";
        if (Bidirectional) yield return $"{Layer}: bidirectional";
        if (!BatchFirst && !Cell) yield return $"{Layer}: sequence-first";
        if (!Bias) yield return $"{Layer}: no bias";
    }
}

/// <summary>The module of a <see cref="RecurrentSpec"/>: <c>[N, T, D]</c> in, every step's output
/// <c>[N, T, H']</c> out.</summary>
public sealed class RecurrentBlock : Module<Tensor, Tensor>
{
    private readonly RecurrentSpec _spec;
    private readonly nn.Module _recurrent;

    /// <summary>Builds the layer for <paramref name="features"/> input features.</summary>
    public RecurrentBlock(RecurrentSpec spec, long features) : base(nameof(RecurrentBlock))
    {
        _spec = spec;
        var nonlinearity = spec.Kind == RecurrentCellKind.RnnRelu ? NonLinearities.ReLU : NonLinearities.Tanh;
        _recurrent = (spec.Kind, spec.Cell) switch
        {
            (RecurrentCellKind.Lstm, false) => LSTM(features, spec.Hidden, spec.Layers, spec.Bias, spec.BatchFirst,
                bidirectional: spec.Bidirectional),
            (RecurrentCellKind.Gru, false) => GRU(features, spec.Hidden, spec.Layers, spec.Bias, spec.BatchFirst,
                bidirectional: spec.Bidirectional),
            (_, false) => RNN(features, spec.Hidden, spec.Layers, nonlinearity, spec.Bias, spec.BatchFirst,
                bidirectional: spec.Bidirectional),
            (RecurrentCellKind.Lstm, true) => LSTMCell(features, spec.Hidden, spec.Bias),
            (RecurrentCellKind.Gru, true) => GRUCell(features, spec.Hidden, spec.Bias),
            _ => RNNCell(features, spec.Hidden, nonlinearity, spec.Bias),
        };
        register_module("recurrent", _recurrent);
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor input)
    {
        if (_spec.Cell) return Unroll(input);
        var sequence = _spec.BatchFirst ? input : input.transpose(0, 1);
        var output = _recurrent switch
        {
            LSTM lstm => lstm.call(sequence).Item1,
            GRU gru => gru.call(sequence).Item1,
            _ => ((RNN)_recurrent).call(sequence).Item1,
        };
        return _spec.BatchFirst ? output : output.transpose(0, 1);
    }

    private Tensor Unroll(Tensor input)
    {
        var steps = new List<Tensor>();
        var h = zeros(input.shape[0], _spec.Hidden, input.dtype, input.device);
        var c = zeros_like(h);
        for (long t = 0; t < input.shape[1]; t++)
        {
            var step = input.select(1, t);
            switch (_recurrent)
            {
                case LSTMCell lstm:
                    (h, c) = lstm.call(step, (h, c));
                    break;
                case GRUCell gru:
                    h = gru.call(step, h);
                    break;
                default:
                    h = ((RNNCell)_recurrent).call(step, h);
                    break;
            }
            steps.Add(h);
        }
        return stack(steps, 1);
    }
}

/// <summary>
/// MultiheadAttention as self-attention over tokens <c>[T, E]</c> (handed sequence-first), E divisible by the
/// heads: with or without biases, <c>add_bias_kv</c>, <c>add_zero_attn</c>, an additive causal mask.
/// </summary>
public sealed record AttentionSpec(long Heads, bool Bias = true, bool BiasKeyValue = false, bool ZeroAttention = false,
    bool Causal = false) : LayerSpec
{
    /// <inheritdoc/>
    public override SampleShape? Apply(SampleShape input) =>
        input.Kind == ShapeKind.Tokens && Heads >= 1 && input.Channels % Heads == 0 ? input : null;

    /// <inheritdoc/>
    public override Module<Tensor, Tensor> Build(SampleShape input) => new AttentionBlock(this, input.Channels);

    /// <inheritdoc/>
    public override string Describe(SampleShape input) => $"MultiheadAttention({input.Channels},h{Heads}"
        + (Bias ? "" : ",nobias") + (BiasKeyValue ? ",biaskv" : "") + (ZeroAttention ? ",zeroattn" : "")
        + (Causal ? ",causal" : "") + ")";

    /// <inheritdoc/>
    public override IEnumerable<LayerSpec> Simpler()
    {
        if (Heads > 1) yield return this with { Heads = 1 };
        if (!Bias) yield return this with { Bias = true };
        if (BiasKeyValue) yield return this with { BiasKeyValue = false };
        if (ZeroAttention) yield return this with { ZeroAttention = false };
        if (Causal) yield return this with { Causal = false };
    }

    /// <inheritdoc/>
    public override IEnumerable<string> Exercises(SampleShape input)
    {
        yield return "multiheadattention";
        if (Heads > 1) yield return "multiheadattention: several heads";
        if (!Bias) yield return "multiheadattention: no bias";
        if (BiasKeyValue) yield return "multiheadattention: add_bias_kv";
        if (ZeroAttention) yield return "multiheadattention: add_zero_attn";
        if (Causal) yield return "multiheadattention: attention mask";
    }
}

/// <summary>The module of an <see cref="AttentionSpec"/>: <c>[N, T, E]</c> in and out.</summary>
public sealed class AttentionBlock : Module<Tensor, Tensor>
{
    private readonly AttentionSpec _spec;
    private readonly MultiheadAttention _attention;

    /// <summary>Builds the layer for width <paramref name="width"/>.</summary>
    public AttentionBlock(AttentionSpec spec, long width) : base(nameof(AttentionBlock))
    {
        _spec = spec;
        _attention = MultiheadAttention(width, spec.Heads, 0.0, spec.Bias, spec.BiasKeyValue, spec.ZeroAttention);
        register_module("attention", _attention);
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor input)
    {
        var x = input.transpose(0, 1);
        long t = x.shape[0];
        var mask = _spec.Causal
            ? full(t, t, double.NegativeInfinity, dtype: x.dtype, device: x.device).triu(1) : null;
        return _attention.call(x, x, x, null, false, mask).Item1.transpose(0, 1);
    }
}

/// <summary>
/// TorchSharp's native TransformerEncoderLayer, or TransformerDecoderLayer attending to its own input, over tokens
/// <c>[T, E]</c> (handed sequence-first), E divisible by the heads and at least
/// <see cref="LayerSpec.MinimumNormalizedValues"/> (its LayerNorms); dropout 0.
/// </summary>
public sealed record TransformerLayerSpec(bool Decoder, long Heads, long FeedForward, bool Gelu = false) : LayerSpec
{
    /// <inheritdoc/>
    public override SampleShape? Apply(SampleShape input) =>
        input.Kind == ShapeKind.Tokens && Heads >= 1 && FeedForward >= 1 && input.Channels % Heads == 0
        && input.Channels >= MinimumNormalizedValues ? input : null;

    /// <inheritdoc/>
    public override Module<Tensor, Tensor> Build(SampleShape input) => new TransformerBlock(this, input.Channels);

    private string Layer => Decoder ? "transformerdecoderlayer" : "transformerencoderlayer";

    /// <inheritdoc/>
    public override string Describe(SampleShape input) =>
        $"{(Decoder ? "TransformerDecoderLayer" : "TransformerEncoderLayer")}({input.Channels},h{Heads}," +
        $"ff{FeedForward}{(Gelu ? ",gelu" : "")})";

    /// <inheritdoc/>
    public override IEnumerable<LayerSpec> Simpler()
    {
        if (Decoder) yield return this with { Decoder = false };
        if (Heads > 1) yield return this with { Heads = 1 };
        if (Gelu) yield return this with { Gelu = false };
        if (FeedForward > 1) yield return this with { FeedForward = 1 };
    }

    /// <inheritdoc/>
    public override IEnumerable<string> Exercises(SampleShape input)
    {
        yield return Layer;
        if (Heads > 1) yield return $"{Layer}: several heads";
        yield return Gelu ? $"{Layer}: gelu" : $"{Layer}: relu";
    }
}

/// <summary>The module of a <see cref="TransformerLayerSpec"/>: <c>[N, T, E]</c> in and out.</summary>
public sealed class TransformerBlock : Module<Tensor, Tensor>
{
    private readonly TransformerEncoderLayer? _encoder;
    private readonly TransformerDecoderLayer? _decoder;

    /// <summary>Builds the layer for width <paramref name="width"/>.</summary>
    public TransformerBlock(TransformerLayerSpec spec, long width) : base(nameof(TransformerBlock))
    {
        var activation = spec.Gelu ? Activations.GELU : Activations.ReLU;
        if (spec.Decoder)
        {
            _decoder = TransformerDecoderLayer(width, spec.Heads, spec.FeedForward, 0.0, activation);
            register_module("decoder", _decoder);
        }
        else
        {
            _encoder = TransformerEncoderLayer(width, spec.Heads, spec.FeedForward, 0.0, activation);
            register_module("encoder", _encoder);
        }
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor input)
    {
        var x = input.transpose(0, 1);
        return (_encoder is not null ? _encoder.call(x) : _decoder!.call(x, x)).transpose(0, 1);
    }
}

/// <summary>
/// EmbeddingBag over the token ids of one sample as one bag (2-d ids <c>[N, T]</c>), giving features <c>[D]</c>: sum
/// or mean mode, per-sample weights (sum mode), id 0 as padding.
/// </summary>
public sealed record EmbeddingBagSpec(long Width, bool Mean = false, bool Weighted = false, bool Padding = false)
    : LayerSpec
{
    /// <inheritdoc/>
    public override SampleShape? Apply(SampleShape input) =>
        input.Kind == ShapeKind.TokenIds && Width >= 1 && !(Mean && Weighted) ? SampleShape.Features(Width) : null;

    /// <inheritdoc/>
    public override Module<Tensor, Tensor> Build(SampleShape input) => new BagBlock(this, input.Vocabulary);

    /// <inheritdoc/>
    public override string Describe(SampleShape input) => $"EmbeddingBag({input.Vocabulary},{Width}"
        + (Mean ? ",mean" : ",sum") + (Weighted ? ",weighted" : "") + (Padding ? ",pad0" : "") + ")";

    /// <inheritdoc/>
    public override IEnumerable<LayerSpec> Simpler()
    {
        if (Weighted) yield return this with { Weighted = false };
        if (Mean) yield return this with { Mean = false };
        if (Padding) yield return this with { Padding = false };
        if (Width > 1) yield return this with { Width = 1 };
    }

    /// <inheritdoc/>
    public override IEnumerable<string> Exercises(SampleShape input)
    {
        yield return "embeddingbag";
        yield return Mean ? "embeddingbag: mean mode" : "embeddingbag: sum mode";
        if (Weighted) yield return "embeddingbag: per-sample weights";
        if (Padding) yield return "embeddingbag: padding_idx";
    }
}

/// <summary>The module of an <see cref="EmbeddingBagSpec"/>: ids <c>[N, T]</c> in, <c>[N, D]</c> out; the weights,
/// when on, follow from the ids (<c>0.5 + (id mod 3) / 2</c>).</summary>
public sealed class BagBlock : Module<Tensor, Tensor>
{
    private readonly EmbeddingBag _bag;
    private readonly bool _weighted;

    /// <summary>Builds the layer for ids below <paramref name="vocabulary"/>.</summary>
    public BagBlock(EmbeddingBagSpec spec, long vocabulary) : base(nameof(BagBlock))
    {
        _bag = EmbeddingBag(vocabulary, spec.Width, mode: spec.Mean ? EmbeddingBagMode.Mean : EmbeddingBagMode.Sum,
            padding_index: spec.Padding ? 0 : -1);
        _weighted = spec.Weighted;
        register_module("bag", _bag);
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor ids) =>
        _bag.call(ids, null, _weighted ? ids.remainder(3).to(_bag.weight!.dtype).div(2).add(0.5) : null);
}
