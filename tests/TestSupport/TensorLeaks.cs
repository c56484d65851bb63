using TorchSharp;

namespace PerSampleGrads.Tests;

/// <summary>Live-tensor counting for leak tests (TorchSharp's per-thread dispose statistics).</summary>
public static class TensorLeaks
{
    /// <summary>
    /// Runs <paramref name="call"/> <paramref name="warmUp"/> times, then <paramref name="repeats"/> more times, and
    /// returns the growth of the live tensor count over the second stretch (0 when nothing leaks).
    /// </summary>
    public static long Growth(Action call, int repeats, int warmUp = 10)
    {
        DisposeScopeManager.Statistics.Reset();
        for (int i = 0; i < warmUp; i++) call();
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        for (int i = 0; i < repeats; i++) call();
        return DisposeScopeManager.Statistics.ThreadTotalLiveCount - before;
    }
}
