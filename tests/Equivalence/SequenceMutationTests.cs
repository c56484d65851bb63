using PerSampleGrads.Engines.Probing;
using TorchSharp.Modules;
using PerSampleGrads.Cases;
using PerSampleGrads.Engines.Functional;
using PerSampleGrads.Engines.Functional.Layers;
using PerSampleGrads.Engines.Hooks;
using PerSampleGrads.Engines.Hooks.Rules;
using PerSampleGrads.Maths;
using static TorchSharp.torch;

namespace PerSampleGrads.Tests;

/// <summary>
/// Planted bugs in the EmbeddingBag, MultiheadAttention and Transformer-layer rules, injected through the hook
/// engine's rule table: each must disagree with the float64 oracle on at least one catalogue case of its layer, and
/// the shipped rules must agree on every one of those cases (else a kill would prove nothing).
/// </summary>
[Trait("Category", "Mutation")]
public sealed class SequenceMutationTests(ITestOutputHelper output)
{
    public static TheoryData<string> Bugs => new(PlantedBugs.Keys);

    // The attention rule's two routes: from the engine's own forward of the layer (the default) and rerun from the
    // call (taken when the caller's hooks sit on the layer); a bug planted in the rule's rerun is run without the
    // recording forward.
    private static readonly Dictionary<string, (string CasePrefix, Func<HookEngine> Mutated)> PlantedBugs = new()
    {
        // The attention core without the 1/sqrt(d) score scale, in the rerun and in the recording forward.
        ["attention-forgets-scale"] = ("attention-", () => Rerunning(typeof(MultiheadAttention),
            (call, sink) => MultiheadAttentionRule.Compute(call, sink, 1.0))),
        ["attention-forward-forgets-scale"] = ("attention-", () => Recording(typeof(MultiheadAttention),
            (layer, path, arguments, axes, tape) =>
                MultiheadAttentionRule.ScaledForward(layer, path, arguments, axes, tape, 1.0))),
        // The attention core without the key padding and attention masks, in the rerun and in the recording forward.
        ["attention-ignores-masks"] = ("attention-", () => Rerunning(typeof(MultiheadAttention),
            (call, sink) => MultiheadAttentionRule.Compute(call with { Arguments = [.. call.Arguments.Take(3), null,
                call.Arguments[4], null] }, sink))),
        ["attention-forward-ignores-masks"] = ("attention-", () => Recording(typeof(MultiheadAttention),
            (layer, path, arguments, axes, tape) => MultiheadAttentionRule.Forward(layer, path,
                [.. arguments.Take(3), null, arguments[4], null], axes, tape))),
        // The bag rule in mean mode adds every row with coefficient 1, as in sum mode.
        ["bag-ignores-mean-mode"] = ("bag-", () => Rerunning(typeof(EmbeddingBag), BagAsSum)),
        // The native Transformer decoder layer recomposed without its four masks.
        ["transformer-rule-ignores-masks"] = ("transformer-", () => Rerunning(typeof(TransformerDecoderLayer),
            (call, sink) => TransformerLayerRule.Compute(call with { Arguments = [.. call.Arguments.Take(2), null, null,
                null, null] }, sink))),
    };

    [Theory]
    [MemberData(nameof(Bugs))]
    public void A_planted_bug_disagrees_with_the_oracle_on_a_case_of_its_layer_where_the_shipped_rule_agrees(
        string bug)
    {
        TestSettings.RequireTorch();
        var (prefix, mutated) = PlantedBugs[bug];
        AssertKilled(output, bug, prefix, () => new HookEngine(), mutated);
    }

    // The hook engine with `rule` for `layer` and no recording forward at all.
    private static HookEngine Rerunning(Type layer, PerSampleRule rule) =>
        new(rules: new Dictionary<Type, PerSampleRule>(HookRules.Default) { [layer] = rule },
            forwards: new Dictionary<Type, RecordingForward>());

    // The hook engine with `forward` as the recording forward of `layer`.
    private static HookEngine Recording(Type layer, RecordingForward forward) =>
        new(forwards: new Dictionary<Type, RecordingForward>(HookRules.RecordingForwards) { [layer] = forward });

    /// <summary>
    /// On every catalogue case whose id starts with <paramref name="prefix"/>: the shipped method agrees with the
    /// float64 oracle; the mutated one must disagree on at least one of them.
    /// </summary>
    internal static void AssertKilled(ITestOutputHelper output, string bug, string prefix,
        Func<IPerSampleGradientMethod> shipped, Func<IPerSampleGradientMethod> mutated)
    {
        var kills = new List<string>();
        var tolerance = Checking.TolerancePolicy.ToleranceFor(ScalarType.Float64);
        foreach (var gradientCase in CaseCatalogue.All.Where(c => c.Id.StartsWith(prefix, StringComparison.Ordinal)))
        {
            var expected = OracleCache.Float64(gradientCase);
            using var problem = gradientCase.Create(ScalarType.Float64, TestSettings.Device);
            using (var result = problem.Run(shipped())) GradientAssert.Agree(result, expected, ScalarType.Float64);
            using var wrong = problem.Run(mutated());
            if (!Checking.GradientComparison.Compare(wrong, expected, tolerance).Passed) kills.Add(gradientCase.Id);
        }
        output.WriteLine($"{bug}: killed by {string.Join(", ", kills)}");
        Assert.True(kills.Count > 0, $"No '{prefix}*' catalogue case catches '{bug}'.");
    }

    private static void BagAsSum(LayerCall call, ILayerGradientSink sink)
    {
        var bag = (EmbeddingBag)call.Layer;
        var behaviour = EmbeddingBagInspection.Inspect(bag, call.Path) with { Reduction = BagReduction.Sum };
        var g = call.OutputGradient;
        var positions = BagPositions.Of(call.Input, call.Argument(1), call.Argument(2), behaviour, g.dtype);
        long rows = bag.weight!.shape[0], n = positions.Bags;
        var values = g.index_select(0, positions.Sample) * positions.Coefficient.unsqueeze(1);
        sink.Add("weight", zeros([n * rows, g.shape[1]], dtype: g.dtype).index_add_(0,
            positions.Sample * rows + positions.Ids, values, 1).reshape(n, rows, g.shape[1]));
    }
}

/// <summary>
/// Planted bugs in the functional engine's recomposed Transformer layers, injected through its forward table: each
/// must disagree with the float64 oracle on a Transformer catalogue case where the shipped forward agrees.
/// </summary>
[Trait("Category", "Mutation")]
public sealed class TransformerMutationTests(ITestOutputHelper output)
{
    public static TheoryData<string> Bugs => new(PlantedBugs.Keys);

    private static readonly Dictionary<string, (Type Layer, BatchedForward Forward)> PlantedBugs = new()
    {
        // The decoder recomposed without its four masks (the causal target mask, the memory's key padding).
        ["decoder-ignores-masks"] = (typeof(TransformerDecoderLayer), call => TransformerLayerForward.Decoder(call
            with { Arguments = [.. call.Arguments.Take(2), null, null, null, null] })),
        // The encoder's per-sample parameters replaced by their shared value: right output, no per-sample gradient.
        ["encoder-shares-parameters"] = (typeof(TransformerEncoderLayer), call => TransformerLayerForward.Encoder(
            call with { Parameters = Shared(call.Parameters) })),
    };

    private static SampleParameters Shared(SampleParameters perSample)
    {
        var shared = perSample.Names.ToDictionary(n => n, n => perSample.Shared(n)!);
        long k = perSample[perSample.Names.First()]!.shape[0];
        return new SampleParameters(shared.ToDictionary(p => p.Key, p => p.Value.unsqueeze(0).expand(
            [k, .. p.Value.shape])), shared);
    }

    [Theory]
    [MemberData(nameof(Bugs))]
    public void A_planted_bug_disagrees_with_the_oracle_on_a_Transformer_case_where_the_shipped_forward_agrees(
        string bug)
    {
        TestSettings.RequireTorch();
        var (layer, forward) = PlantedBugs[bug];
        var forwards = new Dictionary<Type, BatchedForward>(FunctionalRules.Default) { [layer] = forward };
        SequenceMutationTests.AssertKilled(output, bug, "transformer-", () => new FunctionalEngine(),
            () => new FunctionalEngine(forwards: forwards));
    }
}
