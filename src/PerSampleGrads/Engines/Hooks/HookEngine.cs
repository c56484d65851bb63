using TorchSharp;
using PerSampleGrads.Engines.Hooks.Rules;
using PerSampleGrads.Engines.Probing;
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
/// <para>A layer called several times in one forward (weight sharing) accumulates the contributions of every call,
/// and a parameter tensor used by several layers (weight tying) gets the sum of every use under each of its names.
/// Only modules that directly own trainable parameters are hooked, so nested modules are never counted twice. Hooks
/// exist only during <c>Compute</c> and are removed also when it throws. Where a layer's input keeps the
/// samples is found by the sample-separation probe (<see cref="Probing.SampleLayout"/>); a parameter used where no
/// hook sees it (a child invoked with <c>forward()</c>) is refused, never silently missed.</para>
/// <para>Memory: the captured inputs (views of tensors autograd keeps anyway), one output gradient per layer call,
/// the clones the recorders return, and the result; nothing else of size N x parameters.</para>
/// </remarks>
public sealed class HookEngine : IPerSampleGradientMethod
{
    private readonly HookEngineOptions _options;
    private readonly IReadOnlyDictionary<Type, PerSampleRule> _rules;
    private readonly IReadOnlyDictionary<Type, RecordingForward> _forwards;

    /// <summary>
    /// Creates the engine with the default rule table or <paramref name="rules"/>, and the default recording forwards
    /// (<see cref="HookRules.RecordingForwards"/>) or <paramref name="forwards"/>; a recording forward is used only
    /// for a layer type that has a rule.
    /// </summary>
    public HookEngine(HookEngineOptions? options = null, IReadOnlyDictionary<Type, PerSampleRule>? rules = null,
        IReadOnlyDictionary<Type, RecordingForward>? forwards = null)
    {
        _options = options ?? new HookEngineOptions();
        _rules = rules ?? HookRules.Default;
        _forwards = forwards ?? HookRules.RecordingForwards;
    }

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
        using var prepared = PreparedCall.Begin(model, inputs, targets, loss, _options,
            new EngineCapabilities(Name, (IReadOnlyCollection<Type>)_rules.Keys, RefusesUserHooks: false));
        var (x, y) = (prepared.Inputs, prepared.Targets);
        using var buffer = into is null ? null
            : ResultBuffer.Lease(into, ModelInspection.TrainableParameters(model), x.shape[0], Name);
        var calls = new List<CapturedCall>();
        PerSampleGradients result;
        try
        {
            ModelAccess.Guard(Name, () => Capture(model, x, y, loss, prepared, calls));
            var sums = ApplyRules(prepared, calls, buffer);
            if (buffer is not null) buffer.ZeroUnwritten();
            result = buffer?.Result
                ?? EngineSupport.Result(Name, x.shape[0], prepared.Groups, g => sums.GetValueOrDefault(g));
        }
        finally
        {
            foreach (var call in calls) call.Dispose();
        }
        return EngineAudit.Attached(result, model, x, y, loss, _options, disposeOnFailure: buffer is null);
    }

    // One forward with hooks, one backward that reaches every recorder and asks for the real parameters' gradients,
    // which only uses no hook saw can give (EngineSupport.KeepOwnParametersOutOfGraph).
    private void Capture(nn.Module<Tensor, Tensor> model, Tensor x, Tensor y, LossFunction loss,
        PreparedCall prepared, List<CapturedCall> calls)
    {
        long n = x.shape[0];
        var probe = zeros([], dtype: x.dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32,
            device: x.device, requires_grad: true);
        var removers = new List<Action>();
        var parameters = prepared.Groups.Select(g => (Tensor)g.Parameter).ToList();
        using var setAside = new SetAsideGradients(parameters);
        try
        {
            foreach (var (named, trainable) in prepared.Owners)
            {
                var layer = named.Module;
                var signature = ModuleSignatures.Of(layer, named.Display);
                var probed = prepared.Layout.Axes(layer);
                var axis = probed.Primary;
                var axes = SlotLayout.AfterExpansion(probed);
                EngineSupport.KeepOwnParametersOutOfGraph(layer, signature, trainable, removers);
                if (axis.IsShared)
                    removers.Add(signature.HookBefore(layer, arguments => arguments[0] is Tensor input
                        ? [axis.ExpandShared(input, n), .. arguments[1..]] : null));
                // A layer the engine computes itself: the module's own forward gets a one-sample stand-in where every
                // tensor argument has its samples located, and its outputs are replaced. Not with hooks of the
                // caller's on the layer, which would see the stand-in.
                var recording = _rules.ContainsKey(layer.GetType()) && !axis.IsShared
                    && prepared.UserHooks(layer) is (0, 0) ? _forwards.GetValueOrDefault(layer.GetType()) : null;
                var realArguments = new Stack<object?[]>();
                if (recording is not null)
                    removers.Add(signature.HookBefore(layer, arguments =>
                    {
                        realArguments.Push(arguments);
                        return SlotLayout.OneSampleStandIn(arguments, axes);
                    }));
                removers.Add(signature.HookAfter(layer, (arguments, outputs) =>
                {
                    ForwardTape? tape = null;
                    if (recording is not null)
                    {
                        arguments = realArguments.Pop();
                        tape = new ForwardTape(probe);
                        try
                        {
                            // Slots the module left empty in this call stay empty.
                            var real = outputs;
                            outputs = recording(layer, named.Display, arguments, axes, tape)
                                .Select((o, i) => i < real.Length && real[i] is not null ? o : null)
                                .Take(real.Length).ToArray();
                        }
                        catch
                        {
                            tape.Dispose();
                            throw;
                        }
                    }
                    var sampleFirst = axis.IsShared ? SampleAxis.First : axis;
                    var call = new CapturedCall(named, sampleFirst, SlotLayout.ArgumentsFirst(arguments, axes,
                        t => t.detach().DetachFromDisposeScope()), axes, outputs) { Tape = tape };
                    calls.Add(call);
                    return outputs.Select((o, i) => o is null ? null
                        : GradientRecorder.apply(o, new RecordingSlot(call, i), probe)).ToArray();
                }));
            }
            var output = model.call(x);
            loss.ValidateTargets(output, y);
            var total = loss.PerSampleLosses(output, y).sum();
            // No trainable layer on the loss's path: no graph, and every gradient is zero.
            if (total.requires_grad) autograd.backward([total], inputs: [probe, .. parameters]);
            EngineSupport.RefuseBypassedParameters(prepared.Groups, Name);
        }
        finally
        {
            foreach (var remove in removers) remove();
        }
    }

    private Dictionary<ParameterGroup, Tensor> ApplyRules(PreparedCall prepared, List<CapturedCall> calls,
        ResultBuffer? buffer)
    {
        var trainableByModule = new Dictionary<nn.Module, List<string>>(ReferenceEqualityComparer.Instance);
        foreach (var (named, trainable) in prepared.Owners) trainableByModule[named.Module] = trainable;
        var groupOf = new Dictionary<ParameterIdentity, ParameterGroup>();
        foreach (var group in prepared.Groups) groupOf[ParameterIdentity.Of(group.Parameter)] = group;
        var sums = new Dictionary<ParameterGroup, Tensor>(ReferenceEqualityComparer.Instance);
        foreach (var call in calls)
        {
            // A call none of whose outputs reached the loss contributes nothing.
            if (!call.ReachedLoss) continue;
            var sink = new Accumulator(call.Layer, trainableByModule[call.Layer.Module], groupOf, sums, buffer);
            Rule(call.Layer.Module)(LayerCallOf(call), sink);
        }
        return sums;
    }

    // What a rule sees: every slot samples-first; a missing gradient at output 0 as zeros when another output got one.
    internal static LayerCall LayerCallOf(CapturedCall call)
    {
        var gradients = call.OutputGradients.Select((g, i) => g is null ? null
            : SlotLayout.First(g, i < call.Axes.Outputs.Count ? call.Axes.Outputs[i] : call.Axis)).ToList();
        if (call.Arguments.Length == 1 && call.OutputGradients.Count == 1)
            return new LayerCall(call.Layer.Module, call.Layer.Display, call.Input,
                call.OutputGradient!.movedim([call.Axis.Dimension], [0]))
            {
                ArgumentAxes = call.Axes.Arguments,
                OutputAxes = call.Axes.Outputs,
                Tape = call.Tape,
            };
        var primary = gradients[0] ?? zeros(call.OutputShapes[0]!, dtype: call.OutputTypes[0]!.Value,
            device: call.Input.device).movedim([call.Axes.Outputs[0]?.Dimension ?? 0], [0]);
        return new LayerCall(call.Layer.Module, call.Layer.Display, call.Input, primary)
        {
            Arguments = call.Arguments,
            ArgumentAxes = call.Axes.Arguments,
            OutputGradients = gradients,
            OutputAxes = call.Axes.Outputs,
            Tape = call.Tape,
        };
    }

    // The table's rule; a module the table lacks reached here only because the fallback is allowed (EngineSupport).
    private PerSampleRule Rule(nn.Module layer) =>
        _rules.TryGetValue(layer.GetType(), out var rule) ? rule : PerSampleRerunRule.Compute;

    // Sums per distinct parameter tensor (a tied one collects every module's share), into the caller's buffer when
    // one was handed in (under the tensor's first name; its other names are views of the same memory).
    private sealed class Accumulator(NamedModule layer, List<string> trainable,
        Dictionary<ParameterIdentity, ParameterGroup> groupOf, Dictionary<ParameterGroup, Tensor> sums,
        ResultBuffer? buffer) : ILayerGradientSink
    {
        public bool Wants(string parameter) => trainable.Contains(parameter);

        // The caller's buffer, the first time this parameter is written in the call; later calls of the layer add.
        public Tensor? Destination(string parameter)
        {
            if (buffer is null) return null;
            var name = GroupOf(parameter).Names[0];
            return buffer.IsWritten(name) ? null : buffer[name];
        }

        private ParameterGroup GroupOf(string parameter) =>
            groupOf[ParameterIdentity.Of(layer.Module.get_parameter(parameter)!)];

        public void Add(string parameter, Tensor perSampleGradient)
        {
            var group = GroupOf(parameter);
            if (buffer is not null)
            {
                buffer.Write(group.Names, perSampleGradient);
                return;
            }
            if (sums.TryGetValue(group, out var sum)) sum.add_(perSampleGradient);
            else sums[group] = perSampleGradient;
        }
    }
}
