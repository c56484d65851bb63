using TorchSharp;
using static TorchSharp.torch;

namespace PerSampleGrads.Tests;

/// <summary>
/// Everything about a model a per-sample method must not change: parameter and buffer values (bit for bit),
/// parameter identities, <c>requires_grad</c> flags, <c>.grad</c> tensors, training flags; and its output on a probe
/// input, which also shows that no hook is left behind.
/// </summary>
public sealed class ModelSnapshot : IDisposable
{
    private readonly nn.Module<Tensor, Tensor> _model;
    private readonly List<(string Name, Tensor Parameter, Tensor Value, bool RequiresGrad, Tensor? Grad)> _parameters =
        [];
    private readonly List<(string Name, Tensor Value)> _buffers = [];
    private readonly List<(string Path, bool Training)> _modes = [];
    private readonly Tensor _probeInput;
    private readonly Tensor _probeOutput;

    /// <summary>Takes the snapshot; <paramref name="probeInput"/> is run through the model (no grad).</summary>
    public ModelSnapshot(nn.Module<Tensor, Tensor> model, Tensor probeInput)
    {
        _model = model;
        foreach (var (name, p) in model.named_parameters())
        {
            var grad = p.grad;
            _parameters.Add((name, p, p.detach().clone().DetachFromDisposeScope(), p.requires_grad,
                grad?.clone().DetachFromDisposeScope()));
            grad?.Dispose();
        }
        foreach (var (name, b) in model.named_buffers())
            _buffers.Add((name, b.detach().clone().DetachFromDisposeScope()));
        foreach (var m in ModelInspection.AllModules(model))
            _modes.Add((m.Path, m.Module.training));
        _probeInput = probeInput.clone().DetachFromDisposeScope();
        _probeOutput = Probe().DetachFromDisposeScope();
    }

    // The model's output in eval mode, so that the probe draws no random numbers, with buffers, modes and flags put
    // back afterwards (libtorch's InstanceNorm rewrites its running statistics on every forward, even in eval mode).
    private Tensor Probe()
    {
        using var guard = ModelStateGuard.Capture(_model);
        _model.eval();
        using (no_grad()) return _model.call(_probeInput);
    }

    /// <summary>Every difference from the snapshot, one per line (empty when unchanged).</summary>
    public List<string> Differences()
    {
        var problems = new List<string>();
        using var scope = NewDisposeScope();
        var now = _model.named_parameters().ToList();
        if (now.Count != _parameters.Count) problems.Add($"parameter count {now.Count}, was {_parameters.Count}");
        foreach (var ((name, p), before) in now.Zip(_parameters))
        {
            if (!ReferenceEquals(p, before.Parameter) && p.Handle != before.Parameter.Handle)
                problems.Add($"{name}: the Parameter object was replaced");
            if (p.dtype != before.Value.dtype || !p.equal(before.Value).all().item<bool>())
                problems.Add($"{name}: values changed");
            if (p.requires_grad != before.RequiresGrad) problems.Add($"{name}: requires_grad {p.requires_grad}, was " +
                $"{before.RequiresGrad}");
            var grad = p.grad;
            if ((grad is null) != (before.Grad is null)) problems.Add($"{name}: .grad " +
                $"{(grad is null ? "removed" : "created")}");
            else if (grad is not null && !grad.equal(before.Grad!).all().item<bool>())
                problems.Add($"{name}: .grad changed");
        }
        foreach (var ((name, b), before) in _model.named_buffers().Zip(_buffers))
            if (!b.equal(before.Value).all().item<bool>()) problems.Add($"buffer {name}: values changed");
        foreach (var (m, before) in ModelInspection.AllModules(_model).Zip(_modes))
            if (m.Module.training != before.Training) problems.Add($"{m.Display}: training {m.Module.training}, was " +
                $"{before.Training}");
        // A left-behind hook changes every forward; this machine's libtorch now and then computes one float32 forward
        // wrong (PlatformArithmetic), so one differing forward is retried twice before it counts.
        if (Enumerable.Range(0, 3).All(_ => !Probe().equal(_probeOutput).all().item<bool>()))
            problems.Add("the model's output on the probe input changed (a hook left behind?)");
        return problems;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var p in _parameters) { p.Value.Dispose(); p.Grad?.Dispose(); }
        foreach (var b in _buffers) b.Value.Dispose();
        _probeInput.Dispose();
        _probeOutput.Dispose();
    }
}
