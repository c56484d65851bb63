namespace PerSampleGrads;

/// <summary>
/// The evidence an engine attaches to its result when asked to audit itself: chosen samples recomputed with the
/// single-sample oracle in the same dtype and compared with the engine's rows.
/// </summary>
/// <param name="Samples">The samples recomputed (indices into the batch).</param>
/// <param name="MaxRelativeError">The largest per-parameter relative error of those rows against the oracle
/// (0 when every row matches exactly).</param>
/// <param name="WorstParameter">Where it occurred; null when nothing differs.</param>
/// <param name="Tolerance">The tolerance policy's relative bound for the dtype.</param>
/// <param name="Passed">Every name and shape present and every error within the bound.</param>
/// <param name="Description">The comparison in words (every mismatch when it failed).</param>
public sealed record AuditReport(IReadOnlyList<long> Samples, double MaxRelativeError, string? WorstParameter,
    double Tolerance, bool Passed, string Description);
