namespace PerSampleGrads.Cli;

/// <summary>
/// <c>psg</c>'s exit codes. A CI step can tell "the engines disagree" (1) from "the run could not happen" (2) and
/// from a bug in psg itself (3); a run ended by a signal exits as the signal's default action does (130 for SIGINT,
/// 143 for SIGTERM).
/// </summary>
public static class ExitCodes
{
    /// <summary>Every engine agrees with the oracle; no contender is slower than the baseline; snapshots
    /// unchanged.</summary>
    public const int Agree = 0;

    /// <summary>Some engine disagrees with the oracle, a contender is significantly slower than the baseline, or
    /// snapshots changed.</summary>
    public const int Disagree = 1;

    /// <summary>Bad usage, bad input or an unfit environment (missing Python, unwritable path, too little
    /// memory).</summary>
    public const int BadUsage = 2;

    /// <summary>An unexpected failure: a bug in psg.</summary>
    public const int InternalError = 3;
}
