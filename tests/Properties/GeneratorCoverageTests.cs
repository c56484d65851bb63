using PerSampleGrads.Testing;
using PerSampleGrads.Tests.Snapshots;

namespace PerSampleGrads.Tests;

/// <summary>
/// The generators reach every option the engines claim, for every method and dtype, and <c>docs/coverage.md</c> is
/// the table they produce now (<c>PSG_WRITE_COVERAGE=1</c> rewrites it; see docs/testing.md).
/// </summary>
[Trait("Category", "Properties")]
public sealed class GeneratorCoverageTests
{
    private static readonly IReadOnlyList<CoverageColumn> Columns =
    [
        new("hooks", Arbitraries.Claims),
        new("functional", Arbitraries.Claims),
        new("clipping", ClippingArbitraries.Claims),
    ];

    private static string File => Path.Combine(SnapshotFolder.Repository, "docs", "coverage.md");

    [Fact]
    public void Every_claimed_option_is_generated_for_every_method_and_dtype() =>
        Assert.Empty(GeneratorCoverage.Gaps(Columns));

    [Fact]
    public void The_coverage_table_in_the_docs_is_the_one_the_generators_produce()
    {
        string text = $"""
            # Generator coverage

            Produced by
            `PSG_WRITE_COVERAGE=1 dotnet test tests/Properties --filter "FullyQualifiedName~GeneratorCoverage"`
            (without the variable the test checks that this file is current). Each cell: how many of
            {GeneratorCoverage.Draws} cases, drawn with a fixed seed over FsCheck sizes 0 to 100 by the generators a
            method's properties use (`Arbitraries` for the hook and functional engines, `ClippingArbitraries` for the
            clipping method; float32 columns: the float32 generator, which normalises only after smooth activations),
            exercise the option. A property run draws `PropertyRuns.PerProperty` cases per property, not all
            {GeneratorCoverage.Draws}. "not claimed": the method refuses it by design. Options the generators do not
            draw (EmbeddingBag with offsets, kdim/vdim and key padding masks in attention, initial recurrent states,
            the Transformer decoder's masks) are covered by the named catalogue cases.

            {GeneratorCoverage.Markdown(Columns)}
            """.ReplaceLineEndings("\n");
        if (Environment.GetEnvironmentVariable("PSG_WRITE_COVERAGE") == "1") System.IO.File.WriteAllText(File, text);
        Assert.True(System.IO.File.Exists(File), $"{File} is missing: run with PSG_WRITE_COVERAGE=1 to write it.");
        Assert.True(System.IO.File.ReadAllText(File).ReplaceLineEndings("\n") == text,
            $"{File} is not the table the generators produce now: run with PSG_WRITE_COVERAGE=1 and commit it.");
    }
}
