using TorchSharp.Modules;
using PerSampleGrads.Engines.Functional;
using PerSampleGrads.Engines.Hooks;
using PerSampleGrads.Engines.Hooks.Rules;
using static TorchSharp.torch;

namespace PerSampleGrads.Tests;

/// <summary>
/// Realistic engine bugs, planted one at a time to prove that the tests can fail (Category=Mutation). Each reaches an
/// engine through a seam every caller has (a rule table, a forward table, the loss), so no production type carries
/// a bug switch. Bugs that need memory across the layer calls of one computation (a module called twice, a tied
/// parameter) get a fresh engine, and so fresh memory, for every <c>Compute</c>.
/// </summary>
public static class PlantedBugs
{
    /// <summary>
    /// The hook engine differentiates the declared batch loss and never rescales by N: with a mean reduction every
    /// sample's loss reaches it divided by N, so every gradient comes out N times too small.
    /// </summary>
    public static IPerSampleGradientMethod MeanNotRescaled() => new PlantedEngine(() => new HookEngine(),
        loss => loss.Reduction == LossReduction.Sum ? loss
            : LossFunction.PerSample(loss.Name,
                (output, target) => loss.PerSampleLosses(output, target) / output.shape[0], loss.Reduction,
                loss.Targets));

    /// <summary>
    /// The engine keeps the caller's grad mode: under <c>no_grad</c> the loss it differentiates has no graph, so every
    /// gradient comes out zero.
    /// </summary>
    public static IPerSampleGradientMethod GradModeIgnored(Func<IPerSampleGradientMethod> engine) =>
        new PlantedEngine(engine, loss =>
        {
            bool callerRecords = is_grad_enabled();
            return callerRecords ? loss : LossFunction.PerSample(loss.Name,
                (output, target) => loss.PerSampleLosses(output, target).detach(), loss.Reduction, loss.Targets);
        });

    /// <summary>The hook engine: a module called twice keeps only its last call's gradient.</summary>
    public static IPerSampleGradientMethod SharedModuleOverwritten() => new PlantedEngine(() =>
    {
        var last = new Dictionary<(nn.Module, string), Tensor>();
        return new HookEngine(rules: EveryRule((call, sink) => new OverwritingSink(call.Layer, sink, last)));
    });

    /// <summary>The hook engine: a parameter tensor used by several modules (weight tying) gets only the share of
    /// the first module that reports it.</summary>
    public static IPerSampleGradientMethod TiedParameterCountedOnce() => new PlantedEngine(() =>
    {
        var owners = new Dictionary<IntPtr, nn.Module>();
        return new HookEngine(rules: EveryRule((call, sink) => new FirstOwnerSink(call.Layer, sink, owners)));
    });

    /// <summary>
    /// The hook engine's position-wise rules (Linear, LayerNorm, Embedding) read a call with positions,
    /// <c>[N, T, ...]</c>, as sequence-first <c>[T, N, ...]</c>: they take the samples from dimension 0 of what the
    /// layer received, whatever the probe found (the rules then see exactly what an engine that skips moving the
    /// sample axis would hand them).
    /// </summary>
    public static IPerSampleGradientMethod BatchDimensionAssumedZero()
    {
        var rules = new Dictionary<Type, PerSampleRule>(HookRules.Default);
        foreach (var layer in new[] { typeof(Linear), typeof(LayerNorm), typeof(Embedding) })
        {
            var rule = HookRules.Default[layer];
            rules[layer] = (call, sink) => rule(call.OutputGradient.dim() < 3 ? call : call with
            {
                Input = call.Input.transpose(0, 1),
                OutputGradient = call.OutputGradient.transpose(0, 1),
            }, sink);
        }
        return new HookEngine(rules: rules);
    }

    /// <summary>The functional engine gives samples 0 and 1 one parameter copy (sample 0's), for any chunk
    /// size.</summary>
    public static Func<int?, IPerSampleGradientMethod> SharedParameterCopy()
    {
        var forwards = FunctionalRules.Default.ToDictionary(p => p.Key,
            p => (BatchedForward)(call => p.Value(call with { Parameters = SharedCopy(call.Parameters) })));
        return chunk => new FunctionalEngine(new FunctionalEngineOptions { ChunkSize = chunk }, forwards);
    }

    // Sample 1 reads sample 0's copy.
    private static SampleParameters SharedCopy(SampleParameters parameters)
    {
        var names = parameters.Names.ToList();
        var perSample = names.ToDictionary(n => n, n => parameters[n]!);
        long k = perSample.Values.FirstOrDefault()?.shape[0] ?? 0;
        if (k < 2) return parameters;
        var rows = arange(k, device: perSample.Values.First().device);
        rows[1] = 0;
        return new SampleParameters(names.ToDictionary(n => n, n => perSample[n].index_select(0, rows)),
            names.ToDictionary(n => n, n => parameters.Shared(n)!));
    }

    private static Dictionary<Type, PerSampleRule> EveryRule(
        Func<LayerCall, ILayerGradientSink, ILayerGradientSink> decorate) =>
        HookRules.Default.ToDictionary(p => p.Key,
            p => (PerSampleRule)((call, sink) => p.Value(call, decorate(call, sink))));

    // Adds the difference to what the module's previous call added, so the sum holds the last call's gradient.
    private sealed class OverwritingSink(nn.Module layer, ILayerGradientSink inner,
        Dictionary<(nn.Module, string), Tensor> last) : ILayerGradientSink
    {
        public bool Wants(string parameter) => inner.Wants(parameter);

        public void Add(string parameter, Tensor perSampleGradient)
        {
            var key = (layer, parameter);
            inner.Add(parameter, last.TryGetValue(key, out var previous)
                ? perSampleGradient - previous : perSampleGradient);
            last[key] = perSampleGradient;
        }
    }

    // Drops what a module other than the first to report a parameter tensor adds to it.
    private sealed class FirstOwnerSink(nn.Module layer, ILayerGradientSink inner,
        Dictionary<IntPtr, nn.Module> owners) : ILayerGradientSink
    {
        public bool Wants(string parameter) => inner.Wants(parameter);

        public void Add(string parameter, Tensor perSampleGradient)
        {
            var tensor = layer.get_parameter(parameter)!;
            var storage = tensor.dtype == ScalarType.Float64 ? tensor.storage<double>().data_ptr()
                : tensor.storage<float>().data_ptr();
            if (owners.TryAdd(storage, layer) || ReferenceEquals(owners[storage], layer))
                inner.Add(parameter, perSampleGradient);
        }
    }

    // A fresh engine (and loss) for every computation.
    private sealed class PlantedEngine(Func<IPerSampleGradientMethod> create,
        Func<LossFunction, LossFunction>? lossOf = null) : IPerSampleGradientMethod
    {
        public string Name { get; } = create().Name;

        public PerSampleGradients Compute(nn.Module<Tensor, Tensor> model, Tensor inputs, Tensor targets,
            LossFunction loss) =>
            create().Compute(model, inputs, targets, lossOf is null ? loss : lossOf(loss));
    }
}
