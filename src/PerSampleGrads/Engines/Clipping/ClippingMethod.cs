using TorchSharp;
using TorchSharp.Modules;
using PerSampleGrads.Engines.Clipping.Rules;
using PerSampleGrads.Engines.Hooks;
using PerSampleGrads.Engines.Hooks.Rules;
using PerSampleGrads.Engines.Probing;
using static TorchSharp.torch;

namespace PerSampleGrads.Engines.Clipping;

/// <summary>Options of the clipping method: those of every engine (<see cref="EngineOptions"/>) and its own.</summary>
public sealed record ClippingOptions : EngineOptions
{
    /// <summary>C, the bound on each sample's gradient norm (loss units per parameter unit); positive, may be
    /// infinite.</summary>
    public double ClipBound { get; init; } = 1.0;

    /// <summary>How layers' norms are computed: per layer by cost (default), or every layer one way (for
    /// tests).</summary>
    public NormRoute Route { get; init; } = NormRoute.Auto;

    /// <summary>How the clipped sum is formed: book-keeping from the captures (default) or a second backward.</summary>
    public ClippedSumRoute ClippedSum { get; init; } = ClippedSumRoute.BookKeeping;

    /// <summary>sigma: Gaussian noise of standard deviation sigma * C is added to every element of the clipped sum; 0:
    /// none.</summary>
    public double NoiseMultiplier { get; init; }

    /// <summary>Seed of the method's noise generator; successive calls of one method draw successive noise.</summary>
    public long NoiseSeed { get; init; }

    /// <summary>Divide the (noisy) clipped sum by N, as a DP-SGD step does.</summary>
    public bool Average { get; init; }

    /// <summary>Time each phase (device synchronised between phases) into <see
    /// cref="ClippedGradients.PhaseMilliseconds"/>.</summary>
    public bool MeasurePhases { get; init; }
}

/// <summary>
/// Differentially private SGD's quantities without per-sample gradients: each sample's gradient norm (total and per
/// parameter) and the clipped sum <c>sum_i g_i min(1, C / |g_i|)</c>, optionally noised and averaged, never holding a
/// tensor of size N x P.
/// </summary>
/// <remarks>
/// <para>One forward with the hook engine's capture (each trainable layer's input and, after a backward of
/// <c>sum_i L_i</c> that computes activation gradients only, its output gradient). Per layer, a norm rule
/// (<see cref="ClippingRules"/>) gives each sample's squared norm by the cheaper of two routes: the ghost norm (Gram
/// matrices of inputs and output gradients over positions) or that one layer's materialised per-sample gradient
/// (mixed ghost clipping). A layer called several times in one forward is materialised (sum over calls, then norm).
/// With the clip factors <c>f_i = min(1, C / |g_i|)</c>, the clipped sum comes either from the captures
/// (<see cref="ClippedSumRoute.BookKeeping"/>, the default: each layer's gradient recomputed from its input and its
/// output gradient scaled by <c>f_i</c>, summed over samples) or from a second backward through the kept graph, of
/// <c>sum_i f_i L_i</c> (<see cref="ClippedSumRoute.SecondBackward"/>).</para>
/// <para>Same validation, loss semantics (gradients of each sample's own loss <c>L_i</c>) and model guarantees as the
/// engines: the model, its <c>.grad</c> included, is left as it was; <see cref="ClippedGradients.WriteGradients"/>
/// writes the result into <c>.grad</c> for an optimizer. Memory beyond plain backward: the captured inputs and
/// output gradients, the Gram matrices (<c>[N, L, L]</c>) or one materialised layer at a time.</para>
/// </remarks>
public sealed class ClippingMethod
{
    private readonly ClippingOptions _options;
    private readonly IReadOnlyDictionary<Type, ClippingRule> _rules;
    private readonly ClippingSteps _steps;
    private Generator? _noise;

    /// <summary>Creates the method with the default table and steps, or those given.</summary>
    public ClippingMethod(ClippingOptions? options = null, IReadOnlyDictionary<Type, ClippingRule>? rules = null,
        ClippingSteps? steps = null)
    {
        _options = options ?? new ClippingOptions();
        _rules = rules ?? ClippingRules.Default;
        _steps = steps ?? ClippingSteps.Default;
        Validate(_options);
    }

    /// <summary>Short name used in reports.</summary>
    public string Name => "clipping";

    /// <summary>Computes norms and the clipped sum for the batch (see the class remarks).</summary>
    public ClippedGradients Compute(nn.Module<Tensor, Tensor> model, Tensor inputs, Tensor targets, LossFunction loss)
    {
        using var scope = NewDisposeScope();
        using var prepared = PreparedCall.Begin(model, inputs, targets, loss, _options,
            new EngineCapabilities(Name, (IReadOnlyCollection<Type>)_rules.Keys, RefusesUserHooks: false,
                SamplesFirstOnly: true, TensorToTensorOnly: true));
        if (prepared.Groups.FirstOrDefault(g => g.Names.Count > 1) is { } tied)
            throw new PerSampleGradientsException(Problem.UnsupportedLayers,
                $"Parameter '{tied.Names[0]}' is also used as '{string.Join("', '", tied.Names.Skip(1))}' (weight " +
                $"tying): the {Name} method computes norms per module and cannot add up one tensor's uses. Use the " +
                "hook or functional engine and clip their per-sample gradients.");
        var (x, y, owners) = (prepared.Inputs, prepared.Targets, prepared.Owners);
        long n = x.shape[0];
        var trainable = ModelInspection.TrainableParameters(model);
        var parameters = trainable.Select(p => (Tensor)p.Parameter).ToArray();
        var calls = new List<CapturedCall>();
        // backward() accumulates into .grad: the caller's .grad tensors are set aside and put back afterwards.
        using var setAside = new SetAsideGradients(parameters);
        try
        {
            bool secondBackward = _options.ClippedSum == ClippedSumRoute.SecondBackward;
            var clock = new PhaseClock(_options.MeasurePhases, x.device);
            var losses = Capture(model, x, y, loss, owners, calls, keepGraph: secondBackward, clock);
            if (!secondBackward) EngineSupport.RefuseBypassedParameters(prepared.Groups, Name);
            var squared = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            var routes = LayerNorms(owners, calls, squared);
            clock.Lap("norms");
            var perParameter = trainable
                .Select(p => (p.Name, squared.TryGetValue(p.Name, out var s) ? s : zeros(n, dtype: p.Parameter.dtype,
                    device: p.Parameter.device)))
                .ToList();
            var norms = _steps.TotalNorms(perParameter);
            var weights = _steps.LossWeights(norms, perParameter, _options.ClipBound).detach();
            var sums = secondBackward ? WeightedBackward(losses, weights, trainable) : BookKeeping(owners, calls,
                weights, trainable);
            clock.Lap(secondBackward ? "second backward" : "book-keeping sums");
            AddNoiseAndAverage(sums, n);
            var result = trainable.Select((p, j) => (p.Name, perParameter[j].Item2.sqrt(), sums[j])).ToList();
            clock.Lap("noise and averaging");
            return new ClippedGradients(Name, _options.ClipBound, norms, weights, result, routes, clock.Phases);
        }
        finally
        {
            foreach (var call in calls) call.Dispose();
        }
    }

    // The table's rule; a module the table lacks reached here only because the per-sample rerun fallback is allowed
    // (EngineSupport): its gradient is materialised one module at a time.
    private ClippingRule Rule(nn.Module layer) => _rules.TryGetValue(layer.GetType(), out var rule)
        ? rule
        : Rules.ClippingRules.Materialised(PerSampleRerunRule.Compute);

    private static void Validate(ClippingOptions options)
    {
        if (double.IsNaN(options.ClipBound) || options.ClipBound <= 0)
            throw new PerSampleGradientsException(Problem.InvalidClipping,
                $"The clipping bound C must be positive (or infinity for no clipping), got {options.ClipBound}.");
        if (double.IsNaN(options.NoiseMultiplier) || options.NoiseMultiplier < 0
            || double.IsInfinity(options.NoiseMultiplier))
            throw new PerSampleGradientsException(Problem.InvalidClipping,
                $"The noise multiplier sigma must be finite and at least 0, got {options.NoiseMultiplier}.");
        if (options.NoiseMultiplier > 0 && double.IsInfinity(options.ClipBound))
            throw new PerSampleGradientsException(Problem.InvalidClipping,
                "Noise of standard deviation sigma * C needs a finite clipping bound C: give C, or set sigma to 0.");
    }

    // One forward with the capture hooks, one backward of sum_i L_i to every recorder (activation gradients only),
    // keeping the graph for the weighted backward. Returns the per-sample losses [N].
    private static Tensor Capture(nn.Module<Tensor, Tensor> model, Tensor x, Tensor y, LossFunction loss,
        List<(NamedModule Module, List<string> Trainable)> owners, List<CapturedCall> calls, bool keepGraph,
            PhaseClock clock)
    {
        var probe = zeros([], dtype: x.dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32,
            device: x.device, requires_grad: true);
        var removers = new List<Action>();
        Tensor losses;
        try
        {
            foreach (var (named, trainable) in owners)
            {
                var layer = (nn.Module<Tensor, Tensor>)named.Module;
                // The book-keeping sums need no parameter in the graph, so the bypass check applies; the second
                // backward needs them there.
                if (!keepGraph)
                    EngineSupport.KeepOwnParametersOutOfGraph(layer, ModuleSignatures.TensorToTensor, trainable,
                        removers);
                removers.Add(layer.register_forward_hook((_, input, output) =>
                {
                    var call = new CapturedCall(named, SampleAxis.First, input.detach().DetachFromDisposeScope());
                    calls.Add(call);
                    return GradientRecorder.apply(output, call, probe);
                }).remove);
            }
            var output = model.call(x);
            loss.ValidateTargets(output, y);
            losses = loss.PerSampleLosses(output, y);
        }
        finally
        {
            foreach (var remove in removers) remove();
        }
        clock.Lap("forward with capture");
        // No trainable layer on the loss's path: no graph, every norm and sum is zero.
        if (losses.requires_grad)
            autograd.backward([losses.sum()], inputs: [probe,
                .. keepGraph ? [] : ModelInspection.TrainableParameters(model)
                .Select(p => (Tensor)p.Parameter)], retain_graph: keepGraph);
        clock.Lap("backward to layer outputs");
        return losses;
    }

    // Squared norms per qualified parameter name; returns the route each layer took. Each layer's temporaries (Gram
    // matrices, receptive fields, a materialised gradient) are released before the next layer's.
    private Dictionary<string, string> LayerNorms(List<(NamedModule Module, List<string> Trainable)> owners,
        List<CapturedCall> calls, Dictionary<string, Tensor> squared)
    {
        var routes = new Dictionary<string, string>(StringComparer.Ordinal);
        var trainableByModule = owners.ToDictionary(o => o.Module.Module, o => o.Trainable);
        foreach (var layerCalls in calls.Where(c => c.OutputGradient is not null).GroupBy(c => c.Layer.Module))
        {
            using var layerScope = NewDisposeScope();
            var layer = layerCalls.First().Layer;
            var trainable = trainableByModule[layer.Module];
            var rule = Rule(layer.Module);
            var local = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            if (layerCalls.Count() == 1)
            {
                var call = layerCalls.Single();
                var route = rule.Norms(new LayerCall(layer.Module, layer.Display, call.Input, call.OutputGradient!),
                    _options.Route,
                    new NormSink(trainable, local));
                routes[layer.Display] = route == NormRoute.Ghost ? "ghost" : "materialised";
            }
            else
            {
                // Shared weights: the sample's gradient is the sum over calls, whose norms do not add.
                var sums = new Dictionary<string, Tensor>(StringComparer.Ordinal);
                foreach (var call in layerCalls)
                    rule.PerSample(new LayerCall(layer.Module, layer.Display, call.Input, call.OutputGradient!),
                        new SummingSink(trainable, sums));
                foreach (var (parameter, gradient) in sums) local[parameter] = Maths.GhostNorms.Materialised(gradient);
                routes[layer.Display] = $"materialised ({layerCalls.Count()} calls)";
            }
            foreach (var (parameter,
                norms) in local) squared[layer.Qualify(parameter)] = norms.MoveToOuterDisposeScope();
        }
        return routes;
    }

    // Book-keeping: per layer call, the output gradient scaled by each sample's factor, summed over samples by the
    // layer's rule; calls of one layer add. Zeros where no call reached the loss.
    private List<Tensor> BookKeeping(List<(NamedModule Module, List<string> Trainable)> owners,
        List<CapturedCall> calls,
        Tensor weights, List<(string Name, Parameter Parameter)> trainable)
    {
        var trainableByModule = owners.ToDictionary(o => o.Module.Module, o => o.Trainable);
        var sums = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var call in calls.Where(c => c.OutputGradient is not null))
        {
            using var callScope = NewDisposeScope();
            var g = call.OutputGradient!;
            var shape = Enumerable.Repeat(1L, (int)g.dim()).ToArray();
            shape[0] = g.shape[0];
            var scaled = g * weights.to(g.dtype).reshape(shape);
            var local = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            Rule(call.Layer.Module).ClippedSum(new LayerCall(call.Layer.Module, call.Layer.Display,
                call.Input, scaled),
                new SummingSink(trainableByModule[call.Layer.Module], local));
            foreach (var (parameter, sum) in local)
            {
                var name = call.Layer.Qualify(parameter);
                if (sums.TryGetValue(name, out var total)) total.add_(sum.squeeze(0));
                else sums[name] = sum.squeeze(0).contiguous().MoveToOuterDisposeScope();
            }
        }
        return trainable.Select(p => sums.TryGetValue(p.Name, out var sum) ? sum : zeros_like(p.Parameter)).ToList();
    }

    // The second backward: the gradient of sum_i w_i L_i for every trainable parameter (zeros where none arrives).
    private static List<Tensor> WeightedBackward(Tensor losses, Tensor weights, List<(string Name,
        Parameter Parameter)> trainable)
    {
        var parameters = trainable.Select(p => (Tensor)p.Parameter).ToArray();
        if (losses.requires_grad) autograd.backward([(losses * weights.to(losses.dtype)).sum()], inputs: parameters);
        return trainable.Select(p =>
        {
            using var grad = p.Parameter.grad;
            p.Parameter.grad = null;
            return grad is null ? zeros_like(p.Parameter) : grad.detach().clone();
        }).ToList();
    }

    private void AddNoiseAndAverage(List<Tensor> sums, long n)
    {
        using var noGrad = no_grad();
        if (_options.NoiseMultiplier > 0)
        {
            double deviation = _options.NoiseMultiplier * _options.ClipBound;
            var device = sums[0].device;
            _noise ??= new Generator((ulong)_options.NoiseSeed, device);
            foreach (var sum in sums)
                sum.add_(randn(sum.shape, dtype: sum.dtype, device: device, generator: _noise).mul_(deviation));
        }
        if (_options.Average)
            foreach (var sum in sums) sum.div_(n);
    }

    private sealed class NormSink(List<string> trainable, Dictionary<string, Tensor> squared) : ISquaredNormSink
    {
        public bool Wants(string parameter) => trainable.Contains(parameter);

        public void Add(string parameter, Tensor squaredNorms) => squared[parameter] = squaredNorms;
    }

    // Adds what a rule writes, by local parameter name.
    private sealed class SummingSink(List<string> trainable, Dictionary<string, Tensor> sums) : ILayerGradientSink
    {
        public bool Wants(string parameter) => trainable.Contains(parameter);

        public void Add(string parameter, Tensor gradient)
        {
            if (sums.TryGetValue(parameter, out var sum)) sum.add_(gradient);
            else sums[parameter] = gradient;
        }
    }

    // Wall time per phase, the device synchronised at each lap; does nothing unless enabled.
    private sealed class PhaseClock(bool enabled, Device device)
    {
        private readonly System.Diagnostics.Stopwatch _watch = System.Diagnostics.Stopwatch.StartNew();
        private readonly Dictionary<string, double> _phases = new(StringComparer.Ordinal);

        public IReadOnlyDictionary<string, double>? Phases => enabled ? _phases : null;

        public void Lap(string phase)
        {
            if (!enabled) return;
            if (device.type == DeviceType.CUDA) cuda.synchronize();
            _phases[phase] = _watch.Elapsed.TotalMilliseconds;
            _watch.Restart();
        }
    }
}
