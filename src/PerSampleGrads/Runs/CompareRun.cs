using System.Diagnostics;
using TorchSharp;
using PerSampleGrads.Engines;
using PerSampleGrads.Interop;
using PerSampleGrads.Oracle;
using PerSampleGrads.Checking;
using PerSampleGrads.Zoo;
using static TorchSharp.torch;

namespace PerSampleGrads.Runs;

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
/// <param name="Engines">The methods to compare (<see cref="EngineId"/>).</param>
/// <param name="ClipBound">C for the clipping method; null: the median of the oracle's per-sample norms.</param>
public sealed record CompareSettings(ZooModel Model, long BatchSize, long Seed, Device Device, ScalarType DType,
    bool Tf32, LossFunction Loss, IReadOnlyList<EngineId> Engines, double? ClipBound = null)
{
    /// <summary>The per-sample engines among <see cref="Engines"/>.</summary>
    public IReadOnlyList<EngineId> PerSampleEngines => [.. Engines.Where(e => e.PerSample)];

    /// <summary>The arithmetic the engines use: TF32 only where it exists (float32 on CUDA).</summary>
    public Arithmetic Arithmetic => Arithmetic.On(Device, DType, Tf32);

    /// <summary>One line: <c>small-cnn N=8 float32 cpu CE/mean seed=1</c>.</summary>
    public string Describe() => $"{Model.Name} N={BatchSize} {DescribeArithmeticAndLoss()}";

    /// <summary>What a run of any model and batch size shares: <c>float32 cpu CE/mean seed=1</c>.</summary>
    public string DescribeArithmeticAndLoss() =>
        $"{Arithmetic} {Device} {Loss} seed={Seed}";
}

/// <summary>One engine's result against the oracle.</summary>
/// <param name="Engine">Engine name.</param>
/// <param name="Comparison">Per-parameter errors against the float64 oracle.</param>
/// <param name="Elapsed">Wall time of the engine's second call (device synchronised; the first call warms up).</param>
/// <param name="Audit">The engine's audit of one sample in its first call (the evidence every call can carry).</param>
public sealed record EngineOutcome(string Engine, GradientComparison Comparison, TimeSpan Elapsed,
    AuditReport? Audit = null);

/// <summary>
/// An engine that refused the problem with a <see cref="PerSampleGradientsException"/> instead of computing: no
/// answer, so no wrong answer (the clipping method refuses the LSTM's multi-tensor signature by design).
/// </summary>
/// <param name="Engine">The engine.</param>
/// <param name="Problem">What the engine named.</param>
/// <param name="Message">The engine's message: the problem, the module and the fix.</param>
public sealed record EngineRefusal(EngineId Engine, Problem Problem, string Message);

/// <summary>The result of a comparison run.</summary>
/// <param name="Settings">What was compared.</param>
/// <param name="OracleElapsed">Wall time of the float64 oracle.</param>
/// <param name="Engines">Each engine's outcome.</param>
/// <param name="Parameters">Names and shapes of the trainable parameters, in order.</param>
/// <param name="PyTorch">The cross-check against PyTorch, when asked for.</param>
/// <param name="ClipBound">The bound C the clipping method ran with, when it ran.</param>
/// <param name="Refusals">The engines that refused the problem (not in <paramref name="Engines"/>).</param>
public sealed record CompareOutcome(CompareSettings Settings, TimeSpan OracleElapsed,
    IReadOnlyList<EngineOutcome> Engines, IReadOnlyList<(string Name, long[] Shape)> Parameters,
    PyTorchCrossCheck? PyTorch = null, double? ClipBound = null, IReadOnlyList<EngineRefusal>? Refusals = null)
{
    /// <summary>Every engine that computed is within tolerance (and, when PyTorch was asked, every PyTorch method
    /// that ran); a refusal is no wrong answer.</summary>
    public bool Passed => Engines.All(e => e.Comparison.Passed) && (PyTorch?.Passed ?? true);

    /// <summary>The engines that refused the problem.</summary>
    public IReadOnlyList<EngineRefusal> Refused => Refusals ?? [];
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

        var tolerance = TolerancePolicy.ToleranceFor(settings.Arithmetic);
        using var reference = pytorch is null ? null : PyTorchReference.Compute(
            $"zoo-{settings.Model.Name}-B{settings.BatchSize}", settings.Model.Name, model, x, y, settings.Loss,
            pytorch);
        var kept = new List<PerSampleGradients>();
        var outcomes = new List<EngineOutcome>();
        var refusals = new List<EngineRefusal>();
        foreach (var name in settings.PerSampleEngines)
        {
            try
            {
                outcomes.Add(RunEngine(name, settings, model, x, y, oracle, tolerance, audit, kept));
            }
            catch (PerSampleGradientsException refused)
            {
                refusals.Add(new EngineRefusal(name, refused.Problem, refused.Message));
            }
        }
        double? bound = settings.Engines.Contains(EngineId.Clipping)
            ? settings.ClipBound ?? MedianNorm(oracle)
            : null;
        try
        {
            if (bound is { } c) outcomes.AddRange(Clipping(settings, c, model, x, y, oracle));
        }
        catch (PerSampleGradientsException refused)
        {
            refusals.Add(new EngineRefusal(EngineId.Clipping, refused.Problem, refused.Message));
        }
        try
        {
            var crossCheck = reference is null ? null : PyTorchCrossCheck.Compare(reference, oracle, kept, tolerance);
            var parameters = ModelInspection.TrainableParameters(model).Select(p => (p.Name, p.Parameter.shape))
                .ToList();
            return new CompareOutcome(settings, oracleElapsed, outcomes, parameters, crossCheck, bound, refusals);
        }
        finally
        {
            foreach (var result in kept) result.Dispose();
        }
    }

    // One per-sample engine: an audited call when asked, then the timed call, compared with the oracle; the result
    // joins `kept` (for the PyTorch cross-check).
    private static EngineOutcome RunEngine(EngineId name, CompareSettings settings, nn.Module<Tensor, Tensor> model,
        Tensor x, Tensor y, PerSampleGradients oracle, Tolerance tolerance, bool audit, List<PerSampleGradients> kept)
    {
        AuditReport? auditReport = null;
        if (audit)
            using (var audited = EngineCatalogue.Create(name, settings.Device, settings.Arithmetic.Tf32Mode,
                           auditSamples: 1)
                       .Compute(model, x, y, settings.Loss))
                auditReport = audited.Audit;
        var engine = EngineCatalogue.Create(name, settings.Device, settings.Arithmetic.Tf32Mode);
        Synchronize(settings.Device);
        var stopwatch = Stopwatch.StartNew();
        var result = engine.Compute(model, x, y, settings.Loss);
        Synchronize(settings.Device);
        var elapsed = stopwatch.Elapsed;
        kept.Add(result);
        return new EngineOutcome(name.Name, GradientComparison.Compare(result, oracle, tolerance), elapsed,
            auditReport);
    }

    /// <summary>Row names of the clipping method's two comparisons: its norms and its clipped sums.</summary>
    public const string ClippingNorms = "clipping-norms", ClippingSums = "clipping-sums";

    // The clipping method (second call timed) against the definition on the float64 oracle: two rows.
    private static List<EngineOutcome> Clipping(CompareSettings settings, double bound, nn.Module<Tensor, Tensor> model,
        Tensor x, Tensor y, PerSampleGradients oracle)
    {
        using var expected = ClippedGradients.FromPerSampleGradients(oracle, bound);
        var method = new Engines.Clipping.ClippingMethod(new Engines.Clipping.ClippingOptions
            { ClipBound = bound, Device = settings.Device, Tf32 = settings.Arithmetic.Tf32Mode });
        method.Compute(model, x, y, settings.Loss).Dispose();
        Synchronize(settings.Device);
        var stopwatch = Stopwatch.StartNew();
        using var actual = method.Compute(model, x, y, settings.Loss);
        Synchronize(settings.Device);
        var elapsed = stopwatch.Elapsed;
        var comparison = ClippingComparison.Compare(actual, expected, TolerancePolicy.ToleranceFor(
            settings.Arithmetic));
        return [new EngineOutcome(ClippingNorms, comparison.Norms, elapsed), new EngineOutcome(ClippingSums,
            comparison.ClippedSums, elapsed)];
    }

    /// <summary>The median of the per-sample gradient norms of <paramref name="perSample"/> (1 when they are all
    /// 0).</summary>
    public static double MedianNorm(PerSampleGradients perSample)
    {
        using var definition = ClippedGradients.FromPerSampleGradients(perSample, double.PositiveInfinity);
        using var scope = NewDisposeScope();
        double median = definition.Norms.to(ScalarType.Float64).median().item<double>();
        return median > 0 ? median : 1.0;
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
