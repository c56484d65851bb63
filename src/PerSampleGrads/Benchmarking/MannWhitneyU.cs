namespace PerSampleGrads.Benchmarking;

/// <summary>The outcome of a Mann-Whitney U test.</summary>
/// <param name="U">U of the first sample: the number of pairs (a, b) with a &gt; b, ties counting one half.</param>
/// <param name="PValue">Two-sided p-value: the probability, were both samples drawn from one distribution, of a U at
/// least as far from its mean.</param>
/// <param name="Exact">True when the p-value comes from U's exact distribution (no ties, at most 50 values in all);
/// else from the normal approximation with tie and continuity corrections.</param>
/// <param name="SmallestPossiblePValue">The smallest two-sided p-value these sample sizes can give (exact test): below
/// the significance level, or the test cannot detect anything.</param>
public sealed record MannWhitneyResult(double U, double PValue, bool Exact, double SmallestPossiblePValue);

/// <summary>
/// The Mann-Whitney U test (Wilcoxon rank-sum test): do two samples of timings come from one distribution, or does
/// one tend to be larger? It uses ranks only, so one slow repeat (a page fault, another process) moves it little, and
/// it assumes no distribution of the times.
/// </summary>
public static class MannWhitneyU
{
    private const int ExactLimit = 50;

    /// <summary>Tests <paramref name="first"/> against <paramref name="second"/> (each at least one value).</summary>
    public static MannWhitneyResult Test(IReadOnlyList<double> first, IReadOnlyList<double> second)
    {
        ArgumentNullException.ThrowIfNull(first);
        ArgumentNullException.ThrowIfNull(second);
        if (first.Count == 0 || second.Count == 0)
            throw new ArgumentException("Both samples need at least one value.");
        if (first.Concat(second).Any(v => !double.IsFinite(v)))
            throw new ArgumentException("The samples hold a NaN or infinite value.");

        int m = first.Count, n = second.Count;
        double u = 0;
        foreach (var a in first)
            foreach (var b in second)
                u += a > b ? 1 : a == b ? 0.5 : 0;

        var counts = m + n <= ExactLimit ? ExactCounts(m, n) : null;
        double smallest = counts is null ? 0 : Math.Min(1, 2 * counts[0] / counts.Sum());
        bool ties = first.Concat(second).Distinct().Count() < m + n;
        if (counts is not null && !ties)
        {
            // Two-sided: twice the smaller tail, capped at 1.
            double total = counts.Sum();
            int k = (int)u;
            double lower = counts.Take(k + 1).Sum() / total;
            double upper = counts.Skip(k).Sum() / total;
            return new MannWhitneyResult(u, Math.Min(1, 2 * Math.Min(lower, upper)), true, smallest);
        }
        return new MannWhitneyResult(u, NormalApproximation(u, first, second), false, smallest);
    }

    // counts[u] = the number of orderings of m + n distinct values in which the first sample's U is u.
    private static double[] ExactCounts(int m, int n)
    {
        // f(i, j, u) = f(i - 1, j, u - j) + f(i, j - 1, u): the largest value belongs to the first sample (beating
        // all j of the second) or to the second.
        var table = new double[m + 1, n + 1][];
        for (int i = 0; i <= m; i++)
        {
            for (int j = 0; j <= n; j++)
            {
                var row = new double[i * j + 1];
                if (i == 0 || j == 0)
                {
                    row[0] = 1;
                }
                else
                {
                    var withFirst = table[i - 1, j];
                    var withSecond = table[i, j - 1];
                    for (int u = 0; u < row.Length; u++)
                        row[u] = (u - j >= 0 && u - j < withFirst.Length ? withFirst[u - j] : 0)
                                 + (u < withSecond.Length ? withSecond[u] : 0);
                }
                table[i, j] = row;
            }
        }
        return table[m, n];
    }

    private static double NormalApproximation(double u, IReadOnlyList<double> first, IReadOnlyList<double> second)
    {
        int m = first.Count, n = second.Count;
        double total = m + n;
        double tieTerm = first.Concat(second).GroupBy(v => v).Sum(g => Math.Pow(g.Count(), 3) - g.Count());
        double variance = m * n / 12.0 * (total + 1 - tieTerm / (total * (total - 1)));
        if (variance <= 0) return 1;
        double distance = Math.Max(0, Math.Abs(u - m * n / 2.0) - 0.5);
        return Math.Min(1, 2 * UpperNormalTail(distance / Math.Sqrt(variance)));
    }

    // P(Z > z) for a standard normal Z, from the complementary error function (Numerical Recipes' erfc,
    // |error| < 1.2e-7).
    private static double UpperNormalTail(double z)
    {
        double x = z / Math.Sqrt(2);
        double t = 1 / (1 + 0.5 * Math.Abs(x));
        double erfc = t * Math.Exp(-x * x - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418
            + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223
            + t * 0.17087277)))))))));
        return 0.5 * (x >= 0 ? erfc : 2 - erfc);
    }
}
