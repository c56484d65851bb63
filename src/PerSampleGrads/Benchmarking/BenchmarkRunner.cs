using System.Diagnostics;
using PerSampleGrads.Runs;
using static TorchSharp.torch;

namespace PerSampleGrads.Benchmarking;

/// <summary>Something timed: a name and one call of the work.</summary>
/// <param name="Name">Row name (<c>plain backward</c>, <c>hooks</c>, ...).</param>
/// <param name="Run">One call; it must release what it allocates.</param>
public sealed record BenchContender(string Name, Action Run);

/// <summary>The repeats of one contender, in milliseconds.</summary>
/// <param name="Name">Contender.</param>
/// <param name="Milliseconds">Each timed repeat, in order.</param>
/// <param name="PeakBytes">Peak memory growth of one call (see <see cref="PeakMemory"/>), or null when not
/// measured.</param>
public sealed record BenchTiming(string Name, IReadOnlyList<double> Milliseconds, long? PeakBytes)
{
    /// <summary>Median of the repeats.</summary>
    public double Median => Quantile(0.5);

    /// <summary>The fastest repeat, in milliseconds.</summary>
    public double Min => Milliseconds.Min();

    /// <summary>The slowest repeat, in milliseconds.</summary>
    public double Max => Milliseconds.Max();

    /// <summary>Interquartile range relative to the median: the run-to-run spread.</summary>
    public double RelativeSpread => Median > 0 ? (Quantile(0.75) - Quantile(0.25)) / Median : 0;

    private double Quantile(double q)
    {
        var sorted = Milliseconds.Order().ToArray();
        double position = q * (sorted.Length - 1);
        int below = (int)Math.Floor(position);
        int above = Math.Min(below + 1, sorted.Length - 1);
        return sorted[below] + (sorted[above] - sorted[below]) * (position - below);
    }
}

/// <summary>What a benchmark's milliseconds are.</summary>
public enum BenchClock
{
    /// <summary>Elapsed wall time (the default; what a user waits for).</summary>
    Wall,
    /// <summary>
    /// CPU time of the whole process, every thread and kernel time (page faults) included
    /// (<c>CLOCK_PROCESS_CPUTIME_ID</c>, Linux): with T threads busy it is about T times the wall time, but other
    /// processes competing for the cores inflate it much less: with one thread ratios stay readable on a shared machine
    /// (with several, OpenMP threads spin while waiting for a descheduled partner, which counts). CPU only.
    /// </summary>
    ProcessCpu,
}

/// <summary>
/// Times contenders the same way: warm-up calls first, then repeats interleaved (one call of each contender per
/// round, so that drifts of the machine hit all of them alike), with the device synchronised around each call.
/// </summary>
/// <remarks>
/// The warm-up runs each contender at least <c>warmUp</c> times and then on until it has made
/// <see cref="JitWarmUpCalls"/> calls or spent <see cref="JitWarmUpBudget"/>: .NET first compiles a method without
/// optimisation and recompiles it optimised after about 30 calls, and until then the engines' managed work (hooks,
/// rules, inspection) is slower; on small models that was up to a third of a call (zoo <c>lstm</c>, N = 32: hooks
/// 3.3x plain backward after 2 warm-up calls, 2.5x after 60, docs/benchmarks.md). A training loop runs the optimised
/// code.
/// </remarks>
public static class BenchmarkRunner
{
    /// <summary>Calls per contender after which the warm-up may stop (the JIT has optimised what runs).</summary>
    public const int JitWarmUpCalls = 40;

    /// <summary>Warm-up time per contender after which the warm-up stops even short of
    /// <see cref="JitWarmUpCalls"/> (slow contenders, whose managed work weighs little).</summary>
    public static readonly TimeSpan JitWarmUpBudget = TimeSpan.FromSeconds(2);

    /// <summary>Measures every contender; <paramref name="progress"/> hears (contender, round).</summary>
    public static List<BenchTiming> Measure(IReadOnlyList<BenchContender> contenders, Device device, int warmUp,
        int repeats,
        bool measureMemory = true, Action<string, int>? progress = null, BenchClock clock = BenchClock.Wall)
    {
        if (clock == BenchClock.ProcessCpu && (device.type != TorchSharp.DeviceType.CPU || !OperatingSystem.IsLinux()))
            throw new ArgumentException("The process CPU clock measures CPU work on Linux only: use the wall clock " +
                "on CUDA or elsewhere.");
        if (repeats < 1) throw new ArgumentOutOfRangeException(nameof(repeats), repeats,
            "At least one repeat is needed.");
        foreach (var contender in contenders)
        {
            var warming = Stopwatch.StartNew();
            for (int i = 0; i < warmUp || (i < JitWarmUpCalls && warming.Elapsed < JitWarmUpBudget); i++)
                contender.Run();
        }

        var times = contenders.ToDictionary(c => c.Name, _ => new List<double>());
        var stopwatch = new Stopwatch();
        for (int round = 0; round < repeats; round++)
        {
            foreach (var contender in contenders)
            {
                progress?.Invoke(contender.Name, round);
                CompareRun.Synchronize(device);
                double cpuBefore = clock == BenchClock.ProcessCpu ? ProcessCpuClock.Milliseconds() : 0;
                stopwatch.Restart();
                contender.Run();
                CompareRun.Synchronize(device);
                times[contender.Name].Add(clock == BenchClock.ProcessCpu
                    ? ProcessCpuClock.Milliseconds() - cpuBefore
                    : stopwatch.Elapsed.TotalMilliseconds);
            }
        }
        // Memory last: measuring it hands freed memory back to the system, which the timed calls must not pay for.
        var peaks = contenders.ToDictionary(c => c.Name, c => measureMemory ? PeakMemory.Measure(c.Run, device) : null);
        return contenders.Select(c => new BenchTiming(c.Name, times[c.Name], peaks[c.Name])).ToList();
    }
}

/// <summary>The process's CPU time, every thread included (<c>clock_gettime(CLOCK_PROCESS_CPUTIME_ID)</c>).</summary>
internal static partial class ProcessCpuClock
{
    private const int ProcessCpuTimeId = 2;

    [System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "clock_gettime")]
    private static partial int ClockGetTime(int clock, out TimeSpec time);

    /// <summary>Milliseconds of CPU time the process has used.</summary>
    public static double Milliseconds()
    {
        if (ClockGetTime(ProcessCpuTimeId, out var time) != 0)
            throw new InvalidOperationException("clock_gettime(CLOCK_PROCESS_CPUTIME_ID) failed.");
        return time.Seconds * 1e3 + time.Nanoseconds / 1e6;
    }
}
