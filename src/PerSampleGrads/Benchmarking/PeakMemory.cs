using TorchSharp;
using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace PerSampleGrads.Benchmarking;

/// <summary>
/// Peak memory of one call. On Linux CPU runs it is the growth of the process's peak resident set (VmHWM) over the
/// resident set just before the call, after glibc has returned its free memory to the system (<c>malloc_trim</c>) and
/// the peak has been reset (<c>/proc/self/clear_refs</c>): without the trim, memory freed by earlier calls would be
/// reused without showing. On CUDA TorchSharp 0.107 exposes no allocator statistics, so nothing is measured there and
/// the result says so.
/// </summary>
public static partial class PeakMemory
{
    /// <summary>Bytes by which the peak resident set grew during <paramref name="call"/>, or null when not
    /// measurable.</summary>
    public static long? Measure(Action call, Device device)
    {
        if (device.type != DeviceType.CPU || !OperatingSystem.IsLinux() || !TrimHeap() || !ResetPeak())
        {
            call();
            return null;
        }
        long? before = ReadKilobytes("VmRSS");
        call();
        long? peak = ReadKilobytes("VmHWM");
        return before is null || peak is null ? null : Math.Max(0, peak.Value - before.Value) * 1024;
    }

    /// <summary>Why <see cref="Measure"/> returns null on <paramref name="device"/>, for reports.</summary>
    public static string NotMeasuredReason(Device device) => device.type == DeviceType.CUDA
        ? "not measured: TorchSharp 0.107 exposes no CUDA allocator statistics"
        : "not measured: needs Linux with glibc (/proc/self/clear_refs, malloc_trim)";

    [LibraryImport("libc", EntryPoint = "malloc_trim")]
    private static partial int MallocTrim(nuint pad);

    private static bool TrimHeap()
    {
        try
        {
            MallocTrim(0);
            return true;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;
        }
    }

    private static bool ResetPeak()
    {
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static long? ReadKilobytes(string field)
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
        {
            if (!line.StartsWith(field + ":", StringComparison.Ordinal)) continue;
            var parts = line[(field.Length + 1)..].Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
            return long.TryParse(parts[0], out var kb) ? kb : null;
        }
        return null;
    }
}
