using System.Diagnostics;
using TorchSharp;
using PerSampleGrads.Interop;
using PerSampleGrads.Oracle;
using PerSampleGrads.Verification;
using PerSampleGrads.Zoo;
using static TorchSharp.torch;

namespace PerSampleGrads.Comparison;

/// <summary>
/// What to compare: a zoo model and batch, where and in which arithmetic the engines run, the loss, the engines.
/// </summary>
/// <param name="Model">The zoo model.</param>
/// <param name="BatchSize">N.</param>
/// <param name="Seed">Seed of the weights and the batch.</param>
/// <param name="Device">Device of the engines (the oracle runs there too).</param>
/// <param name="DType">Element type of the engines.</param>
/// <param name="Tf32">Whether float32 products may use TF32 (CUDA only).</param>
/// <param name="Loss">Loss and reduction.</param>
/// <param name="Engines">Engine names (<see cref="EngineCatalogue"/>).</param>
public sealed record CompareSettings(ZooModel Model, long BatchSize, long Seed, Device Device, ScalarType DType, bool Tf32,
    LossFunction Loss, IReadOnlyList<string> Engines)
{
    /// <summary>The arithmetic the engines use.</summary>
    public PrecisionMode Precision => Tf32 && DType == ScalarType.Float32 && Device.type == DeviceType.CUDA ? PrecisionMode.Tf32 : PrecisionMode.Ieee;

    /// <summary>The TF32 mode engines are run with.</summary>
    public Tf32Mode Tf32Mode => Tf32 ? Tf32Mode.ForceOn : Tf32Mode.ForceOff;

    /// <summary>One line: <c>small-cnn N=8 float32 cpu CE/mean seed=1</c>.</summary>
    public string Describe() => $"{Model.Name} N={BatchSize} {ElementTypes.Name(DType)}{(Precision == PrecisionMode.Tf32 ? "+TF32" : "")} {Device} {Loss} seed={Seed}";
}

/// <summary>One engine's result against the oracle.</summary>
/// <param name="Engine">Engine name.</param>
/// <param name="Comparison">Per-parameter errors against the float64 oracle.</param>
/// <param name="Elapsed">Wall time of the engine's second call (device synchronised; the first call warms up).</param>
/// <param name="Audit">The engine's audit of one sample in its first call (the evidence every call can carry).</param>
public sealed record EngineOutcome(string Engine, GradientComparison Comparison, TimeSpan Elapsed,
    AuditReport? Audit = null);

/// <summary>The result of a comparison run.</summary>
/// <param name="Settings">What was compared.</param>
/// <param name="OracleElapsed">Wall time of the float64 oracle.</param>
/// <param name="Engines">Each engine's outcome.</param>
/// <param name="Parameters">Names and shapes of the trainable parameters, in order.</param>
/// <param name="PyTorch">The cross-check against PyTorch, when asked for.</param>
public sealed record CompareOutcome(CompareSettings Settings, TimeSpan OracleElapsed, IReadOnlyList<EngineOutcome> Engines,
    IReadOnlyList<(string Name, long[] Shape)> Parameters, PyTorchCrossCheck? PyTorch = null)
{
    /// <summary>Every engine within tolerance (and, when PyTorch was asked, every PyTorch method that ran).</summary>
    public bool Passed => Engines.All(e => e.Comparison.Passed) && (PyTorch?.Passed ?? true);
}

/// <summary>Models built from one <see cref="CompareSettings"/>, lent to several runs.</summary>
/// <param name="Engines">The model in the settings' dtype on its device (the engines' model).</param>
/// <param name="Float64">The same weights in float64 on the same device (the oracle's model).</param>
public sealed record CompareModels(nn.Module<Tensor, Tensor> Engines, nn.Module<Tensor, Tensor> Float64);

/// <summary>Runs the float64 oracle and the engines on one problem and compares them.</summary>
public static class CompareRun
{
    /// <summary>
    /// Builds the model and batch, runs the oracle (reporting progress) and every engine, and compares; with
    /// <paramref name="pytorch"/>, also asks PyTorch for its per-sample gradients on the same weights and batch. With
    /// <paramref name="audit"/>, each engine is first called once auditing one sample (its outcome keeps the audit,
    /// and the timed call is then warm); without it, each engine is called once and that call is timed.
    /// <paramref name="models"/> lends models already built from the settings (kept by the caller, so that several
    /// losses reuse one model and its cached sample-separation probe); by default they are built here.
    /// </summary>
    public static CompareOutcome Run(CompareSettings settings, Action<long, long>? oracleProgress = null,
        PyTorchReferenceOptions? pytorch = null, bool audit = true, CompareModels? models = null)
    {
        BatchValidator.RequireAvailable(settings.Device);
        using var built = models is null ? Build(settings, settings.DType) : null;
        var model = models?.Engines ?? built!;
        var (x, y) = Batch(settings, settings.DType);
        using var scope = NewDisposeScope();

        var stopwatch = Stopwatch.StartNew();
        using var oracle = models is { Float64: { } float64 }
            ? new PerSampleGradientOracle(new OracleOptions { Progress = oracleProgress })
                .Compute(float64, x, y, settings.Loss)
            : new PerSampleGradientOracle(new OracleOptions
            {
                ComputeDType = ScalarType.Float64, ModelFactory = () => settings.Model.Build(settings.Seed),
                Progress = oracleProgress,
            }).Compute(model, x, y, settings.Loss);
        var oracleElapsed = stopwatch.Elapsed;

        var tolerance = TolerancePolicy.ToleranceFor(settings.DType, settings.Precision);
        using var reference = pytorch is null ? null : PyTorchReference.Compute(
            $"zoo-{settings.Model.Name}-B{settings.BatchSize}", model, x, y, settings.Loss, pytorch with { Architecture = settings.Model.Name });
        var kept = new List<PerSampleGradients>();
        var outcomes = new List<EngineOutcome>();
        foreach (var name in settings.Engines)
        {
            AuditReport? auditReport = null;
            if (audit)
                using (var audited = EngineCatalogue.Create(name, settings.Device, settings.Tf32Mode, auditSamples: 1)
                           .Compute(model, x, y, settings.Loss))
                    auditReport = audited.Audit;
            var engine = EngineCatalogue.Create(name, settings.Device, settings.Tf32Mode);
            Synchronize(settings.Device);
            stopwatch.Restart();
            var result = engine.Compute(model, x, y, settings.Loss);
            Synchronize(settings.Device);
            var elapsed = stopwatch.Elapsed;
            kept.Add(result);
            outcomes.Add(new EngineOutcome(name, GradientComparison.Compare(result, oracle, tolerance), elapsed,
                auditReport));
        }
        try
        {
            var crossCheck = reference is null ? null : PyTorchCrossCheck.Compare(reference, oracle, kept, tolerance);
            var parameters = ModelInspection.TrainableParameters(model).Select(p => (p.Name, p.Parameter.shape)).ToList();
            return new CompareOutcome(settings, oracleElapsed, outcomes, parameters, crossCheck);
        }
        finally
        {
            foreach (var result in kept) result.Dispose();
        }
    }

    /// <summary>The zoo model in <paramref name="dtype"/> on the settings' device.</summary>
    public static nn.Module<Tensor, Tensor> Build(CompareSettings settings, ScalarType dtype)
    {
        var model = settings.Model.Build(settings.Seed);
        if (dtype != ScalarType.Float32) model.to(dtype);
        if (settings.Device.type != DeviceType.CPU) model.to(settings.Device);
        return model;
    }

    /// <summary>The batch in <paramref name="dtype"/> (floating inputs) on the settings' device.</summary>
    public static (Tensor Inputs, Tensor Targets) Batch(CompareSettings settings, ScalarType dtype)
    {
        var (x, y) = settings.Model.MakeBatch(settings.BatchSize, settings.Seed);
        if (is_floating_point(x)) x = x.to(dtype);
        if (settings.Loss.Targets == TargetKind.Values)
        {
            // Regression losses on a classifier's outputs: targets are standard normal values, one per output.
            using var generator = Seeded.Generator(settings.Seed + 1);
            y = randn([settings.BatchSize, settings.Model.Classes], generator: generator).to(dtype);
        }
        return (x.to(settings.Device), y.to(settings.Device));
    }

    /// <summary>Waits for the device's queued work (no-op on the CPU).</summary>
    public static void Synchronize(Device device)
    {
        if (device.type == DeviceType.CUDA) cuda.synchronize();
    }
}
