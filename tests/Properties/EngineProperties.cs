using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using PerSampleGrads.Engines;
using PerSampleGrads.Engines.Functional;
using PerSampleGrads.Engines.Hooks;
using PerSampleGrads.Testing;
using PerSampleGrads.Testing.Checks;
using PerSampleGrads.Testing.Specs;
using static TorchSharp.torch;

namespace PerSampleGrads.Tests;

/// <summary>
/// The properties every engine must satisfy on generated architectures, batches and losses (see
/// <see cref="Arbitraries"/>). A failure prints the shrunk case as one line and the seed to replay it with
/// (<c>[Property(Replay = "(seed,gamma)")]</c>).
/// </summary>
[Trait("Category", "Properties")]
public abstract class EngineProperties
{
    /// <summary>Generated cases per property: enough to reach every layer kind and option several times.</summary>
    protected const int Runs = PropertyRuns.PerProperty;

    protected EngineProperties() => TestSettings.RequireTorch();

    /// <summary>The engine under test.</summary>
    protected abstract IPerSampleGradientMethod CreateEngine();

    /// <summary>The engine under test, auditing <paramref name="samples"/> samples per call.</summary>
    protected abstract IPerSampleGradientMethod CreateAuditedEngine(int samples);

    [Property(Arbitrary = [typeof(Arbitraries)], MaxTest = Runs)]
    public Property Float32_per_sample_gradients_match_the_float64_oracle_within_the_float32_tolerance(Float32CaseSpec
        c) =>
        Classified(() => GradientChecks.MatchesOracle(CreateEngine, c.Case, ScalarType.Float32), c.Case);

    [Property(Arbitrary = [typeof(Arbitraries)], MaxTest = Runs)]
    public Property Float64_per_sample_gradients_match_the_float64_oracle_within_the_float64_tolerance(CaseSpec c) =>
        Classified(() => GradientChecks.MatchesOracle(CreateEngine, c, ScalarType.Float64), c);

    [Property(Arbitrary = [typeof(Arbitraries)], MaxTest = Runs)]
    public Property Per_sample_gradients_sum_to_the_batch_gradient_of_the_summed_loss(CaseSpec c) =>
        Classified(() => GradientChecks.SumsToTheBatchGradient(CreateEngine, c), c);

    [Property(Arbitrary = [typeof(Arbitraries)], MaxTest = Runs)]
    public Property Permuting_the_batch_permutes_the_per_sample_gradients(CaseSpec c) =>
        Classified(() => GradientChecks.PermutationPermutesTheGradients(CreateEngine, c), c);

    [Property(Arbitrary = [typeof(Arbitraries)], MaxTest = Runs)]
    public Property Duplicating_a_sample_duplicates_its_gradient_and_leaves_the_others_unchanged(CaseSpec c) =>
        Classified(() => GradientChecks.DuplicatingASampleDuplicatesItsGradient(CreateEngine, c), c);

    [Property(Arbitrary = [typeof(Arbitraries)], MaxTest = Runs)]
    public Property Mean_and_sum_reductions_give_the_documented_per_sample_gradients(CaseSpec c) =>
        Classified(() => GradientChecks.MeanAndSumFollowTheDocumentedRelation(CreateEngine, c), c);

    [Property(Arbitrary = [typeof(Arbitraries)], MaxTest = Runs)]
    public Property The_self_audit_passes_and_agrees_with_the_full_comparison(CaseSpec c) =>
        Classified(() => GradientChecks.SelfAuditAgreesWithTheOracle(() => CreateAuditedEngine(2), c), c);

    [Property(Arbitrary = [typeof(Arbitraries)], MaxTest = Runs)]
    public void Invalid_configurations_raise_the_documented_problem(InvalidCaseSpec c) =>
        GradientChecks.InvalidConfigurationIsRefused(CreateRefusingEngine, c);

    /// <summary>The engine under test with the per-sample rerun fallback refused (a layer without a rule is a
    /// fault).</summary>
    protected abstract IPerSampleGradientMethod CreateRefusingEngine();

    // Reports what the generated cases exercised (FsCheck prints the distribution on success).
    internal static Property Classified(Action check, CaseSpec c)
    {
        var property = Prop.ToProperty(check);
        foreach (var exercised in c.Exercises()) property = property.Classify(true, exercised);
        return property;
    }
}

public sealed class HookEngineProperties : EngineProperties
{
    protected override IPerSampleGradientMethod CreateEngine() => new HookEngine();

    protected override IPerSampleGradientMethod CreateAuditedEngine(int samples) =>
        new HookEngine(new HookEngineOptions { AuditSamples = samples });

    protected override IPerSampleGradientMethod CreateRefusingEngine() =>
        new HookEngine(new HookEngineOptions { UnsupportedLayers = UnsupportedLayerPolicy.Refuse });
}

public sealed class FunctionalEngineProperties : EngineProperties
{
    protected override IPerSampleGradientMethod CreateEngine() => new FunctionalEngine();

    protected override IPerSampleGradientMethod CreateAuditedEngine(int samples) =>
        new FunctionalEngine(new FunctionalEngineOptions { AuditSamples = samples });

    protected override IPerSampleGradientMethod CreateRefusingEngine() =>
        new FunctionalEngine(new FunctionalEngineOptions { UnsupportedLayers = UnsupportedLayerPolicy.Refuse });

    [Property(Arbitrary = [typeof(Arbitraries)], MaxTest = Runs)]
    public Property Chunked_runs_give_the_unchunked_result(CaseSpec c) =>
        Classified(() => GradientChecks.ChunkedRunsGiveTheUnchunkedResult(
            chunk => new FunctionalEngine(new FunctionalEngineOptions { ChunkSize = chunk }), c), c);
}

[Trait("Category", "Properties")]
public sealed class CrossEngineProperties
{
    public CrossEngineProperties() => TestSettings.RequireTorch();

    [Property(Arbitrary = [typeof(Arbitraries)], MaxTest = PropertyRuns.PerProperty)]
    public Property The_hook_and_functional_engines_agree(CaseSpec c) =>
        EngineProperties.Classified(() => GradientChecks.HooksAgreeWithFunctional(() => new HookEngine(),
            () => new FunctionalEngine(), c), c);
}

/// <summary>How many generated cases each property runs.</summary>
public static class PropertyRuns
{
    /// <summary>Cases per property in the ordinary suite (Category=Properties).</summary>
    public const int PerProperty = 50;
}
