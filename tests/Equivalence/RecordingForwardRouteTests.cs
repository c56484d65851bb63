using TorchSharp.Modules;
using PerSampleGrads.Cases;
using PerSampleGrads.Checking;
using PerSampleGrads.Testing.Checks;
using PerSampleGrads.Engines.Hooks;
using PerSampleGrads.Engines.Hooks.Rules;
using PerSampleGrads.Zoo;
using static TorchSharp.torch;

namespace PerSampleGrads.Tests;

/// <summary>
/// The hook engine's two routes to the per-sample gradients of a layer it can compute itself (recurrent layers,
/// MultiheadAttention): the recording forward (the engine runs the layer and the model's backward records the
/// gradients inside it; the default) and the rerun from the call's inputs and output gradients (taken when the
/// caller's hooks sit on the layer, which must see the real batch).
/// </summary>
[Trait("Category", "Equivalence")]
public sealed class RecordingForwardRouteTests
{
    private static readonly Type[] RecurrentLayers =
        [typeof(LSTM), typeof(GRU), typeof(RNN), typeof(LSTMCell), typeof(GRUCell), typeof(RNNCell)];

    public RecordingForwardRouteTests() => TestSettings.RequireTorch();

    public static TheoryData<string> RecordedCases => new(CaseCatalogue.Layers.Select(c => c.Id)
        .Where(id => RecordedFamilies.Any(p => id.StartsWith(p, StringComparison.Ordinal))));

    private static readonly string[] RecordedFamilies = ["lstm", "gru", "rnn", "attention-"];

    [Theory]
    [MemberData(nameof(RecordedCases))]
    public void Both_routes_agree_with_the_float64_oracle(string caseId)
    {
        var gradientCase = CaseCatalogue.Get(caseId);
        var truth = OracleCache.Float64(gradientCase);
        var tolerance = TolerancePolicy.ToleranceFor(ScalarType.Float64);
        int recorded = 0;
        var counting = HookRules.RecordingForwards.ToDictionary(entry => entry.Key,
            entry => (RecordingForward)((layer, path, arguments, axes, tape) =>
            {
                recorded++;
                return entry.Value(layer, path, arguments, axes, tape);
            }));
        var rerunning = new Dictionary<Type, RecordingForward>();
        foreach (var engine in new[] { new HookEngine(forwards: counting), new HookEngine(forwards: rerunning) })
        {
            using var problem = gradientCase.Create(ScalarType.Float64);
            using var actual = problem.Run(engine);
            GradientAssert.Passed(GradientComparison.Compare(actual, truth, tolerance));
        }
        Assert.True(recorded > 0, "the recording forward was not used");
    }

    [Fact]
    public void Every_recurrent_layer_and_attention_have_a_recording_forward_by_default() =>
        Assert.All([.. RecurrentLayers, typeof(MultiheadAttention)],
            t => Assert.True(HookRules.RecordingForwards.ContainsKey(t), t.Name));

    [Fact]
    public void A_callers_hook_on_the_layer_never_sees_the_one_sample_stand_in_and_the_result_is_right()
    {
        var gradientCase = CaseCatalogue.FromZoo(ModelZoo.Lstm, 5);
        using var problem = gradientCase.Create(ScalarType.Float64);
        var lstm = problem.Model.modules().OfType<LSTM>().Single();
        var seen = new List<long>();
        var handle = lstm.register_forward_hook((_, input, _, output) =>
        {
            seen.Add(input.shape[0]);
            return output;
        });
        try
        {
            using var actual = problem.Run(new HookEngine());
            GradientAssert.Passed(GradientComparison.Compare(actual, OracleCache.Float64(gradientCase),
                TolerancePolicy.ToleranceFor(ScalarType.Float64)));
            // The probe's forwards run on the batch and on two samples; the engine's on the batch, never one sample.
            Assert.Contains(5L, seen);
            Assert.DoesNotContain(1L, seen);
        }
        finally
        {
            handle.remove();
        }
    }
}
