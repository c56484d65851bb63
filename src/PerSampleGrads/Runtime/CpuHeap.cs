using System.Runtime.InteropServices;

namespace PerSampleGrads.Runtime;

/// <summary>
/// How the C heap treats large freed blocks, which decides much of the CPU cost of per-sample gradients.
/// </summary>
/// <remarks>
/// <para>glibc serves every allocation above 32 MiB with its own <c>mmap</c> and unmaps it when freed. Per-sample
/// gradients are large (ResNet-18 at N = 32: 1.43 GB per call), so with the default every call pays a page fault per
/// 4 KiB of result: writing 302 MB into fresh memory measured 100–200 ms here, into memory already touched 16 ms.
/// <see cref="RetainFreedMemory"/> makes glibc serve large blocks from its heap (<c>M_MMAP_MAX = 0</c>) and keep freed
/// memory (<c>M_TRIM_THRESHOLD</c> at its maximum), so the next call reuses pages already mapped. The price: the
/// process keeps its peak memory until it exits. The same is done for a Python process with the environment variables
/// <c>MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=2147483647</c> (see <see cref="EnvironmentVariables"/>).</para>
/// <para>Process-wide and opt-in: the library never changes it on its own; the command line applies it only for
/// <c>--heap retain</c>. Measured with ResNet-18 at N = 32 (docs/benchmarks.md, "The heap"): the functional engine
/// settles at a fixed footprint and stops faulting, but the hook engine's mix of large temporaries fragments the heap,
/// which then grows by about 290 MB per call: an experiment for measurements, not a setting for training runs.</para>
/// </remarks>
public static partial class CpuHeap
{
    private const int MTrimThreshold = -1;
    private const int MMmapMax = -4;

    /// <summary>Whether <see cref="RetainFreedMemory"/> took effect in this process.</summary>
    public static bool Retaining { get; private set; }

    /// <summary>The environment variables that give a child process (PyTorch) the same heap behaviour.</summary>
    public static IReadOnlyDictionary<string, string> EnvironmentVariables { get; } = new Dictionary<string, string>
    {
        ["MALLOC_MMAP_MAX_"] = "0",
        ["MALLOC_TRIM_THRESHOLD_"] = int.MaxValue.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };

    /// <summary>Asks glibc to keep large freed blocks for reuse; false where that is not possible (not
    /// glibc).</summary>
    public static bool RetainFreedMemory()
    {
        if (!OperatingSystem.IsLinux()) return false;
        try
        {
            Retaining = Mallopt(MMmapMax, 0) == 1 && Mallopt(MTrimThreshold, int.MaxValue) == 1;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            Retaining = false;
        }
        return Retaining;
    }

    /// <summary>One phrase for reports.</summary>
    public static string Describe() => Retaining
        ? "glibc heap retains freed memory (M_MMAP_MAX=0, M_TRIM_THRESHOLD=max)"
        : "system default heap (large blocks mmapped and returned on free)";

    [LibraryImport("libc", EntryPoint = "mallopt")]
    private static partial int Mallopt(int parameter, int value);
}
