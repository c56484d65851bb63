using FsCheck;
using FsCheck.Fluent;
using PerSampleGrads.Testing.Checks;
using PerSampleGrads.Testing.Specs;
using static TorchSharp.torch;

namespace PerSampleGrads.Testing;

/// <summary>
/// One property of the kit: an id, what it checks, and the FsCheck property for a method (null when it does not
/// apply under the options, e.g. the float32 comparison of a method checked in float64).
/// </summary>
/// <param name="Id">Short id: the property's number in the suite.</param>
/// <param name="Name">What it checks, as a sentence.</param>
/// <param name="Create">The property over the claimed generators, shrinking or not.</param>
public sealed record KitProperty(string Id, string Name,
    Func<CaseGenerators, Func<IPerSampleGradientMethod>, KitOptions, bool, Property?> Create)
{
    /// <inheritdoc/>
    public override string ToString() => $"({Id}) {Name}";
}

/// <summary>
/// The properties every per-sample gradient method must satisfy on generated models, and how to run them: FsCheck
/// from one seed, a failure shrunk to a minimal model and reported with the seed that replays it.
/// </summary>
public static class KitProperties
{
    /// <summary>Gamma of FsCheck's random stream (odd); the seed varies, gamma stays.</summary>
    public const ulong Gamma = 0x9E3779B97F4A7C15;

    /// <summary>(1) In the options' dtype, against the float64 oracle (only when that dtype is not float64).</summary>
    public static KitProperty MatchesTheOracleInTheOptionsDType { get; } =
        new("1", "matches the float64 oracle in the options' dtype",
        (g, m, o, shrink) => o.DType == ScalarType.Float64
            ? null
            : Prop.ForAll(shrink ? g.Float32Cases() : Arb.From(g.Float32CaseGenerator),
                c => GradientChecks.MatchesOracle(m, c.Case, o.DType, o.ToleranceFor(o.DType), o.Device)));

    /// <summary>(1f64) In float64, against the float64 oracle.</summary>
    public static KitProperty MatchesTheOracleInFloat64 { get; } = new("1f64", "matches the float64 oracle in float64",
        (g, m, o, shrink) => Prop.ForAll(Cases(g, shrink),
            c => GradientChecks.MatchesOracle(m, c, ScalarType.Float64, o.ToleranceFor(ScalarType.Float64), o.Device)));

    /// <summary>(2) The per-sample gradients sum to the batch gradient of the summed loss.</summary>
    public static KitProperty SumsToTheBatchGradient { get; } = new("2", "sums to the batch gradient of sum_i L_i",
        (g, m, o, shrink) => Prop.ForAll(Cases(g, shrink), c => GradientChecks.SumsToTheBatchGradient(m, c, o.Device)));

    /// <summary>(3) Permuting the batch permutes the per-sample gradients.</summary>
    public static KitProperty PermutationEquivariance { get; } = new("3", "permuting the batch permutes the gradients",
        (g, m, o, shrink) => Prop.ForAll(Cases(g, shrink),
            c => GradientChecks.PermutationPermutesTheGradients(m, c, o.Device)));

    /// <summary>(4) A duplicated sample gets its original's gradient; the others are unchanged.</summary>
    public static KitProperty Duplication { get; } = new("4", "a duplicated sample gets its original's gradient",
        (g, m, o, shrink) => Prop.ForAll(Cases(g, shrink),
            c => GradientChecks.DuplicatingASampleDuplicatesItsGradient(m, c, o.Device)));

    /// <summary>(5) Mean and sum reductions give the documented per-sample gradients.</summary>
    public static KitProperty MeanAndSum { get; } = new("5", "mean and sum follow the documented relation",
        (g, m, o, shrink) => Prop.ForAll(Cases(g, shrink),
            c => GradientChecks.MeanAndSumFollowTheDocumentedRelation(m, c, o.Device)));

    /// <summary>(R) Invalid models and batches raise the documented problem.</summary>
    public static KitProperty Refusal { get; } = new("R", "invalid models and batches are refused",
        (g, m, o, shrink) => Prop.ForAll(shrink ? g.InvalidCases() : Arb.From(g.InvalidCaseGenerator),
            c => GradientChecks.InvalidConfigurationIsRefused(m, c, o.Device)));

    /// <summary>Every property, in order.</summary>
    public static IReadOnlyList<KitProperty> All { get; } =
        [MatchesTheOracleInTheOptionsDType, MatchesTheOracleInFloat64, SumsToTheBatchGradient, PermutationEquivariance,
         Duplication, MeanAndSum, Refusal];

    /// <summary>
    /// Runs <paramref name="property"/> on <see cref="KitOptions.PropertyRuns"/> generated cases and throws, when a
    /// case fails, with the shrunk case, the failure and the seed that replays the run.
    /// </summary>
    public static void Check(KitProperty property, Func<IPerSampleGradientMethod> method, KitOptions options)
    {
        var created = property.Create(CaseGenerators.For(options.Claims), method, options, true);
        if (created is null) Assert.Skip($"{property} does not apply: the method is checked in {options.DType}.");
        ulong seed = options.EffectiveSeed();
        var failure = Falsify(created, options.PropertyRuns, seed, startSize: 1);
        if (failure is null) return;
        throw new Xunit.Sdk.XunitException(
            $"{property} fails for {method().Name}. Replay this run with KitOptions {{ Seed = {seed} }} or " +
            $"{KitOptions.SeedVariable}={seed}.\n{failure}");
    }

    /// <summary>FsCheck's report of the first failing case (shrunk when the property shrinks), or null.</summary>
    public static string? Falsify(Property property, int runs, ulong seed, int startSize)
    {
        var config = Config.QuickThrowOnFailure.WithMaxTest(runs).WithStartSize(startSize).WithReplay(seed, Gamma)
            .WithQuietOnSuccess(true);
        try
        {
            FsCheck.Check.One(config, property);
            return null;
        }
        catch (Exception e)
        {
            return e.Message;
        }
    }

    private static Arbitrary<CaseSpec> Cases(CaseGenerators generators, bool shrink) =>
        shrink ? generators.Cases() : Arb.From(generators.CaseGenerator);
}
