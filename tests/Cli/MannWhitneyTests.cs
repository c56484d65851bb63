using PerSampleGrads.Benchmarking;

namespace PerSampleGrads.Tests.Cli;

/// <summary>
/// The Mann-Whitney U test behind <c>bench --baseline</c>, against its definition: the exact p-value is checked
/// against a brute-force count over every way to split the pooled values into two samples.
/// </summary>
[Trait("Category", "Cli")]
public sealed class MannWhitneyTests
{
    [Fact]
    public void Two_fully_separated_samples_of_seven_give_the_smallest_exact_p_value()
    {
        double[] fast = [1, 2, 3, 4, 5, 6, 7], slow = [11, 12, 13, 14, 15, 16, 17];
        var result = MannWhitneyU.Test(slow, fast);
        Assert.Equal(49, result.U);
        Assert.True(result.Exact);
        // Two of the C(14, 7) = 3432 equally likely splits are as extreme (all larger, all smaller).
        Assert.Equal(2.0 / 3432, result.PValue, 15);
        Assert.Equal(result.PValue, result.SmallestPossiblePValue, 15);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void The_exact_p_value_equals_a_count_over_every_split(int seed)
    {
        var random = new Random(seed);
        int m = 3 + seed % 3, n = 4 + seed % 2;
        var pooled = Enumerable.Range(0, m + n).Select(_ => random.NextDouble()).ToArray();
        var first = pooled[..m];
        var second = pooled[m..];
        var result = MannWhitneyU.Test(first, second);

        double mean = m * n / 2.0, observed = Math.Abs(result.U - mean);
        int asExtreme = 0, splits = 0;
        foreach (var chosen in Subsets(m + n, m))
        {
            var a = chosen.Select(i => pooled[i]).ToArray();
            var b = Enumerable.Range(0, m + n).Except(chosen).Select(i => pooled[i]).ToArray();
            double u = a.Sum(x => b.Count(y => x > y));
            splits++;
            if (Math.Abs(u - mean) >= observed - 1e-9) asExtreme++;
        }
        Assert.True(result.Exact);
        Assert.Equal((double)asExtreme / splits, result.PValue, 12);
    }

    [Fact]
    public void Ties_use_the_normal_approximation_and_identical_samples_give_p_one()
    {
        double[] same = [5, 5, 6, 6, 7, 7, 8];
        var result = MannWhitneyU.Test(same, same);
        Assert.False(result.Exact);
        Assert.Equal(1, result.PValue, 12);
    }

    [Fact]
    public void Large_separated_samples_are_significant_under_the_normal_approximation()
    {
        var slow = Enumerable.Range(0, 40).Select(i => 100.0 + i).ToArray();
        var fast = Enumerable.Range(0, 40).Select(i => 10.0 + i).ToArray();
        var result = MannWhitneyU.Test(slow, fast);
        Assert.False(result.Exact);
        Assert.True(result.PValue < 1e-10, $"p = {result.PValue}");
    }

    [Fact]
    public void A_consistent_but_small_slowdown_is_no_regression()
    {
        // Every repeat 5% slower: significant (no overlap), but below the 10% minimum effect.
        var baseline = new double[] { 10.00, 10.01, 10.02, 10.03, 10.04, 10.05, 10.06 };
        var current = baseline.Select(t => t * 1.05).ToArray();
        var result = BaselineComparison.Compare("hooks", baseline, current, new BaselineCriteria());
        Assert.True(result.Test.PValue < 0.05, $"p = {result.Test.PValue}");
        Assert.Equal(BaselineVerdict.Same, result.Verdict);
    }

    [Fact]
    public void A_large_separated_slowdown_is_slower_and_a_large_speedup_faster()
    {
        var baseline = new double[] { 10.0, 10.4, 10.2, 10.9, 10.1, 10.6, 10.3 };
        var criteria = new BaselineCriteria();
        var slower = baseline.Select(t => t * 1.5).ToArray();
        var faster = baseline.Select(t => t / 1.5).ToArray();
        Assert.Equal(BaselineVerdict.Slower, BaselineComparison.Compare("x", baseline, slower, criteria).Verdict);
        Assert.Equal(BaselineVerdict.Faster, BaselineComparison.Compare("x", baseline, faster, criteria).Verdict);
    }

    [Fact]
    public void A_large_difference_from_too_few_repeats_is_not_called_and_says_so()
    {
        var result = BaselineComparison.Compare("x", [10.0, 10.1, 10.2], [30.0], new BaselineCriteria());
        Assert.Equal(BaselineVerdict.Same, result.Verdict);
        Assert.False(result.Detectable);
    }

    private static IEnumerable<int[]> Subsets(int n, int k)
    {
        if (k == 0)
        {
            yield return [];
            yield break;
        }
        for (int last = k - 1; last < n; last++)
            foreach (var rest in Subsets(last, k - 1))
                yield return [.. rest, last];
    }
}
