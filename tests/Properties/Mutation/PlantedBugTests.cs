using System.Diagnostics;
using System.Globalization;
using System.Text;
using FsCheck;
using FsCheck.Fluent;
using PerSampleGrads.Testing;
using PerSampleGrads.Testing.Checks;
using PerSampleGrads.Testing.Specs;
using static TorchSharp.torch;

namespace PerSampleGrads.Tests.Mutation;

/// <summary>
/// Proves that the property suite can fail: each planted bug, one at a time, must be caught by at least one property
/// within a bounded number of generated cases from a fixed seed, and the engines as shipped must survive the very same
/// cases (otherwise a "kill" would prove nothing).
/// </summary>
[Trait("Category", "Mutation")]
public sealed class PlantedBugTests(ITestOutputHelper output)
{
    /// <summary>Generated cases per property and mutant.</summary>
    public const int CasesPerProperty = 80;

    /// <summary>
    /// FsCheck size of the first case (the suite starts at 1): sizes grow from here to 100, so that most cases have
    /// several layers, where rule-level bugs live.
    /// </summary>
    public const int StartSize = 20;

    /// <summary>Cases for the shrinking test: one property, until its first failure.</summary>
    public const int ShrinkingCases = 60;

    // A fixed FsCheck seed (seed, gamma; gamma odd): every run generates the same cases.
    private static readonly ulong Seed = ulong.Parse(Environment.GetEnvironmentVariable("PSG_MUTATION_SEED")
        ?? "20261125", CultureInfo.InvariantCulture);
    private const ulong Gamma = 0x9E3779B97F4A7C15;

    [Fact]
    public void Every_planted_bug_is_caught_by_the_property_suite_and_the_shipped_engines_survive_the_same_cases()
    {
        TestSettings.RequireTorch();
        var clock = Stopwatch.StartNew();
        var control = Run(Mutants.Control);
        var rows = Mutants.All.Select(Run).ToList();
        var table = KillTable(control, rows, clock.Elapsed);
        output.WriteLine(table);

        var falseAlarms = control.Outcomes.Where(o => o.Falsified is not null).ToList();
        Assert.True(falseAlarms.Count == 0, $"The shipped engines fail properties at the mutation seed:\n{table}");
        var survivors = rows.Where(r => r.Kills == 0).Select(r => r.Mutant.Name).ToList();
        Assert.True(survivors.Count == 0, $"Planted bugs no property caught: {string.Join(", ", survivors)}\n{table}");
    }

    [Fact]
    public void A_planted_bug_shrinks_to_at_most_one_layer_before_the_head_and_at_most_two_samples()
    {
        TestSettings.RequireTorch();
        var lines = new List<string>();
        var tooLarge = new List<string>();
        foreach (var mutant in Mutants.All)
        {
            CaseSpec? original = null, shrunk = null;
            // The shrinking arbitrary of the suite; the last failing case FsCheck evaluates is where shrinking ended.
            var property = Prop.ForAll(Arbitraries.Cases(), c =>
            {
                try
                {
                    GradientChecks.MatchesOracle(mutant.UnderTest, c, ScalarType.Float64);
                }
                catch
                {
                    original ??= c;
                    shrunk = c;
                    throw;
                }
            });
            Falsify(property, ShrinkingCases);
            lines.Add($"{mutant.Name}:\n  generated: {original}\n  shrunk:    {shrunk}");
            if (shrunk is null || !shrunk.IsValid || shrunk.Architecture.Body.Count > 1 || shrunk.BatchSize > 2)
                tooLarge.Add($"{mutant.Name}: {shrunk?.ToString() ?? "no failure"}");
        }
        output.WriteLine(string.Join("\n", lines));
        Assert.True(tooLarge.Count == 0, $"Not shrunk to a minimal case: " +
            $"{string.Join("; ", tooLarge)}\n{string.Join("\n", lines)}");
    }

    private sealed record Outcome(NamedProperty Property, bool Applies, string? Falsified);

    private sealed record Row(Mutant Mutant, List<Outcome> Outcomes)
    {
        public int Kills => Outcomes.Count(o => o.Falsified is not null);
    }

    private static Row Run(Mutant mutant) => new(mutant, PropertyCatalogue.All.Select(p =>
    {
        var property = p.For(mutant);
        return new Outcome(p, property is not null, property is null ? null : Falsify(property));
    }).ToList());

    // The first counterexample's message, or null when every case passed.
    private static string? Falsify(Property property, int cases = CasesPerProperty)
    {
        var config = Config.QuickThrowOnFailure.WithMaxTest(cases).WithStartSize(StartSize).WithReplay(Seed,
            Gamma).WithQuietOnSuccess(true);
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

    private static string KillTable(Row control, List<Row> rows, TimeSpan elapsed)
    {
        var properties = PropertyCatalogue.All;
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture,
            $"Kill table: {rows.Count(r => r.Kills > 0)}/{rows.Count} planted bugs caught; {CasesPerProperty} cases " +
                $"per property from seed ({Seed},{Gamma}); {elapsed.TotalSeconds:0} s");
        text.AppendLine("Properties: " + string.Join("; ", properties.Select(p => $"({p.Id}) {p.Name}")));
        text.AppendLine(CultureInfo.InvariantCulture, $"{"mutant",-34} " +
            $"{string.Join(" ", properties.Select(p => $"{p.Id,-5}"))} kills");
        foreach (var row in rows.Prepend(control))
        {
            var cells = row.Outcomes.Select(o => !o.Applies ? "n/a" : o.Falsified is null ? "."
                : WrongValues(o.Falsified) ? "KILL" : "ERR");
            text.AppendLine(CultureInfo.InvariantCulture, $"{row.Mutant.Name,-34} " +
                $"{string.Join(" ", cells.Select(c => $"{c,-5}"))} {row.Kills}");
        }
        text.AppendLine("KILL: a comparison failed (wrong values); ERR: the engine threw on a valid case; '.': " +
            "survived; n/a: not applicable.");
        text.AppendLine("First counterexample per mutant:");
        foreach (var row in rows.Prepend(control).Where(r => r.Kills > 0))
        {
            var first = row.Outcomes.First(o => o.Falsified is not null);
            text.AppendLine(CultureInfo.InvariantCulture, $"  {row.Mutant.Name} ({row.Mutant.Bug}) by " +
                $"({first.Property.Id}): {Summary(first.Falsified!)}");
        }
        return text.ToString();
    }

    // GradientAssert fails through xunit's Assert.Fail; anything else is the engine (or the model) throwing.
    private static bool WrongValues(string message) => message.Contains("FailException", StringComparison.Ordinal);

    // "after k tests" and the generated case from FsCheck's message.
    private static string Summary(string message)
    {
        var lines = message.Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var after = lines.FirstOrDefault(l => l.StartsWith("Falsifiable", StringComparison.Ordinal)) ?? lines[0];
        int original = Array.FindIndex(lines, l => l.StartsWith("Original", StringComparison.Ordinal));
        var generated = original >= 0 && original + 1 < lines.Length ? lines[original + 1] : "";
        var exception = lines.FirstOrDefault(l => l.Contains("Exception", StringComparison.Ordinal)) ?? "";
        return $"{after} {generated} -> {exception}";
    }
}
