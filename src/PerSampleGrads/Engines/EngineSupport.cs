using TorchSharp;
using TorchSharp.Modules;
using PerSampleGrads.Engines.Probing;
using PerSampleGrads.Maths;
using static TorchSharp.torch;

namespace PerSampleGrads.Engines;

/// <summary>Options every engine has.</summary>
public record EngineOptions
{
    /// <summary>Device the computation must run on; null runs where the model is. The model must already be
    /// there.</summary>
    public Device? Device { get; init; }

    /// <summary>TF32 handling during the computation (matters on CUDA only).</summary>
    public Tf32Mode Tf32 { get; init; } = Tf32Mode.KeepCallerSetting;

    /// <summary>
    /// How many samples to recompute with the single-sample oracle after each call (0: none). The comparison is
    /// attached to the result (<see cref="PerSampleGradients.Audit"/>); a disagreement raises
    /// <see cref="Problem.AuditFailed"/> instead of returning the result. Costs about k/N of the oracle loop.
    /// </summary>
    public int AuditSamples { get; init; }

    /// <summary>Seed that chooses the audited samples.</summary>
    public int AuditSeed { get; init; }

    /// <summary>
    /// The method the audit recomputes the chosen samples with; null: the single-sample oracle in the model's dtype
    /// (<see cref="Oracle.PerSampleGradientOracle"/>). Another reference (a second engine, a method under
    /// development) makes the audit a comparison with that method; never the audited engine itself, which would
    /// agree with any result it gives.
    /// </summary>
    public IPerSampleGradientMethod? AuditReference { get; init; }

    internal void Validate()
    {
        if (AuditSamples < 0)
            throw new ArgumentOutOfRangeException(nameof(AuditSamples), AuditSamples,
                "AuditSamples must be 0 (no audit) or a number of samples to recompute.");
    }

    /// <summary>
    /// Modules with trainable parameters and no rule: re-run per sample (the default) or refused. A module with a rule
    /// never takes the fallback.
    /// </summary>
    public UnsupportedLayerPolicy UnsupportedLayers { get; init; } = UnsupportedLayerPolicy.PerSampleRerun;
}

/// <summary>
/// A validated call of an engine: exclusive use of the model with gradients on, inputs and targets on the model's
/// device, the modules that own trainable parameters, the distinct trainable parameters, where each layer's input
/// keeps the samples, and, until disposed, the guard that restores the model's state and the TF32 setting.
/// </summary>
internal sealed class PreparedCall : IDisposable
{
    private readonly ModelAccess _access;
    private readonly ModelStateGuard _guard;
    private readonly Tf32Scope _tf32;

    private PreparedCall(ModelAccess access, Tensor inputs, Tensor targets,
        List<(NamedModule Module, List<string> Trainable)> owners, List<ParameterGroup> groups, SampleLayout layout,
        ModelStateGuard guard, Tf32Scope tf32)
    {
        _access = access;
        Inputs = inputs;
        Targets = targets;
        Owners = owners;
        Groups = groups;
        Layout = layout;
        _guard = guard;
        _tf32 = tf32;
    }

    public Tensor Inputs { get; }
    public Tensor Targets { get; }
    public List<(NamedModule Module, List<string> Trainable)> Owners { get; }
    public List<ParameterGroup> Groups { get; }
    public SampleLayout Layout { get; }

    /// <summary>Forward pre-hooks and forward hooks the caller had registered on <paramref name="module"/>.</summary>
    public (int Pre, int Post) UserHooks(nn.Module module) => _access.UserHooks(module);

    /// <summary>
    /// Everything an engine does before computing, in one place: load check, exclusive use of the model with
    /// gradients on, placement, the one validator, the per-layer support check, hooks the caller registered, the
    /// sample-separation probe (before any computation), then the model-state guard and the TF32 scope.
    /// </summary>
    public static PreparedCall Begin(nn.Module<Tensor, Tensor> model, Tensor inputs, Tensor targets, LossFunction loss,
        EngineOptions options, EngineCapabilities capabilities)
    {
        BatchValidator.RequireArguments(model, inputs, targets, loss);
        TorchRuntime.EnsureLoaded();
        options.Validate();
        var access = ModelAccess.Enter(model, capabilities.Engine);
        try
        {
            var (x, y) = EngineSupport.Place(model, inputs, targets, options.Device);
            (x, y) = (access.Admit(x), access.Admit(y));
            BatchValidator.Validate(model, x, y, loss);
            var owners = EngineSupport.CheckSupported(model, capabilities.Layers, capabilities.Engine,
                capabilities.RerunsUnsupportedLayers ? options.UnsupportedLayers : UnsupportedLayerPolicy.Refuse);
            if (capabilities.TensorToTensorOnly) EngineSupport.RefuseOtherSignatures(owners, capabilities.Engine);
            if (capabilities.RefusesUserHooks) EngineSupport.RefuseUserHooks(owners, access, capabilities.Engine);
            var groups = ModelInspection.TrainableParameterGroups(model);
            var guard = ModelStateGuard.Capture(model);
            try
            {
                var layout = SampleSeparationProbe.Run(model, x, owners.Select(o => o.Module).ToList(), access);
                EngineSupport.CheckLayout(owners, layout, capabilities);
                return new PreparedCall(access, x, y, owners, groups, layout, guard, new Tf32Scope(options.Tf32));
            }
            catch
            {
                guard.Dispose();
                throw;
            }
        }
        catch
        {
            access.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        _tf32.Dispose();
        _guard.Dispose();
        _access.Dispose();
    }
}

/// <summary>What an engine can do, for the checks every engine shares.</summary>
/// <param name="Engine">The engine's name, for messages.</param>
/// <param name="Layers">Layer types it has a rule for.</param>
/// <param name="RefusesUserHooks">Whether hooks the caller registered on a trainable layer stop it (the functional
/// engine replaces the layer's computation, so such hooks would see a stand-in batch).</param>
/// <param name="RerunsUnsupportedLayers">Whether it can take modules without a rule through the per-sample rerun
/// fallback (when the options allow it).</param>
/// <param name="SamplesFirstOnly">Whether it needs every trainable layer's input with the samples in dimension 0 and
/// every parameter tensor used by one module only (the clipping method's norms are per module).</param>
/// <param name="TensorToTensorOnly">Whether it hooks only <c>Module&lt;Tensor, Tensor&gt;</c> layers (the clipping
/// method): a trainable module of another signature (<see cref="ModuleSignatures"/>) is then refused.</param>
internal sealed record EngineCapabilities(string Engine, IReadOnlyCollection<Type> Layers, bool RefusesUserHooks,
    bool RerunsUnsupportedLayers = true, bool SamplesFirstOnly = false, bool TensorToTensorOnly = false);

/// <summary>What both engines do before and after computing: placement, the per-layer checks, the result.</summary>
internal static class EngineSupport
{
    /// <summary>
    /// Layers that treat every dimension before their last ones as positions, so the samples may sit in any of
    /// them (a sequence-first <c>[T, N, D]</c> input): the engines move that dimension to the front for them.
    /// </summary>
    public static IReadOnlySet<Type> PositionWise { get; } = new HashSet<Type>
    {
        typeof(Linear), typeof(Embedding), typeof(LayerNorm),
    };

    /// <summary>
    /// Layers that hold the samples in a fixed dimension other than 0 (TorchSharp's sequence-first Transformer
    /// layers, <c>[T, N, E]</c>): the engines move it to the front for them.
    /// </summary>
    public static IReadOnlyDictionary<Type, int> SamplesAlong { get; } = new Dictionary<Type, int>
    {
        [typeof(TransformerEncoderLayer)] = 1,
    };

    /// <summary>
    /// Checks the requested device against the model's and returns inputs and targets on it. Engines compute where
    /// the model lives; they do not copy models between devices.
    /// </summary>
    public static (Tensor Inputs, Tensor Targets) Place(nn.Module model, Tensor inputs, Tensor targets,
        Device? requested)
    {
        var modelDevice = ModelInspection.ParameterDevice(model);
        if (requested is not null)
        {
            BatchValidator.RequireAvailable(requested);
            if (!BatchValidator.SameDevice(requested, modelDevice))
                throw new PerSampleGradientsException(Problem.DeviceMismatch,
                    $"The engine was asked to compute on {requested} but the model's parameters are on " +
                    $"{modelDevice}: move the model first with model.to({requested}).");
        }
        return (inputs.to(modelDevice), targets.to(modelDevice));
    }

    /// <summary>
    /// Every module that owns trainable parameters must have an entry in the engine's table; otherwise one error
    /// lists every offending module (path and type) before anything is computed. Embeddings are inspected here too,
    /// so that unsupported options (max_norm, scale_grad_by_freq) fail before the forward.
    /// </summary>
    public static List<(NamedModule Module, List<string> Trainable)> CheckSupported(nn.Module model,
        IReadOnlyCollection<Type> supported, string engine,
        UnsupportedLayerPolicy policy = UnsupportedLayerPolicy.Refuse)
    {
        var owners = ModelInspection.ModulesOwningTrainableParameters(model);
        if (policy == UnsupportedLayerPolicy.PerSampleRerun) owners = FallbackOwners.Apply(model, owners, supported);
        var missing = owners
            .Where(o => (!supported.Contains(o.Module.Module.GetType()) && policy == UnsupportedLayerPolicy.Refuse)
                || ModuleSignatures.Find(o.Module.Module) is null)
            .Select(o => $"'{o.Module.Display}' ({o.Module.Module.GetType().Name}: " +
                $"{string.Join(", ", o.TrainableLocalNames)})")
            .ToList();
        if (missing.Count > 0)
        {
            var known = string.Join(", ", supported.Select(t => t.Name).OrderBy(n => n, StringComparer.Ordinal));
            throw new PerSampleGradientsException(Problem.UnsupportedLayers,
                $"The {engine} engine has no per-sample rule for {missing.Count} module(s) with trainable parameters: "
                    +
                $"{string.Join("; ", missing)}. Supported layer types: {known}. Freeze those parameters " +
                "(requires_grad_(false)), replace the layers, add a rule to the engine's table, or (for modules " +
                "mapping a tensor to a tensor) allow the per-sample rerun fallback (UnsupportedLayers = " +
                    "PerSampleRerun).");
        }
        foreach (var (named, _) in owners)
        {
            if (named.Module is Embedding embedding) EmbeddingInspection.Inspect(embedding, named.Display);
            if (named.Module is Convolution convolution) RefuseMisappliedSamePadding(convolution, named.Display);
        }
        return owners;
    }

    /// <summary>
    /// Refuses a convolution with <c>'same'</c> padding in a mode other than zeros whose axes need different
    /// (before, after) amounts: TorchSharp 0.107's module then pads the axes with each other's amounts (measured: a
    /// <c>(1, 2)</c> kernel on a 1x1 input pads the first axis; a <c>(2, 3)</c> kernel turns 6x7 into 7x6), so it
    /// computes something other than PyTorch's <c>'same'</c> convolution that no rule follows. Equal amounts on every
    /// axis are unaffected.
    /// </summary>
    private static void RefuseMisappliedSamePadding(Convolution convolution, string path)
    {
        if (convolution.transposed || convolution.padding_type != Padding.Same
            || convolution.padding_mode == PaddingModes.Zeros)
            return;
        var windows = ConvolutionWindows.Of(convolution);
        var pairs = windows.PadBefore.Zip(windows.PadAfter).Distinct().ToList();
        if (pairs.Count <= 1) return;
        string amounts = string.Join(", ",
            windows.PadBefore.Zip(windows.PadAfter).Select(p => $"({p.First}, {p.Second})"));
        throw new PerSampleGradientsException(Problem.UnsupportedLayers,
            $"Convolution '{path}' pads 'same' in {convolution.padding_mode} mode with different amounts per axis " +
            $"({amounts}, before and after): TorchSharp 0.107's module applies them to the axes in reverse order, " +
            "so it computes something other than a 'same' convolution and no per-sample rule follows it. Pad " +
            "explicitly (F.pad in that mode, then the convolution with padding 0), or use zeros padding.");
    }

    /// <summary>Refuses trainable modules whose signature is not <c>Module&lt;Tensor, Tensor&gt;</c>, for a method
    /// that hooks only those.</summary>
    public static void RefuseOtherSignatures(List<(NamedModule Module, List<string> Trainable)> owners,
        string engine)
    {
        var others = owners.Where(o => o.Module.Module is not nn.Module<Tensor, Tensor>)
            .Select(o => $"'{o.Module.Display}' ({o.Module.Module.GetType().Name})").ToList();
        if (others.Count > 0)
            throw new PerSampleGradientsException(Problem.UnsupportedLayers,
                $"The {engine} method hooks only modules that map one tensor to one tensor, and " +
                $"{string.Join(", ", others)} take or return more. Compute per-sample gradients with the hook or " +
                "functional engine and clip them yourself, or freeze those parameters.");
    }

    public static void RefuseUserHooks(List<(NamedModule Module, List<string> Trainable)> owners, ModelAccess access,
        string engine)
    {
        var hooked = owners.Where(o => access.UserHooks(o.Module.Module) is { } h && h.Pre + h.Post > 0)
            .Select(o => $"'{o.Module.Display}'").ToList();
        if (hooked.Count > 0)
            throw new PerSampleGradientsException(Problem.UserHooks,
                $"Trainable layer(s) {string.Join(", ", hooked)} carry forward hooks of your own: the {engine} engine "
                    +
                "replaces each trainable layer's computation with a batched one, so your hooks would see a stand-in " +
                "batch and what they return would be lost. Remove those hooks while computing per-sample gradients, " +
                "or use the hook engine, which keeps hooks that leave the layer's output as it is.");
    }

    public static void CheckLayout(List<(NamedModule Module, List<string> Trainable)> owners, SampleLayout layout,
        EngineCapabilities capabilities)
    {
        foreach (var (named, _) in owners)
        {
            var axis = layout.InputAxis(named.Module);
            if (capabilities.SamplesFirstOnly && axis != SampleAxis.First)
                throw new PerSampleGradientsException(Problem.BatchLayout,
                    $"Module '{named.Display}' ({named.Module.GetType().Name}) receives its input with the {axis}: " +
                    $"the {capabilities.Engine} method needs the samples in dimension 0 of every trainable layer's " +
                    "input. Use the hook or functional engine, or move the samples to dimension 0.");
            if (axis.IsShared || axis.Dimension == 0 || PositionWise.Contains(named.Module.GetType())) continue;
            // Layers that take the samples in a dimension of their own (sequence-first attention), or read several
            // slots whose layouts their rule checks (ModuleSignatures).
            if (SamplesAlong.TryGetValue(named.Module.GetType(), out var own) && own == axis.Dimension) continue;
            if (named.Module is not nn.Module<Tensor, Tensor>) continue;
            throw new PerSampleGradientsException(Problem.BatchLayout,
                $"Module '{named.Display}' ({named.Module.GetType().Name}) receives its input with the {axis}, but " +
                $"a {named.Module.GetType().Name} treats dimension 0 as the batch, so it mixes the samples' values " +
                "across what it takes for samples. Move the samples to dimension 0 before that layer (for example " +
                "transpose(0, 1) of a sequence-first tensor).");
        }
    }

    /// <summary>
    /// The result: one gradient per distinct parameter, reported under every name of it (a second name gets a view
    /// of the same tensor), zeros where a parameter never reached the loss.
    /// </summary>
    public static PerSampleGradients Result(string engine, long n, List<ParameterGroup> groups,
        Func<ParameterGroup, Tensor?> gradientOf)
    {
        var entries = new List<(string, Tensor)>();
        foreach (var group in groups)
        {
            var gradient = gradientOf(group) ?? ModelInspection.PerSampleZeros(group.Parameter, n);
            entries.Add((group.Names[0], gradient));
            foreach (var alias in group.Names.Skip(1)) entries.Add((alias, gradient.alias()));
        }
        return new PerSampleGradients(engine, n, entries);
    }

    /// <summary>
    /// While <paramref name="layer"/> runs, its own trainable parameters (<paramref name="trainable"/>, local names)
    /// do not require gradients: a pre-hook clears the flag, a forward hook sets it again (and the model-state guard,
    /// if the forward throws). Every use a hook sees then reaches the loss through the engine's own route only, so a
    /// parameter that still gets a gradient was used where no hook saw it (<see cref="RefuseBypassedParameters"/>).
    /// </summary>
    public static void KeepOwnParametersOutOfGraph(nn.Module layer, ModuleSignature signature,
        IEnumerable<string> trainable, List<Action> removers)
    {
        var own = trainable.Select(local => layer.get_parameter(local)!).ToList();
        removers.Add(signature.HookBefore(layer, _ =>
        {
            foreach (var p in own) p.requires_grad_(false);
            return null;
        }));
        removers.Add(signature.HookAfter(layer, (_, _) =>
        {
            foreach (var p in own) p.requires_grad_(true);
            return null;
        }));
    }

    /// <summary>
    /// After a backward that also asked for the real parameters' gradients: an engine routes every use it sees
    /// around them, so a nonzero gradient there is a use the engine missed. A zero one changes nothing.
    /// </summary>
    public static void RefuseBypassedParameters(List<ParameterGroup> groups, string engine)
    {
        var bypassed = new List<string>();
        foreach (var group in groups)
        {
            using var grad = group.Parameter.grad;
            if (grad is null || grad.IsInvalid) continue;
            if (grad.abs().max().ToDouble() > 0) bypassed.Add($"'{group.Names[0]}'");
        }
        if (bypassed.Count > 0)
            throw new PerSampleGradientsException(Problem.LayerBypassesHooks,
                $"Parameter(s) {string.Join(", ", bypassed)} reach the loss outside their layer's hooked call, so the "
                    +
                $"{engine} engine cannot see that use: a child invoked with forward() instead of call() (forward() " +
                "skips hooks), or the tensor used directly in a parent's forward (F.linear(x, layer.weight)). Invoke " +
                "children with call(), as TorchSharp's containers do, and use parameters only inside their module.");
    }
}
