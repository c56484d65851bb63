using System.Globalization;
using System.Text;
using PerSampleGrads.Testing.Catalogue;

namespace PerSampleGrads.Testing.SelfCheck;

/// <summary>One method's row of the self-check: which checks it failed, with the first failure.</summary>
/// <param name="Method">The method's name.</param>
/// <param name="Bug">The planted bug in words (null for the control).</param>
/// <param name="Failed">Ids of the checks that failed.</param>
/// <param name="FirstFailure">The first failure's message.</param>
public sealed record SelfCheckRow(string Method, string? Bug, IReadOnlyList<string> Failed, string? FirstFailure);

/// <summary>
/// The self-check's outcome: the control must fail nothing, and every planted bug must fail something; otherwise the
/// kit cannot be trusted with these options (a claim set or dtype in which it sees too little).
/// </summary>
public sealed record SelfCheckReport(SelfCheckRow Control, IReadOnlyList<SelfCheckRow> Bugs, ulong Seed)
{
    /// <summary>The control passed everything and every bug failed at least one property.</summary>
    public bool Passed => Control.Failed.Count == 0 && Bugs.All(b => b.Failed.Any(id => id.StartsWith('(')));

    /// <summary>A table: one row per method, the checks that failed, and each first failure.</summary>
    public string Describe()
    {
        var text = new StringBuilder();
        int caught = Bugs.Count(b => b.Failed.Any(id => id.StartsWith('(')));
        text.AppendLine(CultureInfo.InvariantCulture,
            $"Kit self-check (seed {Seed}): {caught}/{Bugs.Count} planted bugs caught by the properties; the control " +
                $"failed {Control.Failed.Count} checks.");
        foreach (var row in Bugs.Prepend(Control))
        {
            var failed = row.Failed.Count == 0 ? "nothing" : string.Join(", ", row.Failed);
            text.AppendLine(CultureInfo.InvariantCulture, $"  {row.Method,-34} failed: {failed}");
        }
        foreach (var row in Bugs.Prepend(Control).Where(r => r.FirstFailure is not null))
            text.AppendLine(CultureInfo.InvariantCulture,
                $"  first failure of {row.Method}: {FirstLines(row.FirstFailure!)}");
        return text.ToString();
    }

    private static string FirstLines(string message) =>
        string.Join(" | ", message.Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            .Take(6));
}

/// <summary>
/// The kit checks itself: it runs its catalogue cases and properties, with the caller's claims, dtype and device, on a
/// correct loop method and on loop methods with planted bugs (<see cref="PlantedBugMethods"/>), from a fixed seed. A
/// planted bug must fail at least one property (the catalogue stops at its first failing case, each property at its
/// first failing generated case, unshrunk).
/// </summary>
public static class KitSelfCheck
{
    /// <summary>The seed of the self-check's properties (fixed: every run sees the same cases).</summary>
    public const ulong Seed = 20261201;

    /// <summary>Catalogue cases each method is run on (the first claimed ones).</summary>
    public const int CatalogueCases = 4;

    // Sizes grow from here to 100, so that most generated cases have a few layers and several samples.
    private const int StartSize = 20;

    /// <summary>Runs the self-check with the claims, dtype, device and self-check runs of the options.</summary>
    public static SelfCheckReport Run(KitOptions options)
    {
        // The planted-bug methods are loops over the oracle, which computes custom modules rather than refuse them.
        var claims = options.Claims with { RefusesCustomModules = false };
        var checkedWith = options with { Claims = claims, Seed = Seed };
        var control = RunOne(PlantedBugMethods.Control, null, checkedWith);
        var bugs = PlantedBugMethods.Bugs.Select(b => RunOne(b.Create, b.Bug, checkedWith)).ToList();
        return new SelfCheckReport(control, bugs, Seed);
    }

    private static SelfCheckRow RunOne(Func<IPerSampleGradientMethod> method, string? bug, KitOptions options)
    {
        var failed = new List<string>();
        string? first = null;
        void Record(string id, string? failure)
        {
            if (failure is null) return;
            failed.Add(id);
            first ??= failure;
        }
        foreach (var gradientCase in CatalogueChecks.Claimed(options).Take(CatalogueCases))
        {
            Record($"catalogue {gradientCase.Id}",
                Failure(() => CatalogueChecks.AgreesWithTheOracle(method, gradientCase, options)));
            if (failed.Count > 0) break;
        }
        var generators = CaseGenerators.For(options.Claims);
        foreach (var property in KitProperties.All)
        {
            var created = property.Create(generators, method, options, false);
            if (created is null) continue;
            Record($"({property.Id})", KitProperties.Falsify(created, options.SelfCheckRuns, Seed, StartSize));
        }
        return new SelfCheckRow(method().Name, bug, failed, first);
    }

    private static string? Failure(Action check)
    {
        try
        {
            check();
            return null;
        }
        catch (Exception e)
        {
            return e.Message;
        }
    }
}
