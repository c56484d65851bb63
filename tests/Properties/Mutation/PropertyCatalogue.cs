using FsCheck;
using FsCheck.Fluent;
using PerSampleGrads.Testing;
using PerSampleGrads.Testing.Checks;
using static TorchSharp.torch;

namespace PerSampleGrads.Tests.Mutation;

/// <summary>
/// A property of the suite as a function of the engines under test, for running it against mutants.
/// </summary>
/// <param name="Id">Short id for the kill table: the property's number in the suite.</param>
/// <param name="Name">What it checks.</param>
/// <param name="For">The property for a mutant's engines; null when it does not apply to that engine.</param>
public sealed record NamedProperty(string Id, string Name, Func<Mutant, Property?> For);

/// <summary>
/// The suite's properties over the same generators as <see cref="EngineProperties"/>, without shrinking (a planted
/// bug only needs to be caught; the ordinary suite shrinks real failures).
/// </summary>
public static class PropertyCatalogue
{
    private static readonly Arbitrary<PerSampleGrads.Testing.Specs.CaseSpec> Cases =
        Arb.From(Arbitraries.CaseGenerator);
    private static readonly Arbitrary<PerSampleGrads.Testing.Specs.Float32CaseSpec> Float32Cases =
        Arb.From(Arbitraries.Float32CaseGenerator);

    /// <summary>Every property, numbered as in the suite: (1) in float32 and float64, (2) to (7).</summary>
    public static IReadOnlyList<NamedProperty> All { get; } =
    [
        new("1f32", "float32 engine == float64 oracle", m =>
            Prop.ForAll(Float32Cases, c => GradientChecks.MatchesOracle(m.UnderTest, c.Case, ScalarType.Float32))),
        new("1f64", "float64 engine == float64 oracle", m =>
            Prop.ForAll(Cases, c => GradientChecks.MatchesOracle(m.UnderTest, c, ScalarType.Float64))),
        new("2", "sum over samples == batch gradient", m => Prop.ForAll(Cases,
            c => GradientChecks.SumsToTheBatchGradient(m.UnderTest, c))),
        new("3", "permutation equivariance", m => Prop.ForAll(Cases,
            c => GradientChecks.PermutationPermutesTheGradients(m.UnderTest, c))),
        new("4", "duplicating a sample", m => Prop.ForAll(Cases,
            c => GradientChecks.DuplicatingASampleDuplicatesItsGradient(m.UnderTest, c))),
        new("5", "mean vs sum relation", m => Prop.ForAll(Cases,
            c => GradientChecks.MeanAndSumFollowTheDocumentedRelation(m.UnderTest, c))),
        new("6", "chunked == unchunked", m => m.Engine == EngineKind.Functional
            ? Prop.ForAll(Cases, c => GradientChecks.ChunkedRunsGiveTheUnchunkedResult(m.Engines.Functional, c))
            : null),
        new("7", "hooks == functional", m => Prop.ForAll(Cases,
            c => GradientChecks.HooksAgreeWithFunctional(m.Engines.Hooks, () => m.Engines.Functional(null), c))),
    ];
}
