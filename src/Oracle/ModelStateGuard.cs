using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PerSampleGrads;

/// <summary>
/// Keeps the caller's model as it was around a computation: restores buffers' values (running statistics a forward
/// may update), each module's training flag and each parameter's <c>requires_grad</c>, and checks that no
/// <c>.grad</c> was created. Methods never write parameters; this guards everything else a forward can touch.
/// </summary>
public sealed class ModelStateGuard : IDisposable
{
    private readonly List<(Tensor Buffer, Tensor Saved)> _buffers = [];
    private readonly List<(nn.Module Module, bool Training)> _modes = [];
    private readonly List<(Parameter Parameter, bool RequiresGrad, bool HadGrad)> _parameters = [];

    private ModelStateGuard(nn.Module model)
    {
        using (no_grad())
        {
            foreach (var (_, buffer) in model.named_buffers())
                _buffers.Add((buffer, buffer.detach().clone().DetachFromDisposeScope()));
        }
        foreach (var named in ModelInspection.AllModules(model))
            _modes.Add((named.Module, named.Module.training));
        foreach (var (_, p) in model.named_parameters())
        {
            using var grad = p.grad;
            _parameters.Add((p, p.requires_grad, grad is not null && !grad.IsInvalid));
        }
    }

    /// <summary>Records the model's state.</summary>
    public static ModelStateGuard Capture(nn.Module model) => new(model);

    /// <summary>Puts buffers, modes and flags back; drops any <c>.grad</c> that appeared.</summary>
    public void Dispose()
    {
        using (no_grad())
        {
            foreach (var (buffer, saved) in _buffers)
            {
                if (!buffer.IsInvalid) buffer.copy_(saved);
                saved.Dispose();
            }
        }
        _buffers.Clear();
        foreach (var (module, training) in _modes)
            if (module.training != training) module.train(training);
        foreach (var (p, requiresGrad, hadGrad) in _parameters)
        {
            if (p.requires_grad != requiresGrad) p.requires_grad_(requiresGrad);
            if (!hadGrad)
            {
                using var grad = p.grad;
                if (grad is not null && !grad.IsInvalid) p.grad = null;
            }
        }
    }
}
