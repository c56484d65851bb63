using PerSampleGrads.Engines;
using System.CommandLine;
using PerSampleGrads.Runs;
using PerSampleGrads.Zoo;
using TorchSharp;
using static TorchSharp.torch;

namespace PerSampleGrads.Cli.Commands;

/// <summary>
/// The options that describe a workload (model, seed, device, arithmetic, loss) and the process (threads, heap), shared
/// by <c>compare</c> and <c>bench</c>, and their parsing into <see cref="CompareSettings"/>.
/// </summary>
internal sealed class WorkloadOptions(string defaultModel)
{
    public Option<string> Model { get; } = Choices.Model(defaultModel);
    public Option<long> Seed { get; } = Choices.Seed();
    public Option<string> Device { get; } = Choices.Device();
    public Option<string> DType { get; } = Choices.DType();
    public Option<string> Tf32 { get; } = Choices.Tf32();
    public Option<string> Loss { get; } = Choices.Loss();
    public Option<string> Reduction { get; } = Choices.Reduction();
    public Option<int?> Threads { get; } = Choices.Threads();
    public Option<string> Heap { get; } = Choices.Heap();

    public void AddTo(Command command)
    {
        foreach (var option in new Option[] { Model, Seed, Device, DType, Tf32, Loss, Reduction, Threads, Heap })
            command.Options.Add(option);
    }

    /// <summary>Applies the process-wide settings (threads, heap); call before building anything.</summary>
    public void ApplyToProcess(ParseResult parse)
    {
        Choices.ApplyThreads(parse.GetValue(Threads));
        Choices.ApplyHeap(parse.GetValue(Heap));
    }

    /// <summary>The settings; <paramref name="model"/> and <paramref name="device"/> replace the options' values when
    /// given.</summary>
    public CompareSettings Settings(ParseResult parse, long batchSize, IReadOnlyList<EngineId> engines,
        ZooModel? model = null, string? device = null) =>
        new(model ?? ModelZoo.Get(parse.GetValue(Model)!), batchSize, parse.GetValue(Seed),
            Choices.ParseDevice(device ?? parse.GetValue(Device)!), ElementTypes.Parse(parse.GetValue(DType)!),
                parse.GetValue(Tf32) == "on",
            Choices.ParseLoss(parse.GetValue(Loss)!, parse.GetValue(Reduction)!), engines);
}

/// <summary>Options shared by the commands, and their parsing into library types.</summary>
internal static class Choices
{
    public static Option<string> Model(string fallback) => new Option<string>("--model", "-m")
    {
        Description = $"Zoo model: {string.Join(", ", ModelZoo.All.Select(m => m.Name))}.",
        DefaultValueFactory = _ => fallback,
    }.AcceptOnlyFromAmong([.. ModelZoo.All.Select(m => m.Name)]);

    public static Option<long> Seed() => new("--seed") { Description = "Seed of the weights and the batch.",
        DefaultValueFactory = _ => 1 };

    public static Option<string> Device() => new Option<string>("--device")
    {
        Description = "cpu or cuda (CUDA needs a CUDA libtorch: see README, 'On a CUDA machine').",
        DefaultValueFactory = _ => "cpu",
    }.AcceptOnlyFromAmong("cpu", "cuda");

    public static Option<string> DType() => new Option<string>("--dtype")
    {
        Description = "Element type of the engines: float32 or float64.",
        DefaultValueFactory = _ => "float32",
    }.AcceptOnlyFromAmong([.. ElementTypes.GradientTypeNames]);

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

    public static Option<int?> Threads() => new("--threads")
    {
        Description = $"CPU threads for TorchSharp (torch.set_num_threads), 1 to "
            + $"{Runtime.Preflight.ThreadsPerProcessor}x the logical processors ({Runtime.Preflight.MaxThreads} "
            + $"here); default: libtorch's choice, one per processor.",
    };

    public static Option<string> Heap() => new Option<string>("--heap")
    {
        Description = "system: glibc's default (large blocks are unmapped when freed, so every call page-faults its " +
            "fresh result); retain: keep freed memory in glibc's heap so later calls can reuse mapped pages (an " +
            "experiment: the heap may grow with fragmentation, see docs/benchmarks.md).",
        DefaultValueFactory = _ => "system",
    }.AcceptOnlyFromAmong("retain", "system");

    public static void ApplyHeap(string? choice)
    {
        if (choice == "retain") PerSampleGrads.Runtime.CpuHeap.RetainFreedMemory();
    }

    public static Device ParseDevice(string name) => name == "cuda" ? new Device(DeviceType.CUDA, 0) : CPU;

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
        var items = value.Split(',', StringSplitOptions.RemoveEmptyEntries |
            StringSplitOptions.TrimEntries).Distinct().ToList();
        if (items.Count == 0)
            throw new Runtime.UsageException($"Name at least one {what}: {string.Join(", ", known)} "
                + $"(comma-separated).");
        var unknown = items.Where(i => !known.Contains(i)).ToList();
        if (unknown.Count > 0)
            throw new Runtime.UsageException($"Unknown {what} '{string.Join(", ", unknown)}'. Choose from: "
                + $"{string.Join(", ", known)} (comma-separated).");
        return items;
    }

    public static void ApplyThreads(int? threads)
    {
        Runtime.Preflight.RequireThreads(threads);
        if (threads is { } n) set_num_threads(n);
    }

    /// <summary>The methods named in <paramref name="value"/> (comma-separated), in the order given.</summary>
    public static IReadOnlyList<EngineId> ParseEngines(string value) =>
        [.. ParseList(value, [.. EngineId.All.Select(e => e.Name)], "engine").Select(EngineId.Parse)];
}
