using TorchSharp;
using PerSampleGrads.Engines;
using PerSampleGrads.Runs;
using PerSampleGrads.Oracle;
using static TorchSharp.torch;

namespace PerSampleGrads.Benchmarking;

/// <summary>
/// One benchmark workload: a zoo model and batch on a device in one dtype, and the contenders that run on it: plain
/// batch backward (the floor no per-sample method can beat), each engine, and the oracle loop, all in the same dtype.
/// </summary>
public sealed class BenchWorkload : IDisposable
{
    private readonly CompareSettings _settings;
    private readonly nn.Module<Tensor, Tensor> _model;
    private readonly Tensor _inputs;
    private readonly Tensor _targets;

    private readonly int? _chunkSize;

    /// <summary>Builds the model and batch; <paramref name="chunkSize"/> is passed to the functional engine.</summary>
    public BenchWorkload(CompareSettings settings, int? chunkSize = null)
    {
        _settings = settings;
        _chunkSize = chunkSize;
        _model = CompareRun.Build(settings, settings.DType);
        var (x, y) = CompareRun.Batch(settings, settings.DType);
        _inputs = x.DetachFromDisposeScope();
        _targets = y.DetachFromDisposeScope();
    }

    /// <summary>The model, batch, arithmetic and loss this workload was built from.</summary>
    public CompareSettings Settings => _settings;

    private Tf32Mode Tf32 => _settings.Arithmetic.Tf32Mode;

    /// <summary>Name of the plain batch backward contender, the denominator of every ratio.</summary>
    public const string PlainBackward = "plain backward";

    /// <summary>Name of the oracle contender.</summary>
    public const string OracleLoop = "oracle loop";

    /// <summary>
    /// Name of the write floor: plain backward plus writing N x P numbers (the per-sample result's size) into memory
    /// already touched, the cost no method that materialises per-sample gradients can beat on the machine.
    /// </summary>
    public const string WriteFloor = "write floor";

    /// <summary>The clipping bound C the clipping contender runs with (its cost does not depend on C).</summary>
    public const double ClipBound = 1.0;

    private readonly List<IDisposable> _held = [];

    /// <summary>The contenders of <paramref name="methods"/>, in order.</summary>
    public List<BenchContender> Contenders(IEnumerable<BenchMethod> methods) =>
    [
        .. methods.Select(method => method.Kind switch
        {
            BenchMethodKind.PlainBackward => new BenchContender(PlainBackward, PlainBackwardStep),
            BenchMethodKind.WriteFloor => WriteFloorContender(),
            BenchMethodKind.OracleLoop => Method(OracleLoop, new PerSampleGradientOracle(new OracleOptions
                { Tf32 = Tf32 })),
            _ when method.Engine == EngineId.Clipping => ClippingContender(),
            _ => method.Variant switch
            {
                EngineCall.Reuse => Reusing(method),
                EngineCall.Probe => Method(method.Name, EngineCatalogue.Create(method.Engine!, _settings.Device,
                    Tf32, _chunkSize),
                    before: () => Engines.Probing.SampleSeparationProbe.Forget(_model)),
                EngineCall.Audit => Method(method.Name, EngineCatalogue.Create(method.Engine!, _settings.Device,
                    Tf32, _chunkSize, auditSamples: 1)),
                _ => Method(method.Name, EngineCatalogue.Create(method.Engine!, _settings.Device, Tf32,
                    _chunkSize)),
            },
        }),
    ];

    // Plain backward, then N x P numbers written into a buffer touched once when it was made.
    private BenchContender WriteFloorContender()
    {
        long count = _inputs.shape[0] * ModelInspection.TrainableParameters(_model).Sum(p => p.Parameter.numel());
        var buffer = zeros(count, dtype: _settings.DType, device: _settings.Device).DetachFromDisposeScope();
        _held.Add(buffer);
        return new BenchContender(WriteFloor, () =>
        {
            PlainBackwardStep();
            buffer.fill_(1.0);
        });
    }

    // The engine writing into its previous result; the first (warm-up) call allocates it.
    private BenchContender Reusing(BenchMethod contender)
    {
        PerSampleGradients? previous = null;
        var method = EngineCatalogue.Create(contender.Engine!, _settings.Device, Tf32, _chunkSize);
        _held.Add(new Releaser(() => previous?.Dispose()));
        return new BenchContender(contender.Name, () =>
        {
            previous = method switch
            {
                Engines.Hooks.HookEngine hooks => hooks.Compute(_model, _inputs, _targets, _settings.Loss, previous),
                Engines.Functional.FunctionalEngine functional => functional.Compute(_model, _inputs, _targets,
                    _settings.Loss, previous),
                _ => throw new ArgumentException($"Engine '{contender.Engine}' cannot reuse its result."),
            };
        });
    }

    private BenchContender ClippingContender()
    {
        var method = new Engines.Clipping.ClippingMethod(new Engines.Clipping.ClippingOptions
            { ClipBound = ClipBound, Device = _settings.Device, Tf32 = Tf32 });
        return new BenchContender(EngineId.Clipping.Name, () =>
        {
            using var result = method.Compute(_model, _inputs, _targets, _settings.Loss);
        });
    }

    /// <summary>One more call of the clipping method with each phase timed (device synchronised): where its time
    /// goes.</summary>
    public IReadOnlyDictionary<string, double> ClippingPhases()
    {
        var method = new Engines.Clipping.ClippingMethod(new Engines.Clipping.ClippingOptions
            { ClipBound = ClipBound, Device = _settings.Device, Tf32 = Tf32, MeasurePhases = true });
        using var result = method.Compute(_model, _inputs, _targets, _settings.Loss);
        return result.PhaseMilliseconds;
    }

    private sealed class Releaser(Action release) : IDisposable
    {
        public void Dispose() => release();
    }

    private BenchContender Method(string name, IPerSampleGradientMethod method, Action? before = null)
        => new(name, () =>
    {
        before?.Invoke();
        using var result = method.Compute(_model, _inputs, _targets, _settings.Loss);
    });

    // Forward, the declared batch loss, backward into .grad: one training step without the optimizer.
    private void PlainBackwardStep()
    {
        using var scope = NewDisposeScope();
        using var tf32 = new Tf32Scope(Tf32);
        var loss = _settings.Loss.BatchLoss(_model.call(_inputs), _targets);
        loss.backward();
        foreach (var p in _model.parameters()) p.grad = null;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var held in _held) held.Dispose();
        _model.Dispose();
        _inputs.Dispose();
        _targets.Dispose();
    }
}
