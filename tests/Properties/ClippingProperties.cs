using FsCheck;
using FsCheck.Xunit;
using PerSampleGrads.Testing;
using PerSampleGrads.Engines.Clipping;
using PerSampleGrads.Tests.Checks;
using PerSampleGrads.Testing.Specs;
using PerSampleGrads.Checking;
using static TorchSharp.torch;

namespace PerSampleGrads.Tests;

/// <summary>
/// The clipping method's properties on generated architectures, batches and losses, and its noise's statistics.
/// </summary>
[Trait("Category", "Properties")]
[Trait("Engine", "Clipping")]
public sealed class ClippingProperties
{
    private const int Runs = PropertyRuns.PerProperty;

    public ClippingProperties() => TestSettings.RequireTorch();

    [Property(Arbitrary = [typeof(ClippingArbitraries)], MaxTest = Runs)]
    public Property Float32_norms_and_clipped_sums_match_the_definition_on_the_float64_oracle(Float32CaseSpec c) =>
        EngineProperties.Classified(() => ClippingChecks.MatchesTheDefinition(ClippingChecks.Shipped, c.Case,
            ScalarType.Float32), c.Case);

    [Property(Arbitrary = [typeof(ClippingArbitraries)], MaxTest = Runs)]
    public Property Float64_norms_and_clipped_sums_match_the_definition_on_the_float64_oracle(CaseSpec c) =>
        EngineProperties.Classified(() => ClippingChecks.MatchesTheDefinition(ClippingChecks.Shipped, c,
            ScalarType.Float64), c);

    [Property(Arbitrary = [typeof(ClippingArbitraries)], MaxTest = Runs)]
    public Property An_infinite_bound_gives_the_batch_gradient_of_the_summed_loss(CaseSpec c) =>
        EngineProperties.Classified(() => ClippingChecks.InfiniteBoundGivesThePlainSumGradient(ClippingChecks.Shipped,
            c), c);

    [Property(Arbitrary = [typeof(ClippingArbitraries)], MaxTest = Runs)]
    public Property Permuting_the_batch_permutes_the_norms_and_keeps_the_clipped_sum(CaseSpec c) =>
        EngineProperties.Classified(() => ClippingChecks.PermutingTheBatchPermutesTheNorms(ClippingChecks.Shipped, c),
            c);

    [Property(Arbitrary = [typeof(ClippingArbitraries)], MaxTest = Runs)]
    public Property Duplicating_a_sample_appends_its_norms_and_adds_its_clipped_gradient(CaseSpec c) =>
        EngineProperties.Classified(()
            => ClippingChecks.DuplicatingASampleAddsItsClippedGradient(ClippingChecks.Shipped, c), c);

    [Property(Arbitrary = [typeof(ClippingArbitraries)], MaxTest = Runs)]
    public Property Per_parameter_norms_combine_into_the_total_norm(CaseSpec c) =>
        EngineProperties.Classified(() => ClippingChecks.PerParameterNormsCombineIntoTheTotal(ClippingChecks.Shipped,
            c), c);

    /// <summary>
    /// The noise, as the method adds it (noisy minus noiseless result, same seed stream), over many draws: mean 0 and
    /// standard deviation sigma * C, each within <see cref="TolerancePolicy.StandardScore"/> standard errors; the same
    /// seed gives the same noise, successive calls fresh noise; averaging divides the noisy sum by N.
    /// </summary>
    [Fact]
    public void The_noise_has_mean_zero_and_standard_deviation_sigma_times_C_within_the_stated_confidence_bounds()
    {
        using var problem = Cases.CaseCatalogue.FromZoo(Zoo.ModelZoo.Mlp, 4).Create(ScalarType.Float64,
            TestSettings.Device);
        const double sigma = 0.7, bound = 0.3;
        const int draws = 20;
        var clean = new ClippingMethod(new ClippingOptions { ClipBound = bound });
        var noisy = new ClippingMethod(new ClippingOptions { ClipBound = bound, NoiseMultiplier = sigma,
            NoiseSeed = 5 });
        using var reference = clean.Compute(problem.Model, problem.Inputs, problem.Targets, problem.Loss);
        using var scope = NewDisposeScope();
        var noise = new List<Tensor>();
        for (int k = 0; k < draws; k++)
        {
            using var result = noisy.Compute(problem.Model, problem.Inputs, problem.Targets, problem.Loss);
            noise.Add(cat(result.Names.Select(n => (result[n] - reference[n]).reshape(-1)).ToArray()));
        }
        var all = cat(noise.ToArray());
        long m = all.numel();
        double z = TolerancePolicy.StandardScore, deviation = sigma * bound;
        double mean = all.mean().item<double>();
        double variance = all.var().item<double>();
        Assert.True(Math.Abs(mean) <= z * deviation / Math.Sqrt(m),
            $"noise mean {mean:e3} over {m} draws; bound {z * deviation / Math.Sqrt(m):e3}");
        double ratio = variance / (deviation * deviation);
        // Sample variance of m normal draws: relative standard error sqrt(2 / (m - 1)).
        Assert.True(Math.Abs(ratio - 1) <= z * Math.Sqrt(2.0 / (m - 1)),
            $"noise variance / (sigma C)^2 = {ratio:0.00000} over {m} draws; bound 1 +- " +
                $"{z * Math.Sqrt(2.0 / (m - 1)):0.00000}");
        Assert.False(noise[0].equal(noise[1]).all().item<bool>(), "two successive calls drew the same noise");

        var again = new ClippingMethod(new ClippingOptions { ClipBound = bound, NoiseMultiplier = sigma,
            NoiseSeed = 5 });
        using var first = again.Compute(problem.Model, problem.Inputs, problem.Targets, problem.Loss);
        var firstNoise = cat(first.Names.Select(n => (first[n] - reference[n]).reshape(-1)).ToArray());
        Assert.True(firstNoise.equal(noise[0]).all().item<bool>(), "the same seed did not give the same noise");

        var averaging = new ClippingMethod(new ClippingOptions { ClipBound = bound, NoiseMultiplier = sigma,
            NoiseSeed = 5, Average = true });
        using var averaged = averaging.Compute(problem.Model, problem.Inputs, problem.Targets, problem.Loss);
        using var expected = Checking.ClippingComparison.SumsOf(first);
        var scaled = averaged.Names.Select(n => (n, (averaged[n] * problem.Inputs.shape[0]).unsqueeze(0))).ToList();
        using var actual = new PerSampleGradients("averaged x N", 1, scaled);
        GradientAssert.AgreeAsSums(actual, expected, ScalarType.Float64,
            Checking.ClippingComparison.ClippedMagnitude(first));
    }
}
