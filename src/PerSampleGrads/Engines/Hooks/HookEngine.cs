using TorchSharp;
using PerSampleGrads.Engines.Hooks.Rules;
using static TorchSharp.torch;

namespace PerSampleGrads.Engines.Hooks;

/// <summary>Options of the hook engine: those of every engine (<see cref="EngineOptions"/>).</summary>
public sealed record HookEngineOptions : EngineOptions;

/// <summary>
/// Opacus-style per-sample gradients in one forward and one backward: forward hooks capture each trainable layer's
/// input and attach a <see cref="GradientRecorder"/> to its output; one backward delivers the gradient at every
/// output; a closed-form rule per layer type (<see cref="HookRules"/>) turns (input, output gradient) into
/// <c>[N, ...]</c> gradients.
/// </summary>
/// <remarks>
/// <para>Definition: the result is the gradient of each sample's own loss (see <see cref="LossFunction"/>). The
/// backward starts from <c>sum_i L_i</c>, so with <see cref="LossReduction.Mean"/> the batch mean's 1/N is undone
/// (the engine's rescaling by N).</para>
/// <para>A layer called several times in one forward (weight sharing) accumulates the contributions of every call.
/// Only modules that directly own trainable parameters are hooked, so nested modules are never counted twice.
/// Hooks exist only during <c>Compute</c> and are removed also when it throws. Children must be invoked with
/// <c>call()</c> (as TorchSharp's containers and TorchVision do): <c>forward()</c> skips hooks.</para>
/// <para>Memory: the captured inputs (views of tensors autograd keeps anyway), one output gradient per layer call,
/// the clones the recorders return, and the result; nothing else of size N x parameters.</para>
/// </remarks>
public sealed class HookEngine : IPerSampleGradientMethod
{
    private readonly HookEngineOptions _options;
    private readonly IReadOnlyDictionary<Type, PerSampleRule> _rules;

    /// <summary>Creates the engine with the default rule table or <paramref name="rules"/>.</summary>
    public HookEngine(HookEngineOptions? options = null, IReadOnlyDictionary<Type, PerSampleRule>? rules = null)
    {
        _options = options ?? new HookEngineOptions();
        _rules = rules ?? HookRules.Default;
    }

    internal PlantedBug Bug { get; init; }

    /// <inheritdoc/>
    public string Name => "hooks";

    /// <inheritdoc/>
    public PerSampleGradients Compute(nn.Module<Tensor, Tensor> model, Tensor inputs, Tensor targets,
        LossFunction loss) =>
        Compute(model, inputs, targets, loss, null);

    /// <summary>
    /// Computes per-sample gradients into <paramref name="into"/>, an earlier result of the same model and batch size,
    /// and returns it: repeated calls then write into memory already touched (see <see cref="ResultBuffer"/> for the
    /// lifetime rules). The convolution and linear rules write their products straight into it.
    /// </summary>
    public PerSampleGradients Compute(nn.Module<Tensor, Tensor> model, Tensor inputs, Tensor targets, LossFunction loss,
        PerSampleGradients? into)
    {
        using var scope = NewDisposeScope();
        using var prepared = PreparedCall.Begin(model, inputs, targets, loss, _options, (IReadOnlyCollection<Type>)_rules.Keys, Name);
        var (x, y, owners) = (prepared.Inputs, prepared.Targets, prepared.Owners);
        var trainable = ModelInspection.TrainableParameters(model);
        using var buffer = into is null ? null : ResultBuffer.Lease(into, trainable, x.shape[0], Name);
        var calls = new List<CapturedCall>();
        try
        {
            Capture(model, x, y, loss, owners, calls);
            var sums = ApplyRules(owners, calls, buffer);
            if (buffer is not null)
            {
                buffer.ZeroUnwritten();
                return buffer.Result;
            }
            var result = trainable.Select(p => (p.Name, sums.TryGetValue(p.Name, out var g)
                ? g
                : ModelInspection.PerSampleZeros(p.Parameter, x.shape[0])));
            return new PerSampleGradients(Name, x.shape[0], result);
        }
        finally
        {
            foreach (var call in calls) call.Dispose();
        }
    }

    // One forward with hooks, one backward that reaches every recorder.
    private void Capture(nn.Module<Tensor, Tensor> model, Tensor x, Tensor y, LossFunction loss,
        List<(NamedModule Module, List<string> Trainable)> owners, List<CapturedCall> calls)
    {
        var probe = zeros([], dtype: x.dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32,
            device: x.device, requires_grad: true);
        var handles = new List<nn.HookableModule<Func<nn.Module<Tensor, Tensor>, Tensor, Tensor>, Func<nn.Module<Tensor, Tensor>, Tensor, Tensor, Tensor>>.HookRemover>();
        try
        {
            foreach (var (named, _) in owners)
            {
                var layer = (nn.Module<Tensor, Tensor>)named.Module;
                handles.Add(layer.register_forward_hook((_, input, output) =>
                {
                    var call = new CapturedCall(named, input.detach().DetachFromDisposeScope());
                    calls.Add(call);
                    return GradientRecorder.apply(output, call, probe);
                }));
            }
            var output = model.call(x);
            loss.ValidateTargets(output, y);
            var total = Bug == PlantedBug.MeanNotRescaled ? loss.BatchLoss(output, y) : loss.PerSampleLosses(output, y).sum();
            // No trainable layer on the loss's path: no graph, and every gradient is zero.
            if (total.requires_grad) autograd.backward([total], inputs: [probe]);
        }
        finally
        {
            foreach (var handle in handles) handle.remove();
        }
    }

    private Dictionary<string, Tensor> ApplyRules(List<(NamedModule Module, List<string> Trainable)> owners,
        List<CapturedCall> calls,
        ResultBuffer? buffer)
    {
        var trainableByModule = owners.ToDictionary(o => o.Module.Module, o => o.Trainable);
        var sums = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var call in calls)
        {
            // A call whose output did not reach the loss contributes nothing.
            if (call.OutputGradient is null) continue;
            var sink = new Accumulator(call.Layer, trainableByModule[call.Layer.Module], sums,
                Bug == PlantedBug.SharedModuleOverwritten, buffer);
            _rules[call.Layer.Module.GetType()](new LayerCall(call.Layer.Module, call.Layer.Display, call.Input, call.OutputGradient), sink);
        }
        return sums;
    }

    private sealed class Accumulator(NamedModule layer, List<string> trainable, Dictionary<string, Tensor> sums,
        bool overwrite,
        ResultBuffer? buffer) : ILayerGradientSink
    {
        public bool Wants(string parameter) => trainable.Contains(parameter);

        // The caller's buffer, the first time this parameter is written in the call; later calls of the layer add.
        public Tensor? Destination(string parameter)
        {
            var name = layer.Qualify(parameter);
            return buffer is not null && !buffer.IsWritten(name) ? buffer[name] : null;
        }

        public void Add(string parameter, Tensor perSampleGradient)
        {
            var name = layer.Qualify(parameter);
            if (buffer is not null)
            {
                buffer.Write(name, perSampleGradient, overwrite);
                return;
            }
            if (!overwrite && sums.TryGetValue(name, out var sum)) sum.add_(perSampleGradient);
            else sums[name] = perSampleGradient;
        }
    }
}
