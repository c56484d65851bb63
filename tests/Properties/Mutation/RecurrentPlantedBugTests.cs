using TorchSharp.Modules;
using PerSampleGrads.Cases;
using PerSampleGrads.Checking;
using PerSampleGrads.Engines.Hooks;
using PerSampleGrads.Engines.Hooks.Rules;
using static TorchSharp.torch;

namespace PerSampleGrads.Tests.Mutation;

/// <summary>
/// Planted bugs in the recurrent rule, each through a hook-engine rule table with the recurrent entries replaced by a
/// rule of <see cref="BuggyRules"/>: each must disagree with the float64 oracle on at least one recurrent catalogue
/// case, and the shipped rule must agree on every one of them. (The property generators do not build recurrent
/// layers yet, so the catalogue cases are the suite that kills these.)
/// </summary>
[Trait("Category", "Mutation")]
public sealed class RecurrentPlantedBugTests(ITestOutputHelper output)
{
    private static readonly Type[] RecurrentLayers =
        [typeof(LSTM), typeof(GRU), typeof(RNN), typeof(LSTMCell), typeof(GRUCell), typeof(RNNCell)];

    private static readonly string[] RecurrentCaseIds = [.. CaseCatalogue.Layers.Select(c => c.Id)
        .Where(id => id.StartsWith("lstm", StringComparison.Ordinal) || id.StartsWith("gru", StringComparison.Ordinal)
            || id.StartsWith("rnn", StringComparison.Ordinal))];

    public static TheoryData<string> Bugs => new(Planted.Keys);

    private static readonly Dictionary<string, PerSampleRule> Planted = new()
    {
        ["state-after-the-step"] = BuggyRules.RecurrentWithTheStateAfterTheStep,
        ["gru-reset-gate-ignored"] = BuggyRules.RecurrentIgnoringTheResetGate,
        ["reverse-direction-in-processing-order"] = BuggyRules.RecurrentReverseDirectionInProcessingOrder,
    };

    [Theory]
    [MemberData(nameof(Bugs))]
    public void A_planted_recurrent_bug_is_caught_by_a_catalogue_case(string bug)
    {
        TestSettings.RequireTorch();
        var caught = RecurrentCaseIds.Where(id => !Agrees(id, Planted[bug])).ToList();
        output.WriteLine($"{bug}: caught by {string.Join(", ", caught)}");
        Assert.NotEmpty(caught);
    }

    [Fact]
    public void The_shipped_recurrent_rule_agrees_on_every_recurrent_case()
    {
        TestSettings.RequireTorch();
        var disagreeing = RecurrentCaseIds.Where(id => !Agrees(id, RecurrentRule.Compute)).ToList();
        Assert.True(disagreeing.Count == 0, $"The shipped rule disagrees on {string.Join(", ", disagreeing)}");
        Assert.NotEmpty(RecurrentCaseIds);
    }

    private static bool Agrees(string caseId, PerSampleRule rule)
    {
        var rules = new Dictionary<Type, PerSampleRule>(HookRules.Default);
        foreach (var layer in RecurrentLayers) rules[layer] = rule;
        var gradientCase = CaseCatalogue.Get(caseId);
        using var problem = gradientCase.Create(ScalarType.Float64);
        using var actual = problem.Run(new HookEngine(rules: rules));
        return GradientComparison.Compare(actual, OracleCache.Float64(gradientCase),
            TolerancePolicy.ToleranceFor(ScalarType.Float64)).Passed;
    }
}
