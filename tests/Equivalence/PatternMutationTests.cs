using TorchSharp.Modules;
using PerSampleGrads.Runs;
using PerSampleGrads.Engines;
using PerSampleGrads.Engines.Functional;
using PerSampleGrads.Engines.Hooks;
using PerSampleGrads.Engines.Hooks.Rules;
using PerSampleGrads.Oracle;
using PerSampleGrads.Checking;
using PerSampleGrads.Zoo;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace PerSampleGrads.Tests;

/// <summary>
/// Planted bugs in the engines' handling of real-world patterns (tied parameters, batch layout, the audit, grad
/// modes): each must be caught by the pattern checks, and the engines as shipped must pass the same checks.
/// </summary>
[Trait("Category", "Mutation")]
public sealed class PatternMutationTests(ITestOutputHelper output)
{
    private static readonly LossFunction Loss = LossFunction.CrossEntropy();

    /// <summary>A pattern check: null when the engine passes it, else what went wrong.</summary>
    private delegate string? Check(Func<IPerSampleGradientMethod> engine);

    private static readonly (string Name, Check Check)[] Checks =
    [
        ("tied parameter", engine => AgreesWithOracle(engine, PatternModels.TiedEmbeddingClassifier(),
            randint(0, 7, [5, 3]), randint(0, 3, [5]))),
        ("sequence-first, T = N", engine => AgreesWithOracle(engine, PatternModels.SequenceFirst(),
            randn([3, 3, 4]), randint(0, 3, [3]))),
        ("no_grad caller", engine =>
        {
            using var model = ModelZoo.SmallCnn.Build(1);
            var (x, y) = ModelZoo.SmallCnn.MakeBatch(3, 2);
            using var truth = new PerSampleGradientOracle().Compute(model, x, y, Loss);
            using var off = no_grad();
            return Disagreement(engine, model, x, y, truth);
        }),
        ("audit of a wrong rule", engine =>
        {
            using var model = ModelZoo.SmallCnn.Build(1);
            var (x, y) = ModelZoo.SmallCnn.MakeBatch(3, 2);
            try
            {
                using var result = engine().Compute(model, x, y, Loss);
                return result.Audit is { Passed: true } ? "the audit passed a wrong result" : null;
            }
            catch (PerSampleGradientsException e) when (e.Problem == Problem.AuditFailed)
            {
                return null;
            }
        }),
    ];

    private static string? AgreesWithOracle(Func<IPerSampleGradientMethod> engine, Module<Tensor, Tensor> model,
        Tensor x, Tensor y)
    {
        using (model)
        {
            using var truth = new PerSampleGradientOracle().Compute(model, x, y, Loss);
            return Disagreement(engine, model, x, y, truth);
        }
    }

    private static string? Disagreement(Func<IPerSampleGradientMethod> engine, Module<Tensor, Tensor> model, Tensor x,
        Tensor y, PerSampleGradients truth)
    {
        try
        {
            using var result = engine().Compute(model, x, y, Loss);
            var comparison = GradientComparison.Compare(result, truth,
                TolerancePolicy.ToleranceFor(ScalarType.Float32));
            return comparison.Passed ? null : comparison.Describe();
        }
        catch (PerSampleGradientsException e)
        {
            return $"{e.Problem}: {e.Message}";
        }
    }

    // The audit check needs an engine whose rule is wrong; the audit must notice.
    private static Dictionary<Type, PerSampleRule> WrongLinearRule() => new(HookRules.Default)
    {
        [typeof(Linear)] = (call, sink) => LinearRule.Compute(call with { OutputGradient = call.OutputGradient * 1.5 },
            sink),
    };

    private static readonly (string Name, string Check, Func<IPerSampleGradientMethod> Engine, bool Planted)[] Engines =
    [
        ("hooks as shipped", "tied parameter", () => new HookEngine(), false),
        ("hooks as shipped", "sequence-first, T = N", () => new HookEngine(), false),
        ("hooks as shipped", "no_grad caller", () => new HookEngine(), false),
        ("functional as shipped", "no_grad caller", () => new FunctionalEngine(), false),
        ("hooks with a wrong rule, audited", "audit of a wrong rule",
            () => new HookEngine(new HookEngineOptions { AuditSamples = 1 }, WrongLinearRule()), false),
        ("tied-parameter-counted-once", "tied parameter", PlantedBugs.TiedParameterCountedOnce, true),
        ("batch-dimension-assumed-zero", "sequence-first, T = N", PlantedBugs.BatchDimensionAssumedZero, true),
        ("grad-mode-ignored (hooks)", "no_grad caller", () => PlantedBugs.GradModeIgnored(() => new HookEngine()),
            true),
        ("grad-mode-ignored (functional)", "no_grad caller",
            () => PlantedBugs.GradModeIgnored(() => new FunctionalEngine()), true),
        // The audit's reference is the engine under test: it agrees with any result, like an audit that never
        // compares.
        ("audit-compares-with-itself", "audit of a wrong rule",
            () => new HookEngine(new HookEngineOptions
            {
                AuditSamples = 1,
                AuditReference = new HookEngine(rules: WrongLinearRule()),
            }, WrongLinearRule()), true),
    ];

    [Fact]
    public void Every_planted_pattern_bug_is_caught_and_the_shipped_engines_pass()
    {
        TestSettings.RequireTorch();
        var wrong = new List<string>();
        foreach (var (name, checkName, engine, planted) in Engines)
        {
            manual_seed(1);
            var failure = Checks.Single(c => c.Name == checkName).Check(engine);
            bool caught = failure is not null;
            output.WriteLine($"{name,-36} {checkName,-24} {(caught ? "caught" : "passes")}");
            if (caught != planted) wrong.Add($"{name} on '{checkName}': {failure ?? "not caught"}");
        }
        Assert.Empty(wrong);
    }
}
