using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace PerSampleGrads.Testing.Specs;

/// <summary>A position-wise layer applied sequence-first: <c>[N, T, D]</c> is transposed to <c>[T, N, D]</c> for the
/// layer and back, as TorchSharp's attention and Transformer modules lay sequences out.</summary>
public sealed record SequenceFirstSpec(LayerSpec Inner) : LayerSpec
{
    /// <inheritdoc/>
    public override SampleShape? Apply(SampleShape input) =>
        input.Kind == ShapeKind.Tokens && Inner is LinearSpec or LayerNormSpec ? Inner.Apply(input) : null;

    /// <inheritdoc/>
    public override Module<Tensor, Tensor> Build(SampleShape input) => new SequenceFirst(Inner.Build(input));

    /// <inheritdoc/>
    public override string Describe(SampleShape input) => $"SeqFirst[{Inner.Describe(input)}]";

    /// <inheritdoc/>
    public override IEnumerable<LayerSpec> Simpler() => Inner.Simpler().Select(s => new SequenceFirstSpec(s));

    /// <inheritdoc/>
    public override IEnumerable<string> Exercises(SampleShape input) =>
        ["pattern: sequence-first", .. Inner.Exercises(input)];
}

/// <summary>One Linear(C->C) instance registered under two parents, <c>b.m(tanh(a.m(x)))</c>, so
/// <c>named_modules()</c> lists it twice.</summary>
public sealed record TwoParentsSpec(bool Bias = true) : LayerSpec
{
    /// <inheritdoc/>
    public override SampleShape? Apply(SampleShape input) =>
        input.Kind is ShapeKind.Features or ShapeKind.Tokens ? input : null;

    /// <inheritdoc/>
    public override Module<Tensor, Tensor> Build(SampleShape input)
    {
        var shared = Linear(input.Channels, input.Channels, hasBias: Bias);
        return Sequential(("a", Sequential(("m", shared), ("act", Tanh()))), ("b", Sequential(("m", shared))));
    }

    /// <inheritdoc/>
    public override string Describe(SampleShape input) =>
        $"TwoParents[Linear({input.Channels}->{input.Channels}{(Bias ? "" : ",nobias")})]";

    /// <inheritdoc/>
    public override IEnumerable<string> Exercises(SampleShape input) => ["pattern: module under two parents"];
}

/// <summary>A token front end with weight tying, as in language models: <c>tanh(E[ids]) E^T</c>, an Embedding(V, D)
/// and a Linear(D->V) that holds the same table, so ids <c>[T]</c> become scores <c>[T, V]</c>. (Embedding and Linear,
/// because TorchSharp 0.107's <c>to(dtype)</c> fails on two Linear layers holding one weight.)</summary>
public sealed record TiedEmbeddingSpec(long Width, bool PaddingZero) : LayerSpec
{
    /// <inheritdoc/>
    public override SampleShape? Apply(SampleShape input) =>
        input.Kind == ShapeKind.TokenIds ? new SampleShape(ShapeKind.Tokens, [input.Dims[0], input.Vocabulary]) : null;

    /// <inheritdoc/>
    public override Module<Tensor, Tensor> Build(SampleShape input) =>
        new TiedEmbedding(input.Vocabulary, Width, PaddingZero);

    /// <inheritdoc/>
    public override string Describe(SampleShape input) =>
        $"TiedEmbedding({input.Vocabulary},{Width}{(PaddingZero ? ",pad0" : "")})";

    /// <inheritdoc/>
    public override IEnumerable<LayerSpec> Simpler()
    {
        yield return new EmbeddingSpec(Width, PaddingZero);
        if (Width > 1) yield return this with { Width = Width - 1 };
        if (PaddingZero) yield return this with { PaddingZero = false };
    }

    /// <inheritdoc/>
    public override IEnumerable<string> Exercises(SampleShape input) =>
        ["pattern: tied parameter", "embedding", .. PaddingZero ? new[] { "embedding: padding_idx" } : []];
}

/// <summary>Learned positions added to tokens <c>[T, D]</c>: an Embedding(T, D) called on <c>arange(T)</c>, shared by
/// every sample (<c>[1, T]</c> when <paramref name="UnitBatch"/>, else <c>[T]</c>).</summary>
public sealed record PositionsSpec(bool UnitBatch) : LayerSpec
{
    /// <inheritdoc/>
    public override SampleShape? Apply(SampleShape input) => input.Kind == ShapeKind.Tokens ? input : null;

    /// <inheritdoc/>
    public override Module<Tensor, Tensor> Build(SampleShape input) =>
        new AddPositions(Embedding(input.Dims[0], input.Channels), input.Dims[0], UnitBatch);

    /// <inheritdoc/>
    public override string Describe(SampleShape input) =>
        $"Positions[{input.Dims[0]}x{input.Channels},{(UnitBatch ? "ids[1,T]" : "ids[T]")}]";

    /// <inheritdoc/>
    public override IEnumerable<LayerSpec> Simpler() => UnitBatch ? [new PositionsSpec(false)] : [];

    /// <inheritdoc/>
    public override IEnumerable<string> Exercises(SampleShape input) => ["pattern: shared input"];
}

/// <summary><c>inner(x^T)^T</c> over the first two dimensions.</summary>
public sealed class SequenceFirst : Module<Tensor, Tensor>
{
    private readonly Module<Tensor, Tensor> _inner;

    /// <summary>Wraps <paramref name="inner"/>, registered as <c>inner</c>.</summary>
    public SequenceFirst(Module<Tensor, Tensor> inner) : base(nameof(SequenceFirst))
    {
        _inner = inner;
        register_module("inner", _inner);
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor input) => _inner.call(input.transpose(0, 1)).transpose(0, 1);
}

/// <summary><c>x + positions(arange(T))</c>.</summary>
public sealed class AddPositions : Module<Tensor, Tensor>
{
    private readonly Embedding _positions;
    private readonly long _length;
    private readonly bool _unitBatch;

    /// <summary>Wraps <paramref name="positions"/>, registered as <c>positions</c>.</summary>
    public AddPositions(Embedding positions, long length, bool unitBatch) : base(nameof(AddPositions))
    {
        _positions = positions;
        _length = length;
        _unitBatch = unitBatch;
        register_module("positions", _positions);
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor input)
    {
        var ids = arange(_length, device: input.device);
        return input + _positions.call(_unitBatch ? ids.unsqueeze(0) : ids);
    }
}

/// <summary><c>project(tanh(embed(ids)))</c> with <c>project.weight</c> tied to <c>embed.weight</c>.</summary>
public sealed class TiedEmbedding : Module<Tensor, Tensor>
{
    private readonly Embedding embed;
    private readonly Linear project;

    /// <summary>Builds the pair over a vocabulary of <paramref name="vocabulary"/> ids.</summary>
    public TiedEmbedding(long vocabulary, long width, bool paddingZero) : base(nameof(TiedEmbedding))
    {
        embed = Embedding(vocabulary, width, padding_idx: paddingZero ? 0 : null);
        project = Linear(width, vocabulary, hasBias: false);
        project.weight = embed.weight!;
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor ids) => project.call(embed.call(ids).tanh());
}
