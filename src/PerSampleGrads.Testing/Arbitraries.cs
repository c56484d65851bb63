using FsCheck;
using FsCheck.Fluent;
using PerSampleGrads.Cases;
using PerSampleGrads.Testing.Specs;
using TorchSharp;
using TorchSharp.Modules;

namespace PerSampleGrads.Testing;

/// <summary>
/// The generators and shrinkers of the property suite for every layer and pattern
/// (<see cref="MethodClaims.Everything"/>, with the refusal of custom modules among the faults): the repository's own
/// engines are checked on these. <see cref="CaseGenerators.For"/> gives the same generators restricted to what a method
/// claims.
/// </summary>
public static class Arbitraries
{
    /// <summary>What the repository's engines claim: every layer and pattern, custom modules refused among the
    /// faults.</summary>
    public static MethodClaims Claims { get; } = MethodClaims.Everything with { RefusesCustomModules = true };

    private static readonly CaseGenerators Everything = CaseGenerators.For(Claims);

    /// <summary>Valid cases, shrinking towards N = 1, fewer and smaller layers, smaller inputs.</summary>
    public static Arbitrary<CaseSpec> Cases() => Everything.Cases();

    /// <summary>Valid cases for float32 computation (see <see cref="CaseGenerators.Float32Cases"/>).</summary>
    public static Arbitrary<Float32CaseSpec> Float32Cases() => Everything.Float32Cases();

    /// <summary>Valid cases with one fault planted, shrinking the valid part while the fault still fits.</summary>
    public static Arbitrary<InvalidCaseSpec> InvalidCases() => Everything.InvalidCases();

    /// <summary>The case generator (sized).</summary>
    public static Gen<CaseSpec> CaseGenerator => Everything.CaseGenerator;

    /// <summary>The float32 case generator (sized).</summary>
    public static Gen<Float32CaseSpec> Float32CaseGenerator => Everything.Float32CaseGenerator;

    /// <summary>The faulty case generator (sized).</summary>
    public static Gen<InvalidCaseSpec> InvalidCaseGenerator => Everything.InvalidCaseGenerator;

    /// <summary>Valid simpler cases, the boldest first.</summary>
    public static IEnumerable<CaseSpec> ShrinkCase(CaseSpec c) => CaseGenerators.ShrinkCase(c);
}

/// <summary>
/// Every generator and shrinker of the property suite, in one place. Cases are generated valid by construction
/// (layer options are drawn from the combinations that fit the current shape), and shrinkers keep them valid
/// (<c>c => Candidates(c).Where(IsValid)</c>), so a failure ends as a minimal architecture.
/// </summary>
/// <remarks>
/// Sizes follow FsCheck's size parameter (it grows over a run, from 1 to 100 by default) and are capped: at most
/// <see cref="Budget.Layers"/> body layers of at most <see cref="Budget.Width"/> features or channels per group,
/// signals and images at most <see cref="Budget.Spatial"/> wide, N from 1 to 8. Every case is a small model: a float64
/// oracle, two engines and a few reruns take milliseconds on a CPU.
/// </remarks>
public sealed class CaseGenerators
{
    private readonly MethodClaims _claims;

    private CaseGenerators(MethodClaims claims)
    {
        if (!claims.Claims(typeof(Linear)))
            throw new ArgumentException(
                "Generated architectures end in a Linear head: a method checked on them must claim Linear.",
                nameof(claims));
        _claims = claims;
        CaseGenerator = Gen.Sized(size => Case(Budget.For(size), float32: false));
        Float32CaseGenerator = Gen.Sized(size => Case(Budget.For(size), float32: true))
            .Select(c => new Float32CaseSpec(c));
        InvalidCaseGenerator =
            from valid in CaseGenerator
            from fault in Gen.Elements(Enum.GetValues<Fault>().Where(f => Planted(f) && Positions(valid, f).Length > 0))
            from position in Gen.Elements(Positions(valid, fault))
            select new InvalidCaseSpec(valid, fault, position);
    }

    /// <summary>Generators of models made only of what <paramref name="claims"/> lists (a Linear head too).</summary>
    public static CaseGenerators For(MethodClaims claims) => new(claims);

    /// <summary>What the generated models may contain.</summary>
    public MethodClaims Claims => _claims;

    /// <summary>Valid cases, shrinking towards N = 1, fewer and smaller layers, smaller inputs.</summary>
    public Arbitrary<CaseSpec> Cases() => Arb.From(CaseGenerator, ShrinkCase);

    /// <summary>
    /// Valid cases for float32 computation: every normalisation follows a Tanh or GELU or normalises the raw input
    /// (<see cref="ArchitectureSpec.NormalizesOnlyAfterSmoothActivations"/> says why), shrinking like
    /// <see cref="Cases"/>.
    /// </summary>
    public Arbitrary<Float32CaseSpec> Float32Cases() => Arb.From(Float32CaseGenerator,
        c => ShrinkCase(c.Case).Select(x => new Float32CaseSpec(x)).Where(x => x.IsValid));

    /// <summary>Valid cases with one fault planted, shrinking the valid part while the fault still fits.</summary>
    public Arbitrary<InvalidCaseSpec> InvalidCases() => Arb.From(InvalidCaseGenerator, ShrinkInvalidCase);

    /// <summary>The case generator (sized).</summary>
    public Gen<CaseSpec> CaseGenerator { get; }

    /// <summary>The float32 case generator (sized).</summary>
    public Gen<Float32CaseSpec> Float32CaseGenerator { get; }

    /// <summary>
    /// The faulty case generator (sized): BatchNorm in training mode and an empty batch for every method, and a custom
    /// module for a method that claims to refuse those (<see cref="MethodClaims.RefusesCustomModules"/>).
    /// </summary>
    public Gen<InvalidCaseSpec> InvalidCaseGenerator { get; }

    /// <summary>
    /// How big a case may be at a given FsCheck size (0 to 100).
    /// </summary>
    /// <param name="Layers">Most body layers (1 to 5).</param>
    /// <param name="Width">Most features, or channels per group (2 to 7).</param>
    /// <param name="Spatial">Largest signal length or image side (5 to 10).</param>
    /// <param name="Batch">Largest N (2 to 8).</param>
    public sealed record Budget(int Layers, int Width, int Spatial, int Batch)
    {
        /// <summary>The budget at FsCheck size <paramref name="size"/>, capped at size 100.</summary>
        public static Budget For(int size)
        {
            int s = Math.Clamp(size, 0, 100);
            return new Budget(1 + s / 25, 2 + s / 20, 5 + s / 20, Math.Min(8, 2 + s / 12));
        }
    }

    private static readonly LossKind[] Losses = Enum.GetValues<LossKind>();

    // Input channels: prime and composite counts, so that groups of several channels occur.
    private static readonly long[] Channels = [1, 2, 3, 4, 6];

    // Claimed built-in layers and patterns.
    private bool Has(Type layer) => _claims.Claims(layer);

    private bool Has(ModelPatterns patterns) => _claims.Claims(patterns);

    private bool Convolves(SampleShape shape) => shape.Kind switch
    {
        ShapeKind.Signal => Has(typeof(Conv1d)),
        ShapeKind.Image => Has(typeof(Conv2d)),
        ShapeKind.Volume => Has(typeof(Conv3d)),
        _ => false,
    };

    private bool ConvolvesTransposed(SampleShape shape) => shape.Kind switch
    {
        ShapeKind.Signal => Has(typeof(ConvTranspose1d)),
        ShapeKind.Image => Has(typeof(ConvTranspose2d)),
        ShapeKind.Volume => Has(typeof(ConvTranspose3d)),
        _ => false,
    };

    private bool HasBatchNorm(SampleShape shape) => shape.Spatial.Length switch
    {
        0 or 1 => Has(typeof(BatchNorm1d)),
        2 => Has(typeof(BatchNorm2d)),
        _ => Has(typeof(BatchNorm3d)),
    };

    private bool HasInstanceNorm(SampleShape shape) => shape.Spatial.Length switch
    {
        1 => Has(typeof(InstanceNorm1d)),
        2 => Has(typeof(InstanceNorm2d)),
        _ => Has(typeof(InstanceNorm3d)),
    };

    // Whether a fault is one this method must refuse.
    private bool Planted(Fault fault) =>
        fault != Fault.UnsupportedTrainableLayer || _claims.RefusesCustomModules;

    // float32: normalisations only after Tanh or GELU, or on the raw input.
    private Gen<CaseSpec> Case(Budget budget, bool float32) =>
        from input in InputShape(budget)
        from layers in Gen.Choose(0, budget.Layers)
        from body in input.Kind == ShapeKind.TokenIds
            ? TokenBody(input, layers, budget, float32)
            : Body(input, layers, budget, normalizationAllowed: true, float32)
        from loss in Gen.Elements(Losses)
        from reduction in Gen.Elements(LossReduction.Mean, LossReduction.Sum)
        from outputs in loss is LossKind.CrossEntropy or LossKind.NegativeLogLikelihood
            ? Gen.Choose(2, 5)
            : Gen.Choose(1, 4)
        let last = LayerSpec.Walk(input, body)![^1]
        from positionwise in loss != LossKind.Custom && last.IsSpatial && Convolves(last)
            ? Gen.Frequency((2, Gen.Constant(false)), (1, Gen.Constant(true)))
            : Gen.Constant(false)
        from n in Gen.Choose(1, budget.Batch)
        from seed in Gen.Choose(0, int.MaxValue)
        select new CaseSpec(new ArchitectureSpec(input, body, outputs, loss == LossKind.NegativeLogLikelihood,
            positionwise), n, loss, reduction, seed);

    // Token ids only for a method that claims Embedding (they always go through one first).
    private Gen<SampleShape> InputShape(Budget budget)
    {
        // Weights: the spatial inputs, where most rules live, keep their share as kinds are added.
        var shapes = new List<(int, Gen<SampleShape>)>
        {
            (2, Gen.Choose(1, budget.Width).Select(f => SampleShape.Features(f))),
            (3, from c in Gen.Elements(Channels)
                from l in Gen.Choose(3, budget.Spatial + 4)
                select new SampleShape(ShapeKind.Signal, [c, l])),
            (3, from c in Gen.Elements(Channels)
                from h in Gen.Choose(3, budget.Spatial)
                from w in Gen.Choose(3, budget.Spatial)
                select new SampleShape(ShapeKind.Image, [c, h, w])),
        };
        if (Has(typeof(Conv3d)) || Has(typeof(ConvTranspose3d)))
            shapes.Add((2,
                from c in Gen.Elements(Channels.Where(c => c <= 4).ToArray())
                from d in Gen.Choose(2, 4)
                from h in Gen.Choose(2, 4)
                from w in Gen.Choose(2, 4)
                select new SampleShape(ShapeKind.Volume, [c, d, h, w])));
        if (SequenceLayerTypes.Any(Has))
            shapes.Add((1,
                from t in Gen.Choose(2, 6)
                from d in Gen.Choose(1, budget.Width + 2)
                select new SampleShape(ShapeKind.Tokens, [t, d])));
        if (Has(typeof(Embedding)))
            shapes.Add((2,
                from t in Gen.Choose(2, 6)
                from v in Gen.Choose(3, 12)
                select new SampleShape(ShapeKind.TokenIds, [t], v)));
        return Gen.Frequency(shapes.ToArray());
    }

    // Token ids go through an Embedding first (tied to a Linear projection when tied parameters are claimed), or
    // through an EmbeddingBag into features.
    private Gen<List<LayerSpec>> TokenBody(SampleShape input, int layers, Budget budget, bool float32) =>
        Has(typeof(EmbeddingBag))
            ? Gen.Frequency((3, EmbeddingBody(input, layers, budget, float32)),
                (1, BagBody(input, layers, budget, float32)))
            : EmbeddingBody(input, layers, budget, float32);

    private Gen<List<LayerSpec>> BagBody(SampleShape input, int layers, Budget budget, bool float32) =>
        from width in Gen.Choose(1, budget.Width)
        from mean in Gen.Elements(false, true)
        from weighted in mean ? Gen.Constant(false) : Gen.Elements(false, true)
        from padding in Gen.Elements(false, true)
        let bag = new EmbeddingBagSpec(width, mean, weighted, padding)
        from rest in Body(bag.Apply(input)!, layers, budget, normalizationAllowed: !float32, float32)
        select (List<LayerSpec>)[bag, .. rest];

    private Gen<List<LayerSpec>> EmbeddingBody(SampleShape input, int layers, Budget budget, bool float32) =>
        from width in Gen.Choose(1, budget.Width)
        from padding in Gen.Elements(true, false)
        from tied in Has(ModelPatterns.TiedParameters)
            ? Gen.Frequency((3, Gen.Constant(false)), (1, Gen.Constant(true)))
            : Gen.Constant(false)
        let embedding = tied ? (LayerSpec)new TiedEmbeddingSpec(width, padding) : new EmbeddingSpec(width, padding)
        from rest in Body(embedding.Apply(input)!, layers, budget, normalizationAllowed: !float32, float32)
        select (List<LayerSpec>)[embedding, .. rest];

    private Gen<List<LayerSpec>> Body(SampleShape shape, int layers, Budget budget, bool normalizationAllowed,
        bool float32) =>
        layers == 0
            ? Gen.Constant(new List<LayerSpec>())
            : from layer in Layer(shape, budget, normalizationAllowed, float32)
              from rest in Body(layer.Apply(shape)!, layers - 1, budget,
                  !float32 || layer is ActivationSpec { Kind: ActivationKind.Tanh or ActivationKind.GELU }, float32)
              select (List<LayerSpec>)[layer, .. rest];

    // A claimed layer that fits `shape`, weighted towards the layers with per-sample rules.
    private Gen<LayerSpec> Layer(SampleShape shape, Budget budget, bool normalizationAllowed, bool float32)
    {
        var options = new List<(int, Gen<LayerSpec>)>
        {
            (2, Gen.Elements(Enum.GetValues<ActivationKind>()).Select(k => (LayerSpec)new ActivationSpec(k))),
        };
        bool layerNorm = normalizationAllowed && Has(typeof(LayerNorm)) && new LayerNormSpec().Apply(shape) is not null;
        if (layerNorm) options.Add((1, Gen.Constant((LayerSpec)new LayerNormSpec())));
        bool linear = Has(typeof(Linear));
        bool sharing = Has(ModelPatterns.WeightSharing);
        if (shape.Kind == ShapeKind.Features || shape.IsSpatial)
        {
            if (HasBatchNorm(shape))
                options.Add((1, Gen.Frequency((3, Gen.Constant(true)), (1, Gen.Constant(false)))
                    .Select(affine => (LayerSpec)new BatchNormEvalSpec(affine))));
            if (Has(typeof(PReLU)))
                options.Add((1, Gen.Elements(true, false).Select(perChannel => (LayerSpec)new PReLUSpec(perChannel))));
        }
        switch (shape.Kind)
        {
            case ShapeKind.Features:
                options.Add((4, Linear(budget)));
                options.Add((1, Residual(shape)));
                if (sharing)
                {
                    options.Add((1, Gen.Constant((LayerSpec)new SharedTwiceSpec(new LinearSpec(shape.Channels)))));
                    options.Add((1, Gen.Constant((LayerSpec)new TwoParentsSpec())));
                }
                break;
            case ShapeKind.Tokens:
                options.Add((3, Linear(budget)));
                options.Add((1, Residual(shape)));
                if (sharing)
                    options.Add((1, Gen.Constant((LayerSpec)new SharedTwiceSpec(new LinearSpec(shape.Channels)))));
                options.Add((1, Gen.Elements<LayerSpec>(new MeanOverTokensSpec(), new FlattenSpec())));
                if (sharing) options.Add((1, Gen.Constant((LayerSpec)new TwoParentsSpec())));
                if (linear && Has(ModelPatterns.SequenceFirst))
                    options.Add((1, Gen.Choose(1, budget.Width)
                        .Select(o => (LayerSpec)new SequenceFirstSpec(new LinearSpec(o)))));
                if (Has(typeof(Embedding)) && Has(ModelPatterns.SharedInputs))
                    options.Add((1, Gen.Elements(true, false).Select(unit => (LayerSpec)new PositionsSpec(unit))));
                if (layerNorm && Has(ModelPatterns.SequenceFirst))
                    options.Add((1, Gen.Constant((LayerSpec)new SequenceFirstSpec(new LayerNormSpec()))));
                options.AddRange(SequenceLayers(shape, budget).Select(g => (2, g)));
                break;
            default:
                bool convolution = Convolves(shape);
                if (convolution) options.Add((4, Convolution(shape, budget)));
                if (ConvolvesTransposed(shape)) options.Add((1, TransposedConvolution(shape, budget)));
                if (HasInstanceNorm(shape) && new InstanceNormSpec(true, false, false).Apply(shape) is not null)
                    options.Add((1, InstanceNorm(normalizationAllowed)));
                if (normalizationAllowed && Has(typeof(GroupNorm)) && GroupCounts(shape).Length > 0)
                    options.Add((3, GroupNorm(shape)));
                if (convolution) options.Add((1, Residual(shape)));
                if (convolution && sharing)
                    options.Add((1, ShapeKeepingConvolution(shape).Select(c => (LayerSpec)new SharedTwiceSpec(c))));
                options.Add((1, Gen.Constant((LayerSpec)new FlattenSpec())));
                if (shape.Spatial.All(s => s >= 2))
                    options.Add((1, Gen.Elements(true, false).Select(max => (LayerSpec)new PoolSpec(max))));
                break;
        }
        return Gen.Frequency(options.Select(o => (o.Item1, o.Item2)).ToArray());
    }

    private static readonly Type[] SequenceLayerTypes =
    [
        typeof(LSTM), typeof(GRU), typeof(RNN), typeof(LSTMCell), typeof(GRUCell), typeof(RNNCell),
        typeof(MultiheadAttention), typeof(TransformerEncoderLayer), typeof(TransformerDecoderLayer),
    ];

    // The claimed layers over tokens [T, D]: recurrent layers and cells, attention, the Transformer layers.
    private IEnumerable<Gen<LayerSpec>> SequenceLayers(SampleShape shape, Budget budget)
    {
        var kinds = new (RecurrentCellKind Kind, Type Layer, Type Cell)[]
        {
            (RecurrentCellKind.Lstm, typeof(LSTM), typeof(LSTMCell)), (RecurrentCellKind.Gru, typeof(GRU),
                typeof(GRUCell)), (RecurrentCellKind.RnnTanh, typeof(RNN), typeof(RNNCell)),
            (RecurrentCellKind.RnnRelu, typeof(RNN), typeof(RNNCell)),
        };
        var layers = kinds.Where(k => Has(k.Layer)).Select(k => k.Kind).ToArray();
        if (layers.Length > 0)
            yield return
                from kind in Gen.Elements(layers)
                from hidden in Gen.Choose(1, budget.Width)
                from stacked in Gen.Frequency((3, Gen.Constant(1L)), (1, Gen.Constant(2L)))
                from bidirectional in Gen.Elements(false, true)
                from batchFirst in Gen.Elements(true, false)
                from bias in Gen.Frequency((2, Gen.Constant(true)), (1, Gen.Constant(false)))
                select (LayerSpec)new RecurrentSpec(kind, hidden, stacked, bidirectional, batchFirst, bias);
        var cells = kinds.Where(k => Has(k.Cell)).Select(k => k.Kind).ToArray();
        if (cells.Length > 0)
            yield return
                from kind in Gen.Elements(cells)
                from hidden in Gen.Choose(1, budget.Width)
                from bias in Gen.Frequency((2, Gen.Constant(true)), (1, Gen.Constant(false)))
                select (LayerSpec)new RecurrentSpec(kind, hidden, Bias: bias, Cell: true);
        if (Has(typeof(MultiheadAttention)))
            yield return
                from heads in Gen.Elements(Divisors(shape.Channels))
                from bias in Gen.Frequency((4, Gen.Constant(true)), (1, Gen.Constant(false)))
                from biasKeyValue in Gen.Frequency((3, Gen.Constant(false)), (1, Gen.Constant(true)))
                from zeroAttention in Gen.Frequency((3, Gen.Constant(false)), (1, Gen.Constant(true)))
                from causal in Gen.Elements(false, true)
                select (LayerSpec)new AttentionSpec(heads, bias, biasKeyValue, zeroAttention, causal);
        var transformers = new[] { false, true }
            .Where(d => Has(d ? typeof(TransformerDecoderLayer) : typeof(TransformerEncoderLayer))).ToArray();
        if (transformers.Length > 0 && shape.Channels >= LayerSpec.MinimumNormalizedValues)
            yield return
                from decoder in Gen.Elements(transformers)
                from heads in Gen.Elements(Divisors(shape.Channels))
                from feedForward in Gen.Choose(1, 2 * budget.Width)
                from gelu in Gen.Elements(false, true)
                select (LayerSpec)new TransformerLayerSpec(decoder, heads, feedForward, gelu);
    }

    // A Linear layer, without bias now and then.
    private static Gen<LayerSpec> Linear(Budget budget) =>
        from outputs in Gen.Choose(1, budget.Width)
        from bias in Gen.Frequency((4, Gen.Constant(true)), (1, Gen.Constant(false)))
        select (LayerSpec)new LinearSpec(outputs, bias);

    // A group count that divides the channels and leaves enough values per group; several groups of several channels
    // (the case where grouping matters) three times as often as one group or one channel per group.
    private static Gen<LayerSpec> GroupNorm(SampleShape shape) =>
        Gen.Frequency(GroupCounts(shape)
            .Select(g => (g > 1 && g < shape.Channels ? 3 : 1, Gen.Constant((LayerSpec)new GroupNormSpec(g))))
            .ToArray());

    // Group counts that divide the channels and leave enough values per group.
    private static long[] GroupCounts(SampleShape shape) =>
        [.. Divisors(shape.Channels).Where(g => new GroupNormSpec(g).Apply(shape) is not null)];

    // Per axis, independently: every (kernel, dilation, padding, stride) that leaves an output position on that axis;
    // explicit padding in any mode, 'same' (stride 1, even kernels included) or 'valid'.
    private static Gen<LayerSpec> Convolution(SampleShape shape, Budget budget) =>
        from groups in Gen.Elements(Divisors(shape.Channels))
        from perGroup in OutputsPerGroup(groups, budget)
        from padding in Gen.Frequency((4, Gen.Constant(ConvPadding.Explicit)), (1, Gen.Constant(ConvPadding.Same)),
            (1, Gen.Constant(ConvPadding.Valid)))
        from axes in Axes(shape.Spatial, size => ConvolutionAxes(size, padding))
        from bias in Gen.Frequency((4, Gen.Constant(true)), (1, Gen.Constant(false)))
        let zeros = new ConvSpec(groups * perGroup, axes, groups, bias, PaddingModes.Zeros, padding)
        // Padding modes with explicit padding only: TorchSharp 0.107 pads 'same' in another mode along the wrong axes.
        from mode in Gen.Frequency(new[] { PaddingModes.Zeros, PaddingModes.Reflect, PaddingModes.Replicate,
                PaddingModes.Circular }
            .Where(m => m == PaddingModes.Zeros || padding == ConvPadding.Explicit)
            .Where(m => (zeros with { Mode = m }).Apply(shape) is not null)
            .Select(m => (m == PaddingModes.Zeros ? 3 : 1, Gen.Constant(m))).ToArray())
        select (LayerSpec)(zeros with { Mode = mode });

    private static ConvAxis[] ConvolutionAxes(long size, ConvPadding padding) =>
    [
        .. from k in new long[] { 1, 2, 3 }
           from d in new long[] { 1, 2 }
           from p in padding == ConvPadding.Explicit ? new long[] { 0, 1, 2 } : [0]
           from s in padding == ConvPadding.Same ? new long[] { 1 } : [1, 2]
           let axis = new ConvAxis(k, s, p, d)
           where !(k == 1 && d > 1) && p <= d * (k - 1)
               && (padding == ConvPadding.Same || size + 2 * p >= axis.Span)
           select axis,
    ];

    // Transposed: per axis (kernel, stride, padding, dilation) with a positive output size; output padding 1 where
    // every axis allows it.
    private static Gen<LayerSpec> TransposedConvolution(SampleShape shape, Budget budget) =>
        from groups in Gen.Elements(Divisors(shape.Channels))
        from perGroup in OutputsPerGroup(groups, budget)
        from axes in Axes(shape.Spatial, size =>
        [
            .. from k in new long[] { 1, 2, 3 }
               from d in new long[] { 1, 2 }
               from p in new long[] { 0, 1 }
               from s in new long[] { 1, 2 }
               let axis = new ConvAxis(k, s, p, d)
               where !(k == 1 && d > 1) && (size - 1) * s - 2 * p + axis.Span >= 1
               select axis,
        ])
        from outputPadding in axes.All(a => Math.Max(a.Stride, a.Dilation) > 1) ? Gen.Elements(0L, 1L)
            : Gen.Constant(0L)
        from bias in Gen.Frequency((4, Gen.Constant(true)), (1, Gen.Constant(false)))
        select (LayerSpec)new ConvTransposeSpec(groups * perGroup, axes, groups, outputPadding, bias);

    // One axis per spatial size, each drawn independently from its own options.
    private static Gen<ConvAxis[]> Axes(long[] sizes, Func<long, ConvAxis[]> options) =>
        sizes.Aggregate(Gen.Constant(Array.Empty<ConvAxis>()), (prefix, size) =>
            from axes in prefix
            from axis in Gen.Elements(options(size))
            select (ConvAxis[])[.. axes, axis]);

    // InstanceNorm: with instance statistics only where a normalisation is allowed (see Body); tracked statistics in
    // eval mode (a fixed affine map) anywhere.
    private static Gen<LayerSpec> InstanceNorm(bool normalizationAllowed) =>
        from affine in Gen.Elements(true, false)
        from tracked in normalizationAllowed ? Gen.Elements(true, false) : Gen.Constant(true)
        from training in normalizationAllowed ? Gen.Elements(true, false) : Gen.Constant(false)
        select (LayerSpec)new InstanceNormSpec(affine, tracked, training);

    // Output channels per group; totals with a divisor other than 1 and themselves (room for GroupNorm groups of
    // several channels) twice as often.
    private static Gen<long> OutputsPerGroup(long groups, Budget budget) =>
        Gen.Frequency(Enumerable.Range(1, Math.Max(1, budget.Width / (int)groups))
            .Select(m => (Divisors(m * groups).Length > 2 ? 2 : 1, Gen.Constant((long)m)))
            .ToArray());

    // A stride-1 convolution with C -> C channels and 'same' zero padding (odd kernel): for residual blocks and
    // sharing.
    private static Gen<ConvSpec> ShapeKeepingConvolution(SampleShape shape) =>
        from groups in Gen.Elements(Divisors(shape.Channels))
        from geometry in Gen.Elements((1L, 1L), (3L, 1L), (3L, 2L))
        let axis = new ConvAxis(geometry.Item1, 1, geometry.Item2 * (geometry.Item1 - 1) / 2, geometry.Item2)
        select new ConvSpec(shape.Channels, [.. Enumerable.Repeat(axis, shape.Spatial.Length)], groups);

    // A residual block around a Linear or a shape-keeping convolution, with a claimed normalisation now and then.
    private Gen<LayerSpec> Residual(SampleShape shape)
    {
        bool vectors = shape.Kind is ShapeKind.Features or ShapeKind.Tokens;
        var first = vectors
            ? Gen.Constant((LayerSpec)new LinearSpec(shape.Channels))
            : ShapeKeepingConvolution(shape).Select(c => (LayerSpec)c);
        var normalization = vectors
            ? !Has(typeof(LayerNorm)) || new LayerNormSpec().Apply(shape) is null
                ? null
                : Gen.Constant((LayerSpec)new LayerNormSpec())
            : !Has(typeof(GroupNorm)) || GroupCounts(shape).Length == 0 ? null : GroupNorm(shape);
        return
            from head in first
            from norm in normalization is null
                ? Gen.Constant((LayerSpec?)null)
                : Gen.OneOf(Gen.Constant((LayerSpec?)null), normalization.Select(n => (LayerSpec?)n))
            from activation in norm is not null
                ? Gen.Elements(ActivationKind.Tanh, ActivationKind.GELU)
                : Gen.Elements(Enum.GetValues<ActivationKind>())
            select (LayerSpec)new ResidualSpec(norm is not null
                ? [head, new ActivationSpec(activation), norm]
                : [head, new ActivationSpec(activation)]);
    }

    private static long[] Divisors(long n) => [.. Enumerable.Range(1,
        (int)n).Select(d => (long)d).Where(d => n % d == 0)];

    // Body positions (insert before body[i]; Count = after the body) where a fault layer fits; for an empty batch, one.
    private static int[] Positions(CaseSpec valid, Fault fault)
    {
        if (fault == Fault.EmptyBatch) return [0];
        var shapes = valid.Architecture.Shapes()!;
        var layer = new InvalidCaseSpec(valid, fault, 0).FaultLayer!;
        return [.. Enumerable.Range(0, shapes.Count).Where(i => layer.Apply(shapes[i]) is not null)];
    }

    /// <summary>Valid simpler cases, the boldest first.</summary>
    public static IEnumerable<CaseSpec> ShrinkCase(CaseSpec c) => Candidates(c).Where(x => x.IsValid);

    private static IEnumerable<InvalidCaseSpec> ShrinkInvalidCase(InvalidCaseSpec c) =>
        ShrinkCase(c.Valid)
            .SelectMany(valid => new[] { c with { Valid = valid },
                c with { Valid = valid, Position = Math.Max(0, c.Position - 1) } })
            .Where(x => x.IsValid);

    private static IEnumerable<CaseSpec> Candidates(CaseSpec c)
    {
        var architecture = c.Architecture;
        var body = architecture.Body;
        if (c.BatchSize > 1) yield return c with { BatchSize = 1 };
        if (c.BatchSize > 3) yield return c with { BatchSize = 2 };
        if (c.BatchSize > 2) yield return c with { BatchSize = c.BatchSize - 1 };
        for (int i = 0; i < body.Count; i++)
            yield return WithBody(c, [.. body.Take(i), .. body.Skip(i + 1)]);
        for (int i = 0; i < body.Count; i++)
        {
            var inner = body[i] switch
            {
                ResidualSpec residual => residual.Body,
                SharedTwiceSpec twice => [twice.Shared],
                SequenceFirstSpec sequenceFirst => [sequenceFirst.Inner],
                _ => null,
            };
            if (inner is not null) yield return WithBody(c, [.. body.Take(i), .. inner, .. body.Skip(i + 1)]);
        }
        for (int i = 0; i < body.Count; i++)
            foreach (var simpler in body[i].Simpler())
                yield return WithBody(c, [.. body.Take(i), simpler, .. body.Skip(i + 1)]);
        var input = architecture.Input;
        for (int d = 0; d < input.Dims.Length; d++)
            if (input.Dims[d] > 1)
                yield return c with { Architecture = architecture with
                    { Input = input.With([.. input.Dims.Select((x, j) => j == d ? x - 1 : x)]) } };
        if (input.Vocabulary > 2)
            yield return c with { Architecture = architecture with
                { Input = input with { Vocabulary = input.Vocabulary - 1 } } };
        if (architecture.Outputs > 1) yield return c with { Architecture =
            architecture with { Outputs = architecture.Outputs - 1 } };
    }

    private static CaseSpec WithBody(CaseSpec c, List<LayerSpec> body)
        => c with { Architecture = c.Architecture with { Body = body } };
}
