using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace PerSampleGrads.Zoo;

/// <summary>
/// A small CNN (5,514 parameters): <c>features</c> = Conv2d(3→16, k3, p1), GroupNorm(4, 16), ReLU, MaxPool2d(2),
/// Conv2d(16→32, k3, p1), GroupNorm(8, 32), ReLU, AdaptiveAvgPool2d(1), Flatten; <c>classifier</c> = Linear(32→10).
/// Inputs <c>[N, 3, 32, 32]</c>. Parameter names match <c>tools/pytorch_reference/zoo.py</c>.
/// </summary>
public sealed class SmallCnn : Module<Tensor, Tensor>
{
    private readonly Sequential _features;
    private readonly Linear _classifier;

    /// <summary>Builds the model with the global generator's initial values.</summary>
    public SmallCnn(long classes = 10) : base(nameof(SmallCnn))
    {
        _features = Sequential(
            Conv2d(3, 16, 3, padding: 1), GroupNorm(4, 16), ReLU(), MaxPool2d(2),
            Conv2d(16, 32, 3, padding: 1), GroupNorm(8, 32), ReLU(), AdaptiveAvgPool2d(1), Flatten());
        _classifier = Linear(32, classes);
        register_module("features", _features);
        register_module("classifier", _classifier);
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor input) => _classifier.call(_features.call(input));
}

/// <summary>
/// A small sequence model over token ids <c>[N, T]</c> (Int64): <c>embedding</c> = Embedding(vocabulary, width,
/// padding_idx 0), <c>norm</c> = LayerNorm(width), <c>mixer</c> = Linear(width→width) applied to every token
/// (3-d input), ReLU, mean over tokens, <c>head</c> = Linear(width→classes).
/// </summary>
public sealed class TokenClassifier : Module<Tensor, Tensor>
{
    private readonly Embedding _embedding;
    private readonly LayerNorm _norm;
    private readonly Linear _mixer;
    private readonly Linear _head;

    /// <summary>Builds the model with the global generator's initial values.</summary>
    public TokenClassifier(long vocabulary = 50, long width = 16, long classes = 5) : base(nameof(TokenClassifier))
    {
        _embedding = Embedding(vocabulary, width, padding_idx: 0);
        _norm = LayerNorm(width);
        _mixer = Linear(width, width);
        _head = Linear(width, classes);
        register_module("embedding", _embedding);
        register_module("norm", _norm);
        register_module("mixer", _mixer);
        register_module("head", _head);
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor tokens)
    {
        using var scope = NewDisposeScope();
        var h = _norm.call(_embedding.call(tokens));
        h = functional.relu(_mixer.call(h));
        return scope.MoveToOuter(_head.call(h.mean([1L])));
    }
}

/// <summary>
/// An LSTM sequence classifier over token ids <c>[N, T]</c> (Int64): <c>embedding</c> = Embedding(vocabulary, width,
/// padding_idx 0), <c>lstm</c> = LSTM(width→hidden, batch-first), <c>head</c> = Linear(hidden→classes) on the last
/// hidden state h_n.
/// </summary>
public sealed class LstmClassifier : Module<Tensor, Tensor>
{
    private readonly Embedding _embedding;
    private readonly LSTM _lstm;
    private readonly Linear _head;

    /// <summary>Builds the model with the global generator's initial values.</summary>
    public LstmClassifier(long vocabulary = 50, long width = 16, long hidden = 32, long classes = 5)
        : base(nameof(LstmClassifier))
    {
        _embedding = Embedding(vocabulary, width, padding_idx: 0);
        _lstm = LSTM(width, hidden, batchFirst: true);
        _head = Linear(hidden, classes);
        register_module("embedding", _embedding);
        register_module("lstm", _lstm);
        register_module("head", _head);
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor tokens)
    {
        using var scope = NewDisposeScope();
        var (_, finalHidden, _) = _lstm.call(_embedding.call(tokens));
        return scope.MoveToOuter(_head.call(finalHidden[-1]));
    }
}

/// <summary>
/// A Transformer encoder classifier: token embedding (padding id 0) plus a learned position embedding called on the
/// positions <c>[T]</c> (shared by every sample), one post-norm encoder block of managed layers (MultiheadAttention
/// with 2 heads on the sequence-first layout, residual, LayerNorm; Linear(16→32), ReLU, Linear(32→16), residual,
/// LayerNorm), the mean over tokens and Linear(16→5). Ids <c>[N, T]</c>, T at most 12. Parameter names match
/// <c>tools/pytorch_reference/zoo.py</c>.
/// </summary>
public sealed class TransformerEncoderClassifier : Module<Tensor, Tensor>
{
    private readonly Embedding tokens;
    private readonly Embedding positions;
    private readonly MultiheadAttention attention;
    private readonly LayerNorm norm1;
    private readonly Linear feedforward1;
    private readonly Linear feedforward2;
    private readonly LayerNorm norm2;
    private readonly Linear head;

    /// <summary>Builds the model with the global generator's initial values.</summary>
    public TransformerEncoderClassifier(long vocabulary = 50, long length = 12, long width = 16, long heads = 2,
        long feedForward = 32, long classes = 5) : base(nameof(TransformerEncoderClassifier))
    {
        tokens = Embedding(vocabulary, width, padding_idx: 0);
        positions = Embedding(length, width);
        attention = MultiheadAttention(width, heads);
        norm1 = LayerNorm(width);
        feedforward1 = Linear(width, feedForward);
        feedforward2 = Linear(feedForward, width);
        norm2 = LayerNorm(width);
        head = Linear(width, classes);
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor ids)
    {
        using var scope = NewDisposeScope();
        var x = tokens.call(ids) + positions.call(arange(ids.shape[1], device: ids.device));
        var sequenceFirst = x.transpose(0, 1);
        var (attended, _) = attention.call(sequenceFirst, sequenceFirst, sequenceFirst, null, false, null);
        var h = norm1.call(x + attended.transpose(0, 1));
        h = norm2.call(h + feedforward2.call(functional.relu(feedforward1.call(h))));
        return scope.MoveToOuter(head.call(h.mean([1])));
    }
}
