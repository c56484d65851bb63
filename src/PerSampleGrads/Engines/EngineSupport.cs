using TorchSharp;
using TorchSharp.Modules;
using PerSampleGrads.Maths;
using static TorchSharp.torch;

namespace PerSampleGrads.Engines;

/// <summary>Options every engine has.</summary>
public record EngineOptions
{
    /// <summary>Device the computation must run on; null runs where the model is. The model must already be there.</summary>
    public Device? Device { get; init; }

    /// <summary>TF32 handling during the computation (matters on CUDA only).</summary>
    public Tf32Mode Tf32 { get; init; } = Tf32Mode.KeepCallerSetting;
}

/// <summary>
/// A validated call of an engine: inputs and targets on the model's device, the modules that own trainable parameters,
/// and, until disposed, the guard that restores the model's state and the TF32 setting.
/// </summary>
internal sealed class PreparedCall : IDisposable
{
    private readonly ModelStateGuard _guard;
    private readonly Tf32Scope _tf32;

    private PreparedCall(Tensor inputs, Tensor targets, List<(NamedModule Module, List<string> Trainable)> owners,
        ModelStateGuard guard, Tf32Scope tf32)
    {
        Inputs = inputs;
        Targets = targets;
        Owners = owners;
        _guard = guard;
        _tf32 = tf32;
    }

    public Tensor Inputs { get; }
    public Tensor Targets { get; }
    public List<(NamedModule Module, List<string> Trainable)> Owners { get; }

    /// <summary>
    /// Everything an engine does before computing, in one place: load check, placement, the one validator, the
    /// per-layer support check (before any computation), then the model-state guard and the TF32 scope.
    /// </summary>
    public static PreparedCall Begin(nn.Module<Tensor, Tensor> model, Tensor inputs, Tensor targets, LossFunction loss,
        EngineOptions options, IReadOnlyCollection<Type> supported, string engine)
    {
        BatchValidator.RequireArguments(model, inputs, targets, loss);
        TorchRuntime.EnsureLoaded();
        var (x, y) = EngineSupport.Place(model, inputs, targets, options.Device);
        BatchValidator.Validate(model, x, y, loss);
        var owners = EngineSupport.CheckSupported(model, supported, engine);
        var guard = ModelStateGuard.Capture(model);
        return new PreparedCall(x, y, owners, guard, new Tf32Scope(options.Tf32));
    }

    public void Dispose()
    {
        _tf32.Dispose();
        _guard.Dispose();
    }
}

/// <summary>What both engines do before computing: device placement and the per-layer support check.</summary>
internal static class EngineSupport
{
    /// <summary>
    /// Checks the requested device against the model's and returns inputs and targets on it. Engines compute where
    /// the model lives; they do not copy models between devices.
    /// </summary>
    public static (Tensor Inputs, Tensor Targets) Place(nn.Module model, Tensor inputs, Tensor targets, Device? requested)
    {
        var modelDevice = ModelInspection.ParameterDevice(model);
        if (requested is not null)
        {
            BatchValidator.RequireAvailable(requested);
            if (!BatchValidator.SameDevice(requested, modelDevice))
                throw new PerSampleGradientsException(Problem.DeviceMismatch,
                    $"The engine was asked to compute on {requested} but the model's parameters are on {modelDevice}: move the model first with model.to({requested}).");
        }
        return (inputs.to(modelDevice), targets.to(modelDevice));
    }

    /// <summary>
    /// Every module that owns trainable parameters must have an entry in the engine's table; otherwise one error lists
    /// every offending module (path and type) before anything is computed. Embeddings are inspected here too, so that
    /// unsupported options (max_norm, scale_grad_by_freq) fail before the forward.
    /// </summary>
    public static List<(NamedModule Module, List<string> Trainable)> CheckSupported(nn.Module model,
        IReadOnlyCollection<Type> supported, string engine)
    {
        var owners = ModelInspection.ModulesOwningTrainableParameters(model);
        var missing = owners
            .Where(o => !supported.Contains(o.Module.Module.GetType()) || o.Module.Module is not nn.Module<Tensor, Tensor>)
            .Select(o => $"'{o.Module.Display}' ({o.Module.Module.GetType().Name}: {string.Join(", ", o.TrainableLocalNames)})")
            .ToList();
        if (missing.Count > 0)
        {
            var known = string.Join(", ", supported.Select(t => t.Name).OrderBy(n => n, StringComparer.Ordinal));
            throw new PerSampleGradientsException(Problem.UnsupportedLayers,
                $"The {engine} engine has no per-sample rule for {missing.Count} module(s) with trainable parameters: {string.Join("; ", missing)}. Supported layer types: {known}. Freeze those parameters (requires_grad_(false)), replace the layers, or add a rule to the engine's table.");
        }
        foreach (var (named, _) in owners)
            if (named.Module is Embedding embedding)
                EmbeddingInspection.Inspect(embedding, named.Display);
        return owners;
    }
}
