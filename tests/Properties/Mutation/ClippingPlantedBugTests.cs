using System.Globalization;
using System.Text;
using FsCheck;
using FsCheck.Fluent;
using PerSampleGrads.Testing;
using PerSampleGrads.Tests.Checks;
using static TorchSharp.torch;

namespace PerSampleGrads.Tests.Mutation;

/// <summary>
/// Proves that the clipping method's suite can fail: each planted bug must be caught by at least one of its properties
/// within a bounded number of generated cases from a fixed seed, and the method as shipped must survive the same cases.
/// </summary>
[Trait("Category", "Mutation")]
[Trait("Engine", "Clipping")]
public sealed class ClippingPlantedBugTests(ITestOutputHelper output)
{
    /// <summary>Generated cases per property and mutant.</summary>
    public const int CasesPerProperty = 25;

    private static readonly Arbitrary<PerSampleGrads.Testing.Specs.CaseSpec> Cases =
        Arb.From(ClippingArbitraries.CaseGenerator);
    private static readonly Arbitrary<PerSampleGrads.Testing.Specs.Float32CaseSpec> Float32Cases =
        Arb.From(ClippingArbitraries.Float32CaseGenerator);

    private static readonly (string Id, string Name, Func<ClippingFactory, Property> For)[] Properties =
    [
        ("c1f32", "float32 == definition on the oracle", m => Prop.ForAll(Float32Cases, c
            => ClippingChecks.MatchesTheDefinition(m, c.Case, ScalarType.Float32))),
        ("c1f64", "float64 == definition on the oracle", m => Prop.ForAll(Cases, c
            => ClippingChecks.MatchesTheDefinition(m, c, ScalarType.Float64))),
        ("c2", "C = infinity gives the plain sum", m => Prop.ForAll(Cases, c
            => ClippingChecks.InfiniteBoundGivesThePlainSumGradient(m, c))),
        ("c3", "permutation", m => Prop.ForAll(Cases, c => ClippingChecks.PermutingTheBatchPermutesTheNorms(m, c))),
        ("c4", "duplicating a sample", m => Prop.ForAll(Cases, c
            => ClippingChecks.DuplicatingASampleAddsItsClippedGradient(m, c))),
        ("c5", "per-parameter norms combine", m => Prop.ForAll(Cases, c
            => ClippingChecks.PerParameterNormsCombineIntoTheTotal(m, c))),
    ];

    [Fact]
    public void Every_planted_clipping_bug_is_caught_and_the_shipped_method_survives_the_same_cases()
    {
        TestSettings.RequireTorch();
        var rows = ClippingMutants.All.Prepend(ClippingMutants.Control)
            .Select(m => (Mutant: m, Outcomes: Properties.Select(p => Falsify(p.For(m.Create))).ToList()))
            .ToList();
        var text = new StringBuilder();
        var legend = string.Join("; ", Properties.Select(p => $"({p.Id}) {p.Name}"));
        text.AppendLine(CultureInfo.InvariantCulture,
            $"Clipping kill table: {CasesPerProperty} cases per property; {legend}");
        foreach (var (mutant, outcomes) in rows)
            text.AppendLine(CultureInfo.InvariantCulture,
                $"{mutant.Name,-34} {string.Join(" ", outcomes.Select(o
                    => $"{(o is null ? "." : WrongValues(o) ? "KILL" : "ERR"),-5}"))}");
        output.WriteLine(text.ToString());

        var control = rows[0].Outcomes.Where(o => o is not null).ToList();
        Assert.True(control.Count == 0,
            $"The shipped method fails its properties at the mutation seed:\n{text}\n{control.FirstOrDefault()}");
        var survivors = rows.Skip(1).Where(r => r.Outcomes.All(o => o is null || !WrongValues(o))).Select(r
            => r.Mutant.Name).ToList();
        Assert.True(survivors.Count == 0,
            $"Planted clipping bugs no property caught with wrong values: {string.Join(", ", survivors)}\n{text}");
    }

    // The first counterexample's message, or null when every case passed.
    private static string? Falsify(Property property)
    {
        var config = Config.QuickThrowOnFailure.WithMaxTest(CasesPerProperty).WithStartSize(PlantedBugTests.StartSize)
            .WithReplay(20261201, 0x9E3779B97F4A7C15).WithQuietOnSuccess(true);
        try
        {
            Check.One(config, property);
            return null;
        }
        catch (Exception e)
        {
            return e.Message;
        }
    }

    private static bool WrongValues(string message) => message.Contains("FailException", StringComparison.Ordinal);
}
