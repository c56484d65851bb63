using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace PerSampleGrads.Zoo;

/// <summary>
/// A model of the zoo: how to build it from a seed and how to make a batch for it.
/// </summary>
/// <param name="Name">Command-line name (<c>small-cnn</c>, <c>resnet18-gn</c>, ...).</param>
/// <param name="Description">One line for help and reports.</param>
/// <param name="Build">Builds the model deterministically from a seed (float32, CPU, eval mode).</param>
/// <param name="InputShape">Shape of one sample's input.</param>
/// <param name="InputKind">Floating images/features, or token ids below <paramref name="Classes"/>.</param>
/// <param name="Classes">Number of output classes (targets are class indices).</param>
/// <param name="Vocabulary">For token inputs: ids are drawn from [1, Vocabulary) with a few padding zeros.</param>
public sealed record ZooModel(string Name, string Description, Func<long, Module<Tensor, Tensor>> Build,
    long[] InputShape, ZooInputKind InputKind, long Classes, long Vocabulary = 0)
{
    /// <summary>
    /// A batch of <paramref name="batchSize"/> samples drawn from a generator seeded with <paramref name="seed"/>:
    /// inputs (standard normal, or token ids) and class-index targets, on the CPU in float32.
    /// </summary>
    public (Tensor Inputs, Tensor Targets) MakeBatch(long batchSize, long seed)
    {
        using var generator = Seeded.Generator(seed);
        long[] shape = [batchSize, .. InputShape];
        var inputs = InputKind == ZooInputKind.Tokens
            ? TokenIds(shape, Vocabulary, generator)
            : randn(shape, generator: generator);
        var targets = randint(0, Classes, [batchSize], generator: generator);
        return (inputs, targets);
    }

    /// <summary>
    /// The model as a case: <paramref name="batchSize"/> samples, <paramref name="loss"/> (default: cross-entropy
    /// with a mean), the model built and the batch drawn from <paramref name="seed"/>; id
    /// <c>zoo-NAME-BN-LOSS-REDUCTION</c>.
    /// </summary>
    public GradientCase Case(long batchSize, LossFunction? loss = null, long seed = 7)
    {
        loss ??= LossFunction.CrossEntropy(LossReduction.Mean);
        return new GradientCase(GradientCase.IdOf($"zoo-{Name}", batchSize, loss), Name, () => Build(seed),
            InputShape, loss, batchSize, InputKind == ZooInputKind.Tokens ? Vocabulary : 0, seed);
    }

    internal static Tensor TokenIds(long[] shape, long vocabulary, Generator generator)
    {
        var ids = randint(1, vocabulary, shape, generator: generator);
        // About one token in six is padding (id 0), never a whole sample.
        var padding = rand(shape, generator: generator) < 1.0 / 6;
        padding.select(-1, 0).fill_(false);
        return ids.masked_fill(padding, 0);
    }

    /// <inheritdoc/>
    public override string ToString() => Name;
}

/// <summary>What a zoo model takes as input.</summary>
public enum ZooInputKind
{
    /// <summary>Floating features or images.</summary>
    Floating,
    /// <summary>Int64 token ids.</summary>
    Tokens,
}

/// <summary>
/// The models shared by tests and the command line. Names and parameter names match the PyTorch reference script.
/// </summary>
public static class ModelZoo
{
    /// <summary>The seed's model: TorchVision's ResNet-18 with GroupNorm(min(32, C), C), 10 classes, 3x32x32
    /// inputs.</summary>
    public static ZooModel ResNet18GroupNorm { get; } = new("resnet18-gn",
        "TorchVision ResNet-18, GroupNorm(min(32,C), C), 10 classes, 3x32x32 inputs (11.2M parameters)",
        seed => Prepared(seed, () => torchvision.models.resnet18(num_classes: 10,
            norm_layer: c => GroupNorm(Math.Min(32, c), c))),
        [3, 32, 32], ZooInputKind.Floating, 10);

    /// <summary>A small CNN, <see cref="Zoo.SmallCnn"/>.</summary>
    public static ZooModel SmallCnn { get; } = new("small-cnn",
        "Conv2d+GroupNorm+ReLU+MaxPool, Conv2d+GroupNorm+ReLU+AvgPool, Linear; 3x32x32 inputs, 10 classes (5.5k " +
            "parameters)",
        seed => Prepared(seed, () => new SmallCnn()), [3, 32, 32], ZooInputKind.Floating, 10);

    /// <summary>An MLP: Linear(20→64), ReLU, Linear(64→64), Tanh, Linear(64→10), as a Sequential.</summary>
    public static ZooModel Mlp { get; } = new("mlp",
        "Linear(20->64)+ReLU+Linear(64->64)+Tanh+Linear(64->10), 20 features, 10 classes",
        seed => Prepared(seed, () => Sequential(Linear(20, 64), ReLU(), Linear(64, 64), Tanh(), Linear(64, 10))),
        [20], ZooInputKind.Floating, 10);

    /// <summary>A token classifier, <see cref="Zoo.TokenClassifier"/>: 12 tokens from a vocabulary of 50, 5
    /// classes.</summary>
    public static ZooModel Sequence { get; } = new("sequence",
        "Embedding(50,16,padding_idx=0)+LayerNorm(16)+Linear(16->16) per token+ReLU+mean+Linear(16->5), 12 tokens",
        seed => Prepared(seed, () => new TokenClassifier()), [12], ZooInputKind.Tokens, 5, Vocabulary: 50);

    /// <summary>An LSTM classifier, <see cref="Zoo.LstmClassifier"/>: 12 tokens from a vocabulary of 50, 5
    /// classes.</summary>
    public static ZooModel Lstm { get; } = new("lstm",
        "Embedding(50,16,padding_idx=0)+LSTM(16->32, batch-first)+Linear(32->5) on h_n, 12 tokens",
        seed => Prepared(seed, () => new LstmClassifier()), [12], ZooInputKind.Tokens, 5, Vocabulary: 50);

    /// <summary>A Transformer encoder classifier, <see cref="Zoo.TransformerEncoderClassifier"/>: 12 tokens from a
    /// vocabulary of 50, 5 classes.</summary>
    public static ZooModel Transformer { get; } = new("transformer",
        "Embedding(50,16,padding_idx=0)+position Embedding(12,16), encoder block (MultiheadAttention(16, 2 heads)+" +
            "LayerNorm, Linear(16->32)+ReLU+Linear(32->16)+LayerNorm), mean, Linear(16->5), 12 tokens",
        seed => Prepared(seed, () => new TransformerEncoderClassifier()), [12], ZooInputKind.Tokens, 5,
        Vocabulary: 50);

    /// <summary>Every model, the default (<c>small-cnn</c>) first.</summary>
    public static IReadOnlyList<ZooModel> All { get; } =
        [SmallCnn, Mlp, Sequence, Lstm, Transformer, ResNet18GroupNorm];

    /// <summary>The model named <paramref name="name"/>; the error lists the names.</summary>
    public static ZooModel Get(string name) =>
        All.FirstOrDefault(m => string.Equals(m.Name, name, StringComparison.OrdinalIgnoreCase))
        ?? throw new ArgumentException($"Unknown model '{name}'. Known models: " +
            $"{string.Join(", ", All.Select(m => m.Name))}.");

    private static Module<Tensor, Tensor> Prepared(long seed, Func<Module<Tensor, Tensor>> build)
    {
        var model = Seeded.Build(seed, build);
        Seeded.InitializeGroupNorms(model);
        model.eval();
        return model;
    }
}
