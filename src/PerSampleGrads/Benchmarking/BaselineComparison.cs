namespace PerSampleGrads.Benchmarking;

/// <summary>How a contender's time compares with its baseline.</summary>
public enum BaselineVerdict
{
    /// <summary>Significantly faster by at least the minimum effect.</summary>
    Faster,
    /// <summary>No significant difference of at least the minimum effect.</summary>
    Same,
    /// <summary>Significantly slower by at least the minimum effect: a regression.</summary>
    Slower,
}

/// <summary>
/// When a difference between two sets of repeats counts: the Mann-Whitney U test's two-sided p-value below
/// <see cref="SignificanceLevel"/> and the ratio of the medians beyond <see cref="MinimumEffect"/>. Both are needed: a
/// tiny but consistent drift is significant with enough repeats and still no regression; a large difference on a
/// noisy machine may be chance.
/// </summary>
/// <param name="SignificanceLevel">The largest p-value that counts as significant (default 0.05).</param>
/// <param name="MinimumEffect">The smallest relative change of the median that counts (default 0.10: 10% slower, or
/// 1/1.1 as fast).</param>
public sealed record BaselineCriteria(double SignificanceLevel = 0.05, double MinimumEffect = 0.10);

/// <summary>One contender's current repeats against its baseline repeats.</summary>
/// <param name="Contender">The contender's name.</param>
/// <param name="BaselineMedianMs">The baseline's median, milliseconds.</param>
/// <param name="CurrentMedianMs">This run's median, milliseconds.</param>
/// <param name="Test">The Mann-Whitney U test of the current repeats against the baseline's.</param>
/// <param name="Verdict">Faster, same or slower under the criteria.</param>
/// <param name="Detectable">False when the repeats are too few for the test to reach the significance level at
/// all.</param>
public sealed record BaselineResult(string Contender, double BaselineMedianMs, double CurrentMedianMs,
    MannWhitneyResult Test, BaselineVerdict Verdict, bool Detectable)
{
    /// <summary>Current median over baseline median (above 1: slower).</summary>
    public double Ratio => CurrentMedianMs / BaselineMedianMs;
}

/// <summary>Compares a contender's repeats with a committed baseline's repeats.</summary>
public static class BaselineComparison
{
    /// <summary>The verdict for <paramref name="current"/> repeats against <paramref name="baseline"/> repeats
    /// (milliseconds).</summary>
    public static BaselineResult Compare(string contender, IReadOnlyList<double> baseline,
        IReadOnlyList<double> current, BaselineCriteria criteria)
    {
        ArgumentNullException.ThrowIfNull(criteria);
        if (criteria.SignificanceLevel is <= 0 or >= 1 || criteria.MinimumEffect is < 0
            || !double.IsFinite(criteria.MinimumEffect))
            throw new ArgumentException(
                "The significance level must lie in (0, 1) and the minimum effect be at least 0.");
        var test = MannWhitneyU.Test(current, baseline);
        double baselineMedian = Median(baseline), currentMedian = Median(current);
        if (baselineMedian <= 0)
            throw new ArgumentException(
                $"The baseline's median for '{contender}' is {baselineMedian} ms: not a timing.");
        double ratio = currentMedian / baselineMedian;
        bool significant = test.PValue < criteria.SignificanceLevel;
        var verdict = !significant ? BaselineVerdict.Same
            : ratio >= 1 + criteria.MinimumEffect ? BaselineVerdict.Slower
            : ratio <= 1 / (1 + criteria.MinimumEffect) ? BaselineVerdict.Faster
            : BaselineVerdict.Same;
        return new BaselineResult(contender, baselineMedian, currentMedian, test, verdict,
            test.SmallestPossiblePValue < criteria.SignificanceLevel);
    }

    /// <summary>The median of <paramref name="values"/> (the mean of the middle two for an even count).</summary>
    public static double Median(IReadOnlyList<double> values)
    {
        if (values.Count == 0) throw new ArgumentException("No values.");
        var sorted = values.Order().ToArray();
        int middle = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
    }
}
