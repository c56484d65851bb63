using TorchSharp;
using PerSampleGrads.Comparison;
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

    /// <summary>The settings.</summary>
    public CompareSettings Settings => _settings;

    /// <summary>Name of the plain batch backward contender, the denominator of every ratio.</summary>
    public const string PlainBackward = "plain backward";

    /// <summary>Name of the oracle contender.</summary>
    public const string OracleLoop = "oracle loop";

    /// <summary>Suffix of an engine contender that audits one sample per call (<c>hooks+audit</c>).</summary>
    public const string AuditSuffix = "+audit";

    /// <summary>Suffix of an engine contender whose sample-separation probe runs on every call instead of once per
    /// model and input shape (<c>hooks+probe</c>): its cost is the difference to the plain engine row.</summary>
    public const string ProbeSuffix = "+probe";

    /// <summary>The contenders named in <paramref name="methods"/> (<c>plain</c>, <c>hooks</c>, <c>functional</c>,
    /// <c>oracle</c>, and an engine with <see cref="AuditSuffix"/>).</summary>
    public List<BenchContender> Contenders(IEnumerable<string> methods)
    {
        var contenders = new List<BenchContender>();
        foreach (var method in methods)
        {
            contenders.Add(method switch
            {
                "plain" => new BenchContender(PlainBackward, PlainBackwardStep),
                "oracle" => Method(OracleLoop, new PerSampleGradientOracle(new OracleOptions { Tf32 = _settings.Tf32Mode })),
                _ when method.EndsWith(ProbeSuffix, StringComparison.Ordinal) => Method(method, EngineCatalogue.Create(
                    method[..^ProbeSuffix.Length], _settings.Device, _settings.Tf32Mode, _chunkSize),
                    before: () => Engines.Probing.SampleSeparationProbe.Forget(_model)),
                _ when method.EndsWith(AuditSuffix, StringComparison.Ordinal) => Method(method, EngineCatalogue.Create(
                    method[..^AuditSuffix.Length], _settings.Device, _settings.Tf32Mode, _chunkSize, auditSamples: 1)),
                _ => Method(method, EngineCatalogue.Create(method, _settings.Device, _settings.Tf32Mode, _chunkSize)),
            });
        }
        return contenders;
    }

    private BenchContender Method(string name, IPerSampleGradientMethod method, Action? before = null) => new(name, () =>
    {
        before?.Invoke();
        using var result = method.Compute(_model, _inputs, _targets, _settings.Loss);
    });

    // Forward, the declared batch loss, backward into .grad: one training step without the optimizer.
    private void PlainBackwardStep()
    {
        using var scope = NewDisposeScope();
        using var tf32 = new Tf32Scope(_settings.Tf32Mode);
        var loss = _settings.Loss.BatchLoss(_model.call(_inputs), _targets);
        loss.backward();
        foreach (var p in _model.parameters()) p.grad = null;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _model.Dispose();
        _inputs.Dispose();
        _targets.Dispose();
    }
}
