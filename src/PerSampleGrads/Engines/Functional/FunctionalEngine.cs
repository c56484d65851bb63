using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PerSampleGrads.Engines.Functional;

/// <summary>Options of the functional engine: those of every engine (<see cref="EngineOptions"/>) and its own.</summary>
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
/// leaf is the result itself. Same loss semantics, validation and model guarantees as <see cref="Hooks.HookEngine"/>.</para>
/// </remarks>
public sealed class FunctionalEngine : IPerSampleGradientMethod
{
    private readonly FunctionalEngineOptions _options;
    private readonly IReadOnlyDictionary<Type, BatchedForward> _forwards;

    /// <summary>Creates the engine with the default table or <paramref name="forwards"/>.</summary>
    public FunctionalEngine(FunctionalEngineOptions? options = null, IReadOnlyDictionary<Type, BatchedForward>? forwards = null)
    {
        _options = options ?? new FunctionalEngineOptions();
        if (_options.ChunkSize is < 1)
            throw new ArgumentOutOfRangeException(nameof(options), _options.ChunkSize, "ChunkSize must be at least 1 sample (or null for the whole batch).");
        _forwards = forwards ?? FunctionalRules.Default;
    }

    internal PlantedBug Bug { get; init; }

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
        using var prepared = PreparedCall.Begin(model, inputs, targets, loss, _options, (IReadOnlyCollection<Type>)_forwards.Keys, Name);
        var (x, y, owners) = (prepared.Inputs, prepared.Targets, prepared.Owners);
        long n = x.shape[0];
        long chunk = Math.Min(_options.ChunkSize ?? n, n);
        var trainable = ModelInspection.TrainableParameters(model);
        using var buffer = into is null ? null : ResultBuffer.Lease(into, trainable, n, Name);

        if (chunk == n && buffer is null)
            return new PerSampleGradients(Name, n, trainable.Zip(RunChunk(model, x, y, loss, owners, trainable, validateTargets: true))
                .Select(p => (p.First.Name, p.Second)));

        var results = buffer is null
            ? trainable.Select(p => ModelInspection.PerSampleZeros(p.Parameter, n)).ToList()
            : trainable.Select(p => buffer[p.Name]).ToList();
        for (long start = 0; start < n; start += chunk)
        {
            long k = Math.Min(chunk, n - start);
            using var chunkScope = NewDisposeScope();
            var grads = RunChunk(model, x.narrow(0, start, k), y.narrow(0, start, k), loss, owners, trainable, validateTargets: start == 0);
            using (no_grad())
                for (int j = 0; j < grads.Count; j++) results[j].narrow(0, start, k).copy_(grads[j]);
        }
        return buffer?.Result ?? new PerSampleGradients(Name, n, trainable.Zip(results).Select(p => (p.First.Name,
            p.Second)));
    }

    // One vectorised forward and backward for k samples; returns [k, ...] gradients in `trainable` order.
    private List<Tensor> RunChunk(nn.Module<Tensor, Tensor> model, Tensor x, Tensor y, LossFunction loss,
        List<(NamedModule Module, List<string> Trainable)> owners, List<(string Name, Parameter Parameter)> trainable,
        bool validateTargets)
    {
        long k = x.shape[0];
        var leaves = trainable.ToDictionary(p => p.Name,
            p => p.Parameter.detach().unsqueeze(0).expand([k, .. p.Parameter.shape]).requires_grad_(true),
            StringComparer.Ordinal);
        var stash = new Dictionary<nn.Module, Stack<Tensor>>(ReferenceEqualityComparer.Instance);
        var handles = new List<nn.HookableModule<Func<nn.Module<Tensor, Tensor>, Tensor, Tensor>, Func<nn.Module<Tensor, Tensor>, Tensor, Tensor, Tensor>>.HookRemover>();
        try
        {
            foreach (var (named, _) in owners)
            {
                var layer = (nn.Module<Tensor, Tensor>)named.Module;
                var parameters = Parameters(named, leaves, k);
                var forward = _forwards[layer.GetType()];
                stash[layer] = new Stack<Tensor>();
                long standIn = StandInBatch(layer);
                handles.Add(layer.register_forward_pre_hook((_, input) =>
                {
                    stash[layer].Push(input);
                    return input.narrow(0, 0, standIn);
                }));
                handles.Add(layer.register_forward_hook((_, _, _) =>
                    forward(new FunctionalCall(layer, named.Display, stash[layer].Pop(), parameters, _options.Convolution))));
            }
            var output = model.call(x);
            if (validateTargets) loss.ValidateTargets(output, y);
            var total = loss.PerSampleLosses(output, y).sum();
            // No trainable layer on the loss's path: no graph, and every gradient is zero.
            if (total.requires_grad) autograd.backward([total], inputs: leaves.Values.ToList());
        }
        finally
        {
            foreach (var handle in handles) handle.remove();
        }
        return trainable.Select(p => leaves[p.Name].grad
            ?? ModelInspection.PerSampleZeros(p.Parameter, k)).ToList();
    }

    // How many samples the layer's own (discarded) forward gets: none, except InstanceNorm, whose kernel rejects an
    // empty batch; it runs on one sample, 1/N of its cost.
    private static long StandInBatch(nn.Module layer) => layer is InstanceNorm ? 1 : 0;

    // The layer's parameters as [k, ...]: its per-sample leaves when trainable, a broadcast view when frozen.
    private SampleParameters Parameters(NamedModule named, Dictionary<string, Tensor> leaves, long k)
    {
        var byLocal = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var shared = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (local, p) in named.Module.named_parameters(recurse: false))
        {
            shared[local] = p.detach();
            byLocal[local] = leaves.TryGetValue(named.Qualify(local), out var leaf)
                ? Bug == PlantedBug.SharedParameterCopy && k > 1 ? SharedCopy(leaf, k) : leaf
                : p.detach().unsqueeze(0).expand([k, .. p.shape]);
        }
        return new SampleParameters(byLocal, shared);
    }

    // Planted bug: sample 1 reads sample 0's copy.
    private static Tensor SharedCopy(Tensor leaf, long k)
    {
        var rows = arange(k, device: leaf.device);
        rows[1] = 0;
        return leaf.index_select(0, rows);
    }
}
