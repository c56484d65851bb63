using TorchSharp;
using TorchSharp.Modules;
using PerSampleGrads.Engines.Probing;
using PerSampleGrads.Engines.Functional.Layers;
using static TorchSharp.torch;

namespace PerSampleGrads.Engines.Functional;

/// <summary>Options of the functional engine: those of every engine (<see cref="EngineOptions"/>) and its
/// own.</summary>
public sealed record FunctionalEngineOptions : EngineOptions
{
    /// <summary>
    /// Process the batch in chunks of this many samples (like <c>torch.func.vmap(chunk_size=...)</c>) to bound
    /// memory: activations and per-sample parameter gradients then scale with the chunk, not N. Null: the whole batch.
    /// </summary>
    public int? ChunkSize { get; init; }

    /// <summary>How convolutions with per-sample weights are evaluated.</summary>
    public ConvolutionStrategy Convolution { get; init; } = ConvolutionStrategy.Auto;
}

/// <summary>
/// Per-sample gradients as <c>vmap(grad(loss))</c> computes them: every trainable parameter of shape S gets an
/// expanded leaf <c>[N, ...S]</c> (sample i uses slice i), the model runs once on the whole batch with each layer
/// evaluated by a batched forward in which sample i's output depends only on slice i, the per-sample losses are
/// summed, and one backward gives slice i's gradient = sample i's gradient. Autograd does every reduction; there are
/// no hand-written backward rules, which is what makes it an independent check of the hook engine.
/// </summary>
/// <remarks>
/// <para>Route: a forward pre-hook on each trainable layer keeps the real input and hands the layer an empty batch
/// (InstanceNorm, whose kernel rejects an empty batch, gets one sample), and the forward hook returns the batched
/// computation from <see cref="FunctionalRules"/>. So each layer is computed once; the price is one extra, empty call
/// per layer (microseconds) and no change to models whose forward the engine did not write (TorchVision's ResNet-18
/// included).</para>
/// <para>The leaves are views (<c>expand</c>) of the parameters: no copy of the model per sample. The gradient of a
/// leaf is the result itself. Same loss semantics, validation and model guarantees as the hook engine.</para>
/// </remarks>
public sealed class FunctionalEngine : IPerSampleGradientMethod
{
    private readonly FunctionalEngineOptions _options;
    private readonly IReadOnlyDictionary<Type, BatchedForward> _forwards;

    /// <summary>Creates the engine with the default table or <paramref name="forwards"/>.</summary>
    public FunctionalEngine(FunctionalEngineOptions? options = null,
        IReadOnlyDictionary<Type, BatchedForward>? forwards = null)
    {
        _options = options ?? new FunctionalEngineOptions();
        if (_options.ChunkSize is < 1)
            throw new ArgumentOutOfRangeException(nameof(options), _options.ChunkSize,
                "ChunkSize must be at least 1 sample (or null for the whole batch).");
        _forwards = forwards ?? FunctionalRules.Default;
    }

    /// <inheritdoc/>
    public string Name => "functional";

    /// <inheritdoc/>
    public PerSampleGradients Compute(nn.Module<Tensor, Tensor> model, Tensor inputs, Tensor targets,
        LossFunction loss) =>
        Compute(model, inputs, targets, loss, null);

    /// <summary>
    /// Computes per-sample gradients into <paramref name="into"/>, an earlier result of the same model and batch size,
    /// and returns it (see <see cref="ResultBuffer"/> for the lifetime rules). Autograd still allocates each chunk's
    /// gradients; they are copied into <paramref name="into"/>, so a small <see
    /// cref="FunctionalEngineOptions.ChunkSize"/>
    /// keeps those temporaries small enough for the heap to reuse.
    /// </summary>
    public PerSampleGradients Compute(nn.Module<Tensor, Tensor> model, Tensor inputs, Tensor targets, LossFunction loss,
        PerSampleGradients? into)
    {
        using var scope = NewDisposeScope();
        using var prepared = PreparedCall.Begin(model, inputs, targets, loss, _options,
            new EngineCapabilities(Name, (IReadOnlyCollection<Type>)_forwards.Keys, RefusesUserHooks: true));
        var (x, y) = (prepared.Inputs, prepared.Targets);
        long n = x.shape[0];
        long chunk = Math.Min(_options.ChunkSize ?? n, n);
        using var buffer = into is null ? null
            : ResultBuffer.Lease(into, ModelInspection.TrainableParameters(model), n, Name);

        PerSampleGradients result;
        if (chunk == n && buffer is null)
        {
            var grads = ModelAccess.Guard(Name, () => RunChunk(model, x, y, loss, prepared));
            result = EngineSupport.Result(Name, n, prepared.Groups, g => grads[g]);
        }
        else
        {
            var results = prepared.Groups.ToDictionary(g => g, g => buffer is null
                ? ModelInspection.PerSampleZeros(g.Parameter, n)
                : buffer[g.Names[0]]);
            for (long start = 0; start < n; start += chunk)
            {
                long k = Math.Min(chunk, n - start);
                using var chunkScope = NewDisposeScope();
                var grads = ModelAccess.Guard(Name,
                    () => RunChunk(model, x.narrow(0, start, k), y.narrow(0, start, k), loss, prepared));
                using (no_grad())
                    foreach (var group in prepared.Groups) results[group].narrow(0, start, k).copy_(grads[group]);
            }
            result = buffer?.Result ?? EngineSupport.Result(Name, n, prepared.Groups, g => results[g]);
        }
        return EngineAudit.Attached(result, model, x, y, loss, _options, disposeOnFailure: buffer is null);
    }

    // One vectorised forward and backward for k samples; returns each distinct parameter's [k, ...] gradient. The
    // layers read the per-sample leaves, which are detached views of the parameters: a real parameter that gets a
    // gradient was used outside its layer's hooked call.
    private Dictionary<ParameterGroup, Tensor> RunChunk(nn.Module<Tensor, Tensor> model, Tensor x, Tensor y,
        LossFunction loss, PreparedCall prepared)
    {
        long k = x.shape[0];
        var leaves = prepared.Groups.ToDictionary(g => ParameterIdentity.Of(g.Parameter),
            g => g.Parameter.detach().unsqueeze(0).expand([k, .. g.Parameter.shape]).requires_grad_(true));
        var parameters = prepared.Groups.Select(g => (Tensor)g.Parameter).ToList();
        using var setAside = new SetAsideGradients(parameters);
        var stash = new Dictionary<nn.Module, Stack<Tensor>>(ReferenceEqualityComparer.Instance);
        var removers = new List<Action>();
        var realForwards = new Stack<IDisposable>();
        try
        {
            foreach (var (named, _) in prepared.Owners)
            {
                var parameterCopies = Parameters(named, leaves, k);
                // A module the table lacks reached here only because the fallback is allowed (EngineSupport).
                var forward = _forwards.TryGetValue(named.Module.GetType(), out var batched)
                    ? batched : PerSampleRerunForward.Forward;
                var signature = ModuleSignatures.Of(named.Module, named.Display);
                if (!signature.IsTensorToTensor)
                {
                    HookSlots(named, signature, forward, parameterCopies, prepared.Layout.Axes(named.Module), k,
                        removers, realForwards);
                    continue;
                }
                var layer = (nn.Module<Tensor, Tensor>)named.Module;
                var axis = prepared.Layout.InputAxis(layer);
                stash[layer] = new Stack<Tensor>();
                long standIn = StandInBatch(layer);
                removers.Add(layer.register_forward_pre_hook((_, input) =>
                {
                    if (axis.IsShared)
                    {
                        var expanded = axis.ExpandShared(input, k);
                        stash[layer].Push(expanded);
                        return expanded.narrow(0, 0, standIn);
                    }
                    stash[layer].Push(input.movedim([axis.Dimension], [0]));
                    return input.narrow(axis.Dimension, 0, standIn);
                }).remove);
                removers.Add(layer.register_forward_hook((_, _, _) =>
                {
                    var output = forward(new FunctionalCall(layer, named.Display, stash[layer].Pop(), parameterCopies,
                        _options.Convolution) { ArgumentAxes = [axis.IsShared ? SampleAxis.First : axis] });
                    return axis.IsShared ? output : output.movedim([0], [axis.Dimension]);
                }).remove);
            }
            var output = model.call(x);
            loss.ValidateTargets(output, y);
            var total = loss.PerSampleLosses(output, y).sum();
            // No trainable layer on the loss's path: no graph, and every gradient is zero.
            if (total.requires_grad) autograd.backward([total], inputs: [.. leaves.Values, .. parameters]);
            EngineSupport.RefuseBypassedParameters(prepared.Groups, Name);
        }
        finally
        {
            foreach (var remove in removers) remove();
            while (realForwards.Count > 0) realForwards.Pop().Dispose();
        }
        return prepared.Groups.ToDictionary(g => g, g => leaves[ParameterIdentity.Of(g.Parameter)].grad
            ?? ModelInspection.PerSampleZeros(g.Parameter, k));
    }

    // A module of another signature (ModuleSignatures): its own forward runs without gradients on one sample where
    // every tensor argument has its samples located (else on the real arguments), its outputs are discarded, and the
    // batched forward's outputs replace them, each moved back to where the module keeps the samples.
    private void HookSlots(NamedModule named, ModuleSignature signature, BatchedForward forward,
        SampleParameters parameterCopies, LayerAxes probed, long k, List<Action> removers,
        Stack<IDisposable> realForwards)
    {
        var layer = named.Module;
        var axis = probed.Primary;
        var axes = SlotLayout.AfterExpansion(probed);
        var stash = new Stack<object?[]>();
        removers.Add(signature.HookBefore(layer, arguments =>
        {
            var given = axis.IsShared && arguments[0] is Tensor input
                ? [axis.ExpandShared(input, k), .. arguments[1..]] : arguments;
            stash.Push(SlotLayout.ArgumentsFirst(given, axes, t => t));
            realForwards.Push(no_grad());
            return axis.IsShared ? null : SlotLayout.OneSampleStandIn(arguments, axes);
        }));
        removers.Add(signature.HookAfter(layer, (_, real) =>
        {
            realForwards.Pop().Dispose();
            var arguments = stash.Pop();
            var others = new Tensor?[real.Length];
            var call = new FunctionalCall(layer, named.Display, (arguments[0] as Tensor)!, parameterCopies,
                _options.Convolution)
            {
                Arguments = arguments,
                ArgumentAxes = axes.Arguments,
                OutputAxes = axes.Outputs,
                OtherOutputs = others,
            };
            var outputs = new Tensor?[real.Length];
            outputs[0] = forward(call);
            for (int i = 1; i < real.Length; i++) outputs[i] = others[i];
            for (int i = 0; i < real.Length; i++)
            {
                if (real[i] is not null && outputs[i] is null)
                    throw new PerSampleGradientsException(Problem.UnsupportedLayers,
                        $"Module '{named.Display}' ({layer.GetType().Name}): the functional engine's batched " +
                        $"forward gave no '{signature.Outputs[i]}' output, which the module returns in this call. " +
                        "Ask the module not to return it, or use the hook engine.");
                if (outputs[i] is { } o && i < axes.Outputs.Count) outputs[i] = SlotLayout.Back(o, axes.Outputs[i]);
            }
            return outputs;
        }));
    }

    // How many samples the layer's own (discarded) forward gets: none, except InstanceNorm and the native encoder
    // layer, whose kernels reject an empty batch, and fallback modules, which need not accept one; they run on one
    // sample, 1/N of their cost.
    private long StandInBatch(nn.Module layer) =>
        layer is InstanceNorm or TransformerEncoderLayer || !_forwards.ContainsKey(layer.GetType()) ? 1 : 0;

    // The layer's parameters as [k, ...]: its per-sample leaves when trainable, a broadcast view when frozen.
    private SampleParameters Parameters(NamedModule named, Dictionary<ParameterIdentity, Tensor> leaves, long k)
    {
        var byLocal = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var shared = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        // A fallback module is re-run with its whole subtree: it gets copies of every parameter below it.
        bool subtree = !_forwards.ContainsKey(named.Module.GetType());
        foreach (var (local, p) in named.Module.named_parameters(recurse: subtree))
        {
            shared[local] = p.detach();
            byLocal[local] = p.requires_grad && leaves.TryGetValue(ParameterIdentity.Of(p), out var leaf)
                ? leaf
                : p.detach().unsqueeze(0).expand([k, .. p.shape]);
        }
        return new SampleParameters(byLocal, shared);
    }
}
