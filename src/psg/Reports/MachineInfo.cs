using TorchSharp;
using static TorchSharp.torch;

namespace PerSampleGrads.Cli.Reports;

/// <summary>One line naming the machine a figure came from.</summary>
internal static class MachineInfo
{
    public static string Describe(Device device)
    {
        string cpu = File.Exists("/proc/cpuinfo")
            ? File.ReadLines("/proc/cpuinfo").FirstOrDefault(l
                => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "unknown CPU"
            : "unknown CPU";
        string where = device.type == DeviceType.CUDA ? $"CUDA device {Math.Max(device.index, 0)} (host {cpu})" : cpu;
        return $"{where}, {Environment.ProcessorCount} cores, {get_num_threads()} torch threads, TorchSharp " +
            $"{typeof(torch).Assembly.GetName().Version}, .NET {Environment.Version}, " +
            $"{PerSampleGrads.Runtime.CpuHeap.Describe()}";
    }
}
