using KitSample;
using PerSampleGrads;
using PerSampleGrads.Cases;
using PerSampleGrads.Testing;
using PerSampleGrads.Testing.Catalogue;
using Xunit.Sdk;

namespace KitSample.Tests;

/// <summary>
/// What the kit reports about the subtly broken loop (<see cref="SumForMeanLoopMethod"/>): these tests pass when the
/// kit finds the bug where it is and nowhere else. (Deriving from <c>PerSampleGradientMethodTests</c> would show the
/// same failures as red tests; see samples/README.md for their text.)
/// </summary>
public sealed class SumForMeanFindings(ITestOutputHelper output)
{
    private static readonly KitOptions Options = new() { PropertyRuns = 20, Seed = 7 };

    [Theory]
    [InlineData("linear-2d-B5-ce-mean")]
    [InlineData("conv2d-k3-s2-d2-g2-B5-ce-mean")]
    [InlineData("nll-logsoftmax-B4-nll-mean")]
    public void Classification_cases_pass(string caseId) =>
        CatalogueChecks.AgreesWithTheOracle(() => new SumForMeanLoopMethod(), CaseCatalogue.Get(caseId), Options);

    [Theory]
    [InlineData("linear-3d-B3-mse-mean")]
    [InlineData("layernorm-1d-B4-mse-mean")]
    [InlineData("linear-4d-B3-l1-mean")]
    public void Mean_reduced_value_losses_fail_and_the_diagnosis_calls_it_logic(string caseId)
    {
        var failure = Assert.ThrowsAny<XunitException>(() =>
            CatalogueChecks.AgreesWithTheOracle(() => new SumForMeanLoopMethod(), CaseCatalogue.Get(caseId), Options));
        output.WriteLine(failure.Message);
        Assert.Contains("Diagnosis: Logic", failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_mean_and_sum_property_fails_with_a_shrunk_case_and_a_replay_seed()
    {
        var failure = Assert.ThrowsAny<XunitException>(() =>
            KitProperties.Check(KitProperties.MeanAndSum, () => new SumForMeanLoopMethod(), Options));
        output.WriteLine(failure.Message);
        Assert.Contains("Seed = 7", failure.Message, StringComparison.Ordinal);
        Assert.Contains("/mean", failure.Message, StringComparison.Ordinal);
    }
}
