using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace PerSampleGrads.Testing.Specs;

/// <summary>Linear on the last dimension of features <c>[F]</c> or tokens <c>[T, F]</c>.</summary>
public sealed record LinearSpec(long Out, bool Bias = true) : LayerSpec
{
    /// <inheritdoc/>
    public override SampleShape? Apply(SampleShape input) => input.Kind switch
    {
        ShapeKind.Features => SampleShape.Features(Out),
        ShapeKind.Tokens => input.With(input.Dims[0], Out),
        _ => null,
    };

    /// <inheritdoc/>
    public override Module<Tensor, Tensor> Build(SampleShape input) => Linear(input.Channels, Out, hasBias: Bias);

    /// <inheritdoc/>
    public override string Describe(SampleShape input) => $"Linear({input.Channels}->{Out}{(Bias ? "" : ",nobias")})";

    /// <inheritdoc/>
    public override IEnumerable<LayerSpec> Simpler()
    {
        if (!Bias) yield return this with { Bias = true };
        if (Out > 1) yield return this with { Out = 1 };
        if (Out > 2) yield return this with { Out = Out - 1 };
    }

    /// <inheritdoc/>
    public override IEnumerable<string> Exercises(SampleShape input)
    {
        yield return "linear";
        if (input.Kind == ShapeKind.Tokens) yield return "linear: 3-d input";
        if (Out != input.Channels) yield return "linear: non-square";
        if (!Bias) yield return "linear: no bias";
    }
}

/// <summary>
/// GroupNorm over the channel dimension of signals or images (TorchSharp's GroupNorm refuses 2-d inputs), each group
/// normalising at least <see cref="LayerSpec.MinimumNormalizedValues"/> values.
/// </summary>
public sealed record GroupNormSpec(long Groups) : LayerSpec
{
    /// <inheritdoc/>
    public override SampleShape? Apply(SampleShape input) =>
        input.IsSpatial && Groups >= 1 && input.Channels % Groups == 0
        && input.Elements / Groups >= LayerSpec.MinimumNormalizedValues
            ? input
            : null;

    /// <inheritdoc/>
    public override Module<Tensor, Tensor> Build(SampleShape input) => GroupNorm(Groups, input.Channels);

    /// <inheritdoc/>
    public override string Describe(SampleShape input) => $"GroupNorm({Groups},{input.Channels})";

    /// <inheritdoc/>
    public override IEnumerable<LayerSpec> Simpler()
    {
        if (Groups > 1) yield return this with { Groups = 1 };
    }

    /// <inheritdoc/>
    public override IEnumerable<string> Exercises(SampleShape input) =>
        Groups > 1 && Groups < input.Channels ? ["groupnorm", "groupnorm: several groups of several channels"]
        : Groups == input.Channels ? ["groupnorm", "groupnorm: one channel per group"] : ["groupnorm"];
}

/// <summary>
/// LayerNorm over the last dimension (features, a token's features, a signal's or an image's last axis) of at least
/// <see cref="LayerSpec.MinimumNormalizedValues"/> values.
/// </summary>
public sealed record LayerNormSpec : LayerSpec
{
    /// <inheritdoc/>
    public override SampleShape? Apply(SampleShape input) =>
        input.IsFloating && input.Dims[^1] >= LayerSpec.MinimumNormalizedValues ? input : null;

    /// <inheritdoc/>
    public override Module<Tensor, Tensor> Build(SampleShape input) => LayerNorm(input.Dims[^1]);

    /// <inheritdoc/>
    public override string Describe(SampleShape input) => $"LayerNorm({input.Dims[^1]})";

    /// <inheritdoc/>
    public override IEnumerable<string> Exercises(SampleShape input) => ["layernorm"];
}

/// <summary>The token front end: Embedding(vocabulary, width), optionally with <c>padding_idx = 0</c>.</summary>
public sealed record EmbeddingSpec(long Width, bool PaddingZero) : LayerSpec
{
    /// <inheritdoc/>
    public override SampleShape? Apply(SampleShape input) =>
        input.Kind == ShapeKind.TokenIds ? new SampleShape(ShapeKind.Tokens, [input.Dims[0], Width]) : null;

    /// <inheritdoc/>
    public override Module<Tensor, Tensor> Build(SampleShape input) =>
        Embedding(input.Vocabulary, Width, padding_idx: PaddingZero ? 0 : null);

    /// <inheritdoc/>
    public override string Describe(SampleShape input) =>
        $"Embedding({input.Vocabulary},{Width}{(PaddingZero ? ",pad0" : "")})";

    /// <inheritdoc/>
    public override IEnumerable<LayerSpec> Simpler()
    {
        if (Width > 1) yield return this with { Width = Width - 1 };
        if (PaddingZero) yield return this with { PaddingZero = false };
    }

    /// <inheritdoc/>
    public override IEnumerable<string> Exercises(SampleShape input)
        => PaddingZero ? ["embedding", "embedding: padding_idx"] : ["embedding"];
}

/// <summary>An elementwise activation.</summary>
public enum ActivationKind
{
    /// <summary>max(0, x).</summary>
    ReLU,
    /// <summary>tanh.</summary>
    Tanh,
    /// <summary>GELU.</summary>
    GELU,
}

/// <summary>An activation: any floating shape.</summary>
public sealed record ActivationSpec(ActivationKind Kind) : LayerSpec
{
    /// <inheritdoc/>
    public override SampleShape? Apply(SampleShape input) => input.IsFloating ? input : null;

    /// <inheritdoc/>
    public override Module<Tensor, Tensor> Build(SampleShape input) => Kind switch
    {
        ActivationKind.ReLU => ReLU(),
        ActivationKind.Tanh => Tanh(),
        _ => GELU(),
    };

    /// <inheritdoc/>
    public override string Describe(SampleShape input) => Kind.ToString();

    /// <inheritdoc/>
    public override IEnumerable<LayerSpec> Simpler()
    {
        if (Kind != ActivationKind.Tanh) yield return this with { Kind = ActivationKind.Tanh };
    }
}

/// <summary>Max or average pooling with kernel and stride 2 over the spatial dimensions.</summary>
public sealed record PoolSpec(bool Max) : LayerSpec
{
    /// <inheritdoc/>
    public override SampleShape? Apply(SampleShape input) =>
        input.IsSpatial && input.Spatial.All(s => s >= 2)
            ? input.With([input.Channels, .. input.Spatial.Select(s => s / 2)])
            : null;

    /// <inheritdoc/>
    public override Module<Tensor, Tensor> Build(SampleShape input) => (input.Kind, Max) switch
    {
        (ShapeKind.Signal, true) => MaxPool1d(2),
        (ShapeKind.Signal, false) => AvgPool1d(2),
        (ShapeKind.Image, true) => MaxPool2d(2),
        (ShapeKind.Image, false) => AvgPool2d(2),
        (_, true) => MaxPool3d(2),
        _ => AvgPool3d(2),
    };

    /// <inheritdoc/>
    public override string Describe(SampleShape input) => $"{(Max ? "Max" : "Avg")}Pool{input.Spatial.Length}d(2)";
}

/// <summary>Flatten to features.</summary>
public sealed record FlattenSpec : LayerSpec
{
    /// <inheritdoc/>
    public override SampleShape? Apply(SampleShape input) =>
        input.IsFloating && input.Kind != ShapeKind.Features ? SampleShape.Features(input.Elements) : null;

    /// <inheritdoc/>
    public override Module<Tensor, Tensor> Build(SampleShape input) => Flatten();

    /// <inheritdoc/>
    public override string Describe(SampleShape input) => "Flatten";
}

/// <summary>Mean over the tokens: <c>[T, D]</c> to <c>[D]</c>.</summary>
public sealed record MeanOverTokensSpec : LayerSpec
{
    /// <inheritdoc/>
    public override SampleShape? Apply(SampleShape input) =>
        input.Kind == ShapeKind.Tokens ? SampleShape.Features(input.Dims[1]) : null;

    /// <inheritdoc/>
    public override Module<Tensor, Tensor> Build(SampleShape input) => new MeanOverTokens();

    /// <inheritdoc/>
    public override string Describe(SampleShape input) => "MeanOverTokens";
}

/// <summary><c>x + body(x)</c>; the body must keep the shape.</summary>
public sealed record ResidualSpec(IReadOnlyList<LayerSpec> Body) : LayerSpec
{
    /// <inheritdoc/>
    public override SampleShape? Apply(SampleShape input) =>
        Body.Count > 0 && Walk(input, Body) is { } shapes && shapes[^1].SameAs(input) ? input : null;

    /// <inheritdoc/>
    public override Module<Tensor, Tensor> Build(SampleShape input)
    {
        var shapes = Walk(input, Body)!;
        return new ResidualBlock(Sequential(Body.Select((layer, i) => ($"{i}", layer.Build(shapes[i]))).ToArray()));
    }

    /// <inheritdoc/>
    public override string Describe(SampleShape input)
    {
        var shapes = Walk(input, Body)!;
        return $"Residual[{string.Join("+", Body.Select((layer, i) => layer.Describe(shapes[i])))}]";
    }

    /// <inheritdoc/>
    public override IEnumerable<LayerSpec> Simpler()
    {
        for (int i = 0; i < Body.Count; i++)
        {
            if (Body.Count > 1) yield return new ResidualSpec([.. Body.Take(i), .. Body.Skip(i + 1)]);
            foreach (var simpler in Body[i].Simpler())
                yield return new ResidualSpec([.. Body.Take(i), simpler, .. Body.Skip(i + 1)]);
        }
    }

    /// <inheritdoc/>
    public override IEnumerable<string> Exercises(SampleShape input)
    {
        var shapes = Walk(input, Body)!;
        return ["pattern: residual block", .. Body.SelectMany((layer, i) => layer.Exercises(shapes[i]))];
    }
}

/// <summary>One module applied twice, <c>m(tanh(m(x)))</c> (weight sharing); it must keep the shape.</summary>
public sealed record SharedTwiceSpec(LayerSpec Shared) : LayerSpec
{
    /// <inheritdoc/>
    public override SampleShape? Apply(SampleShape input) => Shared.Apply(input) is { } output && output.SameAs(input)
        ? input : null;

    /// <inheritdoc/>
    public override Module<Tensor, Tensor> Build(SampleShape input) => new AppliedTwice(Shared.Build(input));

    /// <inheritdoc/>
    public override string Describe(SampleShape input) => $"Twice[{Shared.Describe(input)}]";

    /// <inheritdoc/>
    public override IEnumerable<LayerSpec> Simpler() => Shared.Simpler().Select(s => new SharedTwiceSpec(s));

    /// <inheritdoc/>
    public override IEnumerable<string> Exercises(SampleShape input) =>
        ["pattern: module called twice", .. Shared.Exercises(input)];
}

/// <summary>Fault: BatchNorm in training mode (invalid for every method).</summary>
public sealed record BatchNormInTrainingSpec : LayerSpec
{
    /// <inheritdoc/>
    public override SampleShape? Apply(SampleShape input) =>
        input.Kind == ShapeKind.Features || input.IsSpatial ? input : null;

    /// <inheritdoc/>
    public override Module<Tensor, Tensor> Build(SampleShape input) => NormLayers.BatchNorm(input, affine: true);

    /// <inheritdoc/>
    public override string Describe(SampleShape input) =>
        $"BatchNorm{Math.Max(1, input.Spatial.Length)}d({input.Channels},train)";

    /// <inheritdoc/>
    public override bool StaysInTraining => true;
}

/// <summary>Fault: a trainable layer no engine has a rule for (a custom module with raw parameters).</summary>
public sealed record UnsupportedTrainableSpec : LayerSpec
{
    /// <inheritdoc/>
    public override SampleShape? Apply(SampleShape input) => input.IsFloating ? input : null;

    /// <inheritdoc/>
    public override Module<Tensor, Tensor> Build(SampleShape input)
        => new PerSampleGrads.Cases.GainShiftTanh(input.Dims[^1]);

    /// <inheritdoc/>
    public override string Describe(SampleShape input) => $"GainShiftTanh({input.Dims[^1]})";
}
