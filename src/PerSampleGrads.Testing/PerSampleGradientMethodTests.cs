using PerSampleGrads.Cases;
using PerSampleGrads.Runs;
using PerSampleGrads.Testing.Catalogue;
using PerSampleGrads.Testing.Checks;
using PerSampleGrads.Testing.SelfCheck;

namespace PerSampleGrads.Testing;

/// <summary>
/// The kit as an xunit v3 test class: derive from it in a test project, return your method from
/// <see cref="CreateMethod"/> and say what it supports in <see cref="Options"/>, and xunit runs the catalogue, the
/// properties, the precision diagnosis and the kit's self-check against it.
/// </summary>
/// <example>
/// <code>
/// public sealed class MyMethodTests : PerSampleGradientMethodTests
/// {
///     protected override IPerSampleGradientMethod CreateMethod() => new MyMethod();
///     protected override KitOptions Options { get; } = new() { Claims = MethodClaims.Only(typeof(Linear)) };
/// }
/// </code>
/// </example>
public abstract class PerSampleGradientMethodTests
{
    /// <summary>Loads TorchSharp's native library, failing with its one-line problem when it cannot.</summary>
    protected PerSampleGradientMethodTests() => TorchRuntime.EnsureLoaded();

    /// <summary>A fresh instance of the method under test.</summary>
    protected abstract IPerSampleGradientMethod CreateMethod();

    /// <summary>What the method claims and how it is checked (default: every layer, float32, CPU, 50 runs).</summary>
    protected virtual KitOptions Options => KitOptions.Default;

    /// <summary>Every catalogue case id (a case the method does not claim is skipped, with the reason).</summary>
    public static TheoryData<string> CatalogueCases => new(CatalogueChecks.CaseIds);

    /// <summary>The named case agrees with the float64 oracle; a float32 failure says whether it is rounding.</summary>
    [Theory]
    [MemberData(nameof(CatalogueCases))]
    public void Catalogue_case_agrees_with_the_float64_oracle(string caseId)
    {
        var gradientCase = CaseCatalogue.Get(caseId);
        if (CatalogueChecks.Excluded(gradientCase, Options) is { } reason) Assert.Skip($"{caseId}: {reason}.");
        try
        {
            CatalogueChecks.AgreesWithTheOracle(CreateMethod, gradientCase, Options);
        }
        catch (Exception) when (PlatformArithmetic.ExcuseForFailure(gradientCase, Options.DType, Options.Device)
            is { } excuse)
        {
            Assert.Skip(excuse);
        }
    }

    /// <summary>(1) Generated models: the method in the options' dtype agrees with the float64 oracle.</summary>
    [Fact]
    public void Per_sample_gradients_in_the_options_dtype_match_the_float64_oracle() =>
        KitProperties.Check(KitProperties.MatchesTheOracleInTheOptionsDType, CreateMethod, Options);

    /// <summary>(1f64) Generated models: the method in float64 agrees with the float64 oracle.</summary>
    [Fact]
    public void Per_sample_gradients_in_float64_match_the_float64_oracle() =>
        KitProperties.Check(KitProperties.MatchesTheOracleInFloat64, CreateMethod, Options);

    /// <summary>(2) The per-sample gradients sum to the batch gradient of the summed loss.</summary>
    [Fact]
    public void Per_sample_gradients_sum_to_the_batch_gradient_of_the_summed_loss() =>
        KitProperties.Check(KitProperties.SumsToTheBatchGradient, CreateMethod, Options);

    /// <summary>(3) Permuting the batch permutes the per-sample gradients.</summary>
    [Fact]
    public void Permuting_the_batch_permutes_the_per_sample_gradients() =>
        KitProperties.Check(KitProperties.PermutationEquivariance, CreateMethod, Options);

    /// <summary>(4) A duplicated sample gets its original's gradient and leaves the others unchanged.</summary>
    [Fact]
    public void Duplicating_a_sample_duplicates_its_gradient_and_leaves_the_others_unchanged() =>
        KitProperties.Check(KitProperties.Duplication, CreateMethod, Options);

    /// <summary>(5) Mean and sum reductions give the documented per-sample gradients.</summary>
    [Fact]
    public void Mean_and_sum_reductions_give_the_documented_per_sample_gradients() =>
        KitProperties.Check(KitProperties.MeanAndSum, CreateMethod, Options);

    /// <summary>(R) BatchNorm in training mode, an empty batch (and custom modules, if claimed) are refused.</summary>
    [Fact]
    public void Invalid_models_and_batches_raise_the_documented_problem() =>
        KitProperties.Check(KitProperties.Refusal, CreateMethod, Options);

    /// <summary>
    /// The precision diagnosis on the first claimed catalogue cases: whatever gap float32 leaves must vanish in float64
    /// (a gap that stays is a logic error, whatever the float32 tolerance says).
    /// </summary>
    [Fact]
    public void The_precision_diagnosis_finds_no_logic_error()
    {
        var cases = CatalogueChecks.Claimed(Options).Take(DiagnosedCases).ToList();
        Assert.NotEmpty(cases);
        var lines = cases.Select(c => (Case: c.Id, Diagnosis: MethodDiagnosis.Run(CreateMethod, c, Options))).ToList();
        var report = string.Join("\n", lines.Select(l => $"{l.Case}: {l.Diagnosis.Sentence}"));
        TestContext.Current.TestOutputHelper?.WriteLine(report);
        Assert.True(lines.All(l => l.Diagnosis.Verdict != DiagnosisVerdict.Logic), report);
    }

    /// <summary>
    /// The kit, with these options, passes a correct loop method and catches loop methods with planted bugs: proof that
    /// the checks above can fail for the models this method is asked about.
    /// </summary>
    [Fact]
    public void The_kit_passes_a_correct_method_and_catches_planted_bugs()
    {
        var report = KitSelfCheck.Run(Options);
        TestContext.Current.TestOutputHelper?.WriteLine(report.Describe());
        Assert.True(report.Passed, report.Describe());
    }

    /// <summary>Catalogue cases the precision diagnosis runs on.</summary>
    public const int DiagnosedCases = 3;
}
