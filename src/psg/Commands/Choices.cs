using System.CommandLine;
using PerSampleGrads.Comparison;
using PerSampleGrads.Zoo;
using TorchSharp;
using static TorchSharp.torch;

namespace PerSampleGrads.Cli.Commands;

/// <summary>Options shared by the commands, and their parsing into library types.</summary>
internal static class Choices
{
    public static Option<string> Model(string fallback) => new Option<string>("--model", "-m")
    {
        Description = $"Zoo model: {string.Join(", ", ModelZoo.All.Select(m => m.Name))}.",
        DefaultValueFactory = _ => fallback,
    }.AcceptOnlyFromAmong([.. ModelZoo.All.Select(m => m.Name)]);

    public static Option<long> Seed() => new("--seed") { Description = "Seed of the weights and the batch.", DefaultValueFactory = _ => 1 };

    public static Option<string> Device() => new Option<string>("--device")
    {
        Description = "cpu or cuda (CUDA needs a CUDA libtorch: see README, 'On a CUDA machine').",
        DefaultValueFactory = _ => "cpu",
    }.AcceptOnlyFromAmong("cpu", "cuda");

    public static Option<string> DType() => new Option<string>("--dtype")
    {
        Description = "Element type of the engines: float32 or float64.",
        DefaultValueFactory = _ => "float32",
    }.AcceptOnlyFromAmong("float32", "float64");

    public static Option<string> Tf32() => new Option<string>("--tf32")
    {
        Description = "TF32 for float32 products on CUDA: on (cuDNN's default) or off.",
        DefaultValueFactory = _ => "off",
    }.AcceptOnlyFromAmong("on", "off");

    public static Option<string> Loss() => new Option<string>("--loss")
    {
        Description = "Loss: ce (cross-entropy), nll, mse or l1.",
        DefaultValueFactory = _ => "ce",
    }.AcceptOnlyFromAmong("ce", "nll", "mse", "l1");

    public static Option<string> Reduction() => new Option<string>("--reduction")
    {
        Description = "Declared reduction: mean or sum (per-sample gradients are each sample's own loss's either way).",
        DefaultValueFactory = _ => "mean",
    }.AcceptOnlyFromAmong("mean", "sum");

    public static Option<int?> Threads() => new("--threads") { Description = "CPU threads for TorchSharp (torch.set_num_threads); default: libtorch's choice." };

    public static Option<string> Heap() => new Option<string>("--heap")
    {
        Description = "system: glibc's default (large blocks are unmapped when freed, so every call page-faults its fresh result); retain: keep freed memory in glibc's heap so later calls can reuse mapped pages (an experiment: the heap may grow with fragmentation, see docs/benchmarks.md).",
        DefaultValueFactory = _ => "system",
    }.AcceptOnlyFromAmong("retain", "system");

    public static void ApplyHeap(string? choice)
    {
        if (choice == "retain") PerSampleGrads.Runtime.CpuHeap.RetainFreedMemory();
    }

    public static Device ParseDevice(string name) => name == "cuda" ? new Device(DeviceType.CUDA, 0) : CPU;

    public static ScalarType ParseDType(string name) => name == "float64" ? ScalarType.Float64 : ScalarType.Float32;

    public static LossFunction ParseLoss(string name, string reduction)
    {
        var r = reduction == "sum" ? LossReduction.Sum : LossReduction.Mean;
        return name switch
        {
            "nll" => LossFunction.NegativeLogLikelihood(r),
            "mse" => LossFunction.MeanSquaredError(r),
            "l1" => LossFunction.L1(r),
            _ => LossFunction.CrossEntropy(r),
        };
    }

    public static IReadOnlyList<string> ParseList(string value, IReadOnlyList<string> known, string what)
    {
        var items = value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Distinct().ToList();
        var unknown = items.Where(i => !known.Contains(i)).ToList();
        if (items.Count == 0 || unknown.Count > 0)
            throw new ArgumentException($"Unknown {what} '{string.Join(", ", unknown)}'. Choose from: {string.Join(", ", known)} (comma-separated).");
        return items;
    }

    public static void ApplyThreads(int? threads)
    {
        if (threads is null) return;
        if (threads < 1) throw new ArgumentException($"--threads must be at least 1, got {threads}.");
        set_num_threads(threads.Value);
    }

    public static IReadOnlyList<string> EngineNames => EngineCatalogue.Names;
}
