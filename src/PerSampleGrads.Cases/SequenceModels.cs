using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace PerSampleGrads.Cases;

/// <summary>How <see cref="BagClassifier"/> hands its ids to the EmbeddingBag.</summary>
public enum BagInput
{
    /// <summary>2-d ids <c>[N, bag]</c>: one bag per row.</summary>
    Rows,
    /// <summary>1-d ids <c>[N*bag]</c> and offsets <c>[N]</c>: one bag per sample.</summary>
    FlatWithOffsets,
    /// <summary>1-d ids <c>[N*bag]</c> and offsets <c>[N + 1]</c> ending with the id count, the layer created with
    /// <c>include_last_offset</c>: one bag per sample.</summary>
    FlatWithLastOffset,
}

/// <summary>
/// Token ids <c>[N, bag]</c> (Int64, 0 = padding) -> EmbeddingBag -> Linear head. With <c>weighted</c>, each id gets
/// the per-sample weight <c>0.5 + (id mod 3) / 2</c> (sum mode only, as PyTorch requires).
/// </summary>
public sealed class BagClassifier : Module<Tensor, Tensor>
{
    private readonly EmbeddingBag bag;
    private readonly Linear head;
    private readonly BagInput _input;
    private readonly bool _weighted;

    /// <summary>Creates it with freshly initialised parameters.</summary>
    public BagClassifier(long vocabulary, long width, EmbeddingBagMode mode, BagInput input, bool weighted,
        long classes, long paddingIndex = -1) : base(nameof(BagClassifier))
    {
        bag = EmbeddingBag(vocabulary, width, mode: mode, include_last_offset: input == BagInput.FlatWithLastOffset,
            padding_index: paddingIndex);
        head = Linear(width, classes);
        _input = input;
        _weighted = weighted;
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor ids)
    {
        using var scope = NewDisposeScope();
        var weights = _weighted ? ids.remainder(3).to(bag.weight!.dtype).div(2).add(0.5) : null;
        long n = ids.shape[0], width = ids.shape[1];
        var pooled = _input == BagInput.Rows
            ? bag.call(ids, null, weights)
            : bag.call(ids.reshape(-1), arange(_input == BagInput.FlatWithLastOffset ? n + 1 : n, device: ids.device)
                .mul(width), weights?.reshape(-1));
        return scope.MoveToOuter(head.call(functional.tanh(pooled)));
    }
}

/// <summary>Which options of MultiheadAttention an <see cref="AttentionClassifier"/> exercises.</summary>
/// <param name="Heads">Number of heads.</param>
/// <param name="Bias">The projections' biases.</param>
/// <param name="KeyPadding">Pass <c>ids == 0</c> (never the first position) as <c>key_padding_mask</c>.</param>
/// <param name="Causal">Pass a causal <c>[T, T]</c> additive <c>attn_mask</c> (-inf above the diagonal).</param>
/// <param name="UseWeights">Ask for the attention weights and feed them to the head.</param>
/// <param name="CrossKeyValue">Keys and values from a second embedding of the ids (query differs from them).</param>
/// <param name="BiasKeyValue"><c>add_bias_kv</c>: learned <c>bias_k</c>, <c>bias_v</c> rows appended to keys and
/// values.</param>
/// <param name="ZeroAttention"><c>add_zero_attn</c>: a zero key and value appended per head.</param>
/// <param name="KeyValueWidth"><c>kdim = vdim</c> other than the model width (with <paramref name="CrossKeyValue"/>:
/// the second embedding has this width), or null.</param>
/// <param name="DistinctValues">Values <c>tanh(keys)</c> instead of the keys themselves (key and value slots
/// differ).</param>
/// <param name="WeightsOnly">Feed the head the attention weights alone (with <paramref name="UseWeights"/>): the
/// layer's output reaches no loss, so the value and output projections get no gradient at all.</param>
public sealed record AttentionOptions(long Heads = 2, bool Bias = true, bool KeyPadding = false, bool Causal = false,
    bool UseWeights = false, bool CrossKeyValue = false, bool BiasKeyValue = false, bool ZeroAttention = false,
    long? KeyValueWidth = null, bool DistinctValues = false, bool WeightsOnly = false)
{
    /// <inheritdoc/>
    public override string ToString() => $"h{Heads}" + (Bias ? "" : "-nobias") + (KeyPadding ? "-keypad" : "")
        + (Causal ? "-causal" : "") + (UseWeights ? "-weights" : "") + (CrossKeyValue ? "-cross" : "")
        + (BiasKeyValue ? "-biaskv" : "") + (ZeroAttention ? "-zeroattn" : "")
        + (KeyValueWidth is { } w ? $"-kv{w}" : "") + (DistinctValues ? "-values" : "")
        + (WeightsOnly ? "-weightsonly" : "");
}

/// <summary>
/// Token ids <c>[N, T]</c> -> Embedding -> sequence-first <c>[T, N, E]</c> -> MultiheadAttention -> mean over
/// positions (plus the flattened attention weights when asked for) -> Linear head.
/// </summary>
public sealed class AttentionClassifier : Module<Tensor, Tensor>
{
    private readonly Embedding embedding;
    private readonly Embedding? memory;
    private readonly MultiheadAttention attention;
    private readonly Linear head;
    private readonly AttentionOptions _options;

    /// <summary>Creates it with freshly initialised parameters for sequences of <paramref name="length"/>.</summary>
    public AttentionClassifier(long vocabulary, long width, long length, AttentionOptions options, long classes)
        : base(nameof(AttentionClassifier))
    {
        _options = options;
        embedding = Embedding(vocabulary, width);
        memory = options.CrossKeyValue ? Embedding(vocabulary, options.KeyValueWidth ?? width) : null;
        attention = MultiheadAttention(width, options.Heads, 0.0, options.Bias, options.BiasKeyValue,
            options.ZeroAttention, options.KeyValueWidth, options.KeyValueWidth);
        // The weights attend over the keys plus bias_k and the zero key when those are on.
        long keys = length + (options.BiasKeyValue ? 1 : 0) + (options.ZeroAttention ? 1 : 0);
        head = Linear((options.WeightsOnly ? 0 : width) + (options.UseWeights ? length * keys : 0), classes);
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor ids)
    {
        using var scope = NewDisposeScope();
        long n = ids.shape[0], t = ids.shape[1];
        var query = embedding.call(ids).transpose(0, 1);
        var keys = memory is null ? query : memory.call(ids).transpose(0, 1);
        Tensor? padding = null;
        if (_options.KeyPadding)
        {
            padding = ids.eq(0);
            padding.select(1, 0).fill_(false);
        }
        // Additive: libtorch's C++ layer adds even a boolean mask (1 where true), unlike PyTorch's Python layer.
        var causal = _options.Causal
            ? full(t, t, double.NegativeInfinity, dtype: query.dtype, device: ids.device).triu(1) : null;
        var values = _options.DistinctValues ? keys.tanh() : keys;
        var (output, weights) = attention.call(query, keys, values, padding, _options.UseWeights, causal);
        var pooled = _options.WeightsOnly ? weights.reshape(n, -1) : output.mean([0]);
        if (_options.UseWeights && !_options.WeightsOnly) pooled = cat([pooled, weights.reshape(n, -1)], 1);
        return scope.MoveToOuter(head.call(pooled));
    }
}

/// <summary>
/// Token ids <c>[N, T]</c> -> Embedding -> sequence-first <c>[T, N, E]</c> -> TransformerEncoderLayer (or
/// TransformerDecoderLayer attending to a second embedding; when masked, with an additive causal target mask and
/// <c>ids == 0</c> (never position 0) as the memory's key padding mask) -> mean over positions -> Linear head.
/// Dropout 0 unless asked.
/// </summary>
public sealed class TransformerClassifier : Module<Tensor, Tensor>
{
    private readonly Embedding embedding;
    private readonly Embedding? memory;
    private readonly TransformerEncoderLayer? encoder;
    private readonly TransformerDecoderLayer? decoder;
    private readonly Linear head;
    private readonly bool masked;
    private readonly bool everyMask;

    /// <summary>Creates it with freshly initialised parameters; <paramref name="everyMask"/> gives a decoder all four
    /// masks: the causal target mask, a memory mask hiding memory beyond the next position, and both key padding
    /// masks.</summary>
    public TransformerClassifier(long vocabulary, long width, long heads, long feedForward, bool decoderLayer,
        Activations activation, long classes, bool masked = false, double dropout = 0.0, bool everyMask = false)
        : base(nameof(TransformerClassifier))
    {
        this.masked = masked;
        this.everyMask = everyMask;
        embedding = Embedding(vocabulary, width);
        if (decoderLayer)
        {
            memory = Embedding(vocabulary, width);
            decoder = TransformerDecoderLayer(width, heads, feedForward, dropout, activation);
        }
        else encoder = TransformerEncoderLayer(width, heads, feedForward, dropout, activation);
        head = Linear(width, classes);
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor ids)
    {
        using var scope = NewDisposeScope();
        var x = embedding.call(ids).transpose(0, 1);
        long t = ids.shape[1];
        var y = encoder is not null ? encoder.call(x)
            : everyMask ? decoder!.call(x, memory!.call(ids).transpose(0, 1), Causal(t, x, 1), Causal(t, x, 2),
                MemoryPadding(ids), MemoryPadding(ids))
            : masked ? decoder!.call(x, memory!.call(ids).transpose(0, 1), Causal(t, x, 1), null, null,
                MemoryPadding(ids))
            : decoder!.call(x, memory!.call(ids).transpose(0, 1));
        return scope.MoveToOuter(head.call(y.mean([0])));
    }

    private static Tensor Causal(long t, Tensor like, long diagonal) =>
        full(t, t, double.NegativeInfinity, dtype: like.dtype, device: like.device).triu(diagonal);

    private static Tensor MemoryPadding(Tensor ids)
    {
        var padding = ids.eq(0);
        padding.select(1, 0).fill_(false);
        return padding;
    }
}
