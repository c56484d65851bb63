using TorchSharp.Modules;
using PerSampleGrads.Engines.Functional;
using PerSampleGrads.Engines.Hooks;
using PerSampleGrads.Engines.Hooks.Rules;

namespace PerSampleGrads.Tests.Mutation;

/// <summary>Which engine a mutant changes.</summary>
public enum EngineKind
{
    /// <summary>The hook engine.</summary>
    Hooks,
    /// <summary>The functional engine.</summary>
    Functional,
}

/// <summary>The two engines a property run uses: the functional one takes an optional chunk size.</summary>
public sealed record EngineSet(Func<IPerSampleGradientMethod> Hooks, Func<int?, IPerSampleGradientMethod> Functional)
{
    /// <summary>The engines as shipped.</summary>
    public static EngineSet Correct { get; } = new(() => new HookEngine(),
        chunk => new FunctionalEngine(new FunctionalEngineOptions { ChunkSize = chunk }));
}

/// <summary>
/// An engine with one planted bug.
/// </summary>
/// <param name="Name">Short name for the kill table.</param>
/// <param name="Bug">What is wrong, in words.</param>
/// <param name="Engine">The engine that carries the bug.</param>
/// <param name="Engines">Both engines, one of them mutated.</param>
public sealed record Mutant(string Name, string Bug, EngineKind Engine, EngineSet Engines)
{
    /// <summary>The engine under test, unchunked.</summary>
    public Func<IPerSampleGradientMethod> UnderTest => Engine == EngineKind.Hooks ? Engines.Hooks : ()
        => Engines.Functional(null);

    /// <inheritdoc/>
    public override string ToString() => Name;
}

/// <summary>
/// Every planted bug, one at a time: engine-level ones through the engines' public seams (<see cref="PlantedBugs"/>:
/// a decorated rule or forward table, a test-only loss), rule-level ones through a hook-engine rule table with one
/// entry replaced by a rule of <see cref="BuggyRules"/>.
/// </summary>
public static class Mutants
{
    /// <summary>No bug: the control, which must survive every property.</summary>
    public static Mutant Control { get; } = new("none (control)", "the engines as shipped", EngineKind.Hooks,
        EngineSet.Correct);

    /// <summary>The planted bugs.</summary>
    public static IReadOnlyList<Mutant> All { get; } =
    [
        Hooks("mean-not-rescaled", "hooks differentiate the declared mean loss and never rescale by N",
            PlantedBugs.MeanNotRescaled),
        Hooks("conv2d-ignores-dilation", "the Conv2d rule unfolds with dilation 1",
            () => new HookEngine(rules: Replacing((typeof(Conv2d), BuggyRules.ConvolutionIgnoringDilation)))),
        Hooks("conv-ignores-groups", "the Conv1d/Conv2d rule contracts every group with the first group's input " +
            "channels",
            () => new HookEngine(rules: Replacing((typeof(Conv1d), BuggyRules.ConvolutionIgnoringGroups),
                (typeof(Conv2d), BuggyRules.ConvolutionIgnoringGroups)))),
        Hooks("linear-bias-wrong-dims", "the Linear bias gradient is summed over samples and positions, not " +
            "positions only",
            () => new HookEngine(rules: Replacing((typeof(Linear), BuggyRules.LinearBiasSummedOverTheBatch)))),
        Hooks("shared-module-overwritten", "a module called twice keeps only its last call's gradient",
            PlantedBugs.SharedModuleOverwritten),
        Hooks("linear-transposed-operands", "the Linear weight rule computes x g^T and reshapes it to [out, in]",
            () => new HookEngine(rules: Replacing((typeof(Linear), BuggyRules.LinearWithTransposedOperands)))),
        Hooks("groupnorm-wrong-axis", "the GroupNorm rule groups channels with stride G instead of in blocks",
            () => new HookEngine(rules: Replacing((typeof(GroupNorm), BuggyRules.GroupNormGroupingByTheWrongAxis)))),
        Hooks("embedding-padding-not-zeroed", "the Embedding rule leaves gradient in the padding_idx row",
            () => new HookEngine(rules: Replacing((typeof(Embedding), BuggyRules.EmbeddingKeepingThePaddingRow)))),
        new("functional-shared-parameter-copy", "the functional engine gives samples 0 and 1 one parameter copy",
            EngineKind.Functional, EngineSet.Correct with { Functional = PlantedBugs.SharedParameterCopy() }),
    ];

    private static Mutant Hooks(string name, string bug, Func<IPerSampleGradientMethod> hooks) =>
        new(name, bug, EngineKind.Hooks, EngineSet.Correct with { Hooks = hooks });

    private static Dictionary<Type, PerSampleRule> Replacing(params (Type Layer, PerSampleRule Rule)[] entries)
    {
        var rules = new Dictionary<Type, PerSampleRule>(HookRules.Default);
        foreach (var (layer, rule) in entries) rules[layer] = rule;
        return rules;
    }
}
