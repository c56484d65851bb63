using System.Runtime.CompilerServices;
using TorchSharp;
using static TorchSharp.torch;

namespace PerSampleGrads.Engines.Probing;

/// <summary>
/// Where one layer's argument and output slots keep the samples (see <see cref="ModuleSignature"/>): null for a slot
/// the probe did not locate (not a tensor, null in the call, or left out by <see cref="ModuleSignature.SampleSlots"/>).
/// </summary>
/// <param name="Arguments">One entry per argument slot.</param>
/// <param name="Outputs">One entry per output slot.</param>
public sealed record LayerAxes(IReadOnlyList<SampleAxis?> Arguments, IReadOnlyList<SampleAxis?> Outputs)
{
    /// <summary>The primary axis: argument slot 0's, else output slot 0's (EmbeddingBag's bags), else samples in
    /// dimension 0.</summary>
    public SampleAxis Primary => Arguments.Count > 0 && Arguments[0] is { } a ? a
        : Outputs.Count > 0 && Outputs[0] is { } o ? o : SampleAxis.First;

    /// <summary>Samples in dimension 0 of a one-slot layer's input and output.</summary>
    public static LayerAxes First { get; } = new([SampleAxis.First], [SampleAxis.First]);
}

/// <summary>Where each trainable layer's input keeps the samples, as the probe found it.</summary>
public sealed class SampleLayout
{
    private readonly Dictionary<nn.Module, LayerAxes> _layers;

    internal SampleLayout(Dictionary<nn.Module, LayerAxes> layers) => _layers = layers;

    /// <summary>The axis of <paramref name="layer"/>'s primary input (samples in dimension 0 when it never
    /// ran).</summary>
    public SampleAxis InputAxis(nn.Module layer) => _layers.TryGetValue(layer, out var axes)
        ? axes.Primary : SampleAxis.First;

    /// <summary>The axes of every slot of <paramref name="layer"/> (dimension 0 everywhere when it never
    /// ran).</summary>
    public LayerAxes Axes(nn.Module layer) => _layers.GetValueOrDefault(layer, LayerAxes.First);

    /// <summary>Layers whose input is not laid out with the samples in dimension 0.</summary>
    public IEnumerable<(nn.Module Layer, SampleAxis Axis)> Unusual =>
        _layers.Where(p => p.Value.Primary != SampleAxis.First).Select(p => (p.Key, p.Value.Primary));
}

/// <summary>
/// The sample-separation probe. Three forwards without gradients with hooks on every trainable layer: the batch as
/// given, a small batch of another size (its first two samples; with N = 1 or 2, the samples and a repeat of the
/// first), and that small batch with one sample perturbed. Comparing what each layer receives and returns tells, for
/// every layer call and for the model's output: which dimension carries the samples (the one whose size follows the
/// batch's: a sequence-first
/// <c>[T, N, D]</c> input has them in dimension 1, even when T = N), whether a tensor is shared by every sample (no
/// dimension follows the batch: position ids <c>[1, T]</c>), and whether some operation mixes samples (changing one
/// sample changes another's values). It also checks that hooks the caller registered on a trainable layer leave its
/// output as the layer computes it.
/// </summary>
/// <remarks>
/// Cost: one forward without gradients on the batch and two on two or three samples (three in training mode, the third
/// to find a layer that hides dropout; one more on the batch when a shared input is found, to verify that giving each
/// sample its own copy of it leaves the model's output unchanged). It
/// runs once per model, input shape, dtype and device, module structure, modes and hooks; later calls reuse the result.
/// </remarks>
internal static class SampleSeparationProbe
{
    private static readonly ConditionalWeakTable<nn.Module, Dictionary<string, SampleLayout>> Cache = new();

    public static SampleLayout Run(nn.Module<Tensor, Tensor> model, Tensor x, IReadOnlyList<NamedModule> layers,
        ModelAccess access)
    {
        var key = Fingerprint(model, x, access);
        var perModel = Cache.GetOrCreateValue(model);
        lock (perModel)
            if (perModel.TryGetValue(key, out var cached)) return cached;
        var layout = Measure(model, x, layers, access);
        lock (perModel) perModel[key] = layout;
        return layout;
    }

    /// <summary>Drops what the probe remembers about <paramref name="model"/> (the benchmark's uncached
    /// contender).</summary>
    public static void Forget(nn.Module model) => Cache.Remove(model);

    private static SampleLayout Measure(nn.Module<Tensor, Tensor> model, Tensor x, IReadOnlyList<NamedModule> layers,
        ModelAccess access)
    {
        using var scope = NewDisposeScope();
        using var guard = ModelStateGuard.Capture(model);
        using var noGrad = no_grad();
        long n = x.shape[0];
        // A small batch of another size: the first two samples, or the samples repeated when N is 1 or 2.
        var small = n > 2 ? x.narrow(0, 0, 2) : cat([x, x.narrow(0, 0, 1)]);
        long m = small.shape[0], j = m - 1;
        using var baseline = Forward(model, x, layers, access);
        using var resized = Forward(model, small, layers, access);
        using var one = Perturbation.One(small, j) is { } perturbed ? Forward(model, perturbed, layers, access) : null;
        if (model.training || model.modules().Any(m => m.training))
            RefuseRandomness(model, small, resized, layers, access);
        if (new[] { resized, one }.OfType<Captures>().Any(run => run.Calls.Count != baseline.Calls.Count
            || run.Calls.Zip(baseline.Calls).Any(p => !ReferenceEquals(p.First.Layer.Module, p.Second.Layer.Module))))
            throw new PerSampleGradientsException(Problem.BatchLayout,
                $"The model calls its trainable layers differently for a batch of {m} samples than for {n}: the " +
                "engines need the same layer calls for every batch size. Make the forward's control flow independent " +
                "of the batch size.");
        var axes = new Dictionary<nn.Module, SampleAxis>(ReferenceEqualityComparer.Instance);
        var slots = new Dictionary<nn.Module, LayerAxes>(ReferenceEqualityComparer.Instance);
        for (int c = 0; c < baseline.Calls.Count; c++)
        {
            var call = baseline.Calls[c];
            var arguments = Slots(call.Arguments, resized.Calls[c].Arguments, one?.Calls[c].Arguments, n, m, j,
                call, "input");
            var outputs = Slots(call.Outputs, resized.Calls[c].Outputs, one?.Calls[c].Outputs, n, m, j, call,
                "output");
            var layerAxes = new LayerAxes(arguments, outputs);
            var inputAxis = layerAxes.Primary;
            if (outputs.Length > 0 && outputs[0] is { } outputAxis && !inputAxis.IsShared && !outputAxis.IsShared
                && inputAxis != outputAxis)
                throw new PerSampleGradientsException(Problem.BatchLayout,
                    $"Module '{call.Layer.Display}' ({call.Layer.Module.GetType().Name}) receives {inputAxis} but " +
                    $"returns {outputAxis}: a layer with trainable parameters must keep the samples where it found " +
                    "them. Move the samples with a separate operation before or after the layer.");
            // An argument absent in one call (a recurrent cell's h0 on its first step) fits any layout in another.
            if (slots.TryGetValue(call.Layer.Module, out var earlier) && !Compatible(earlier.Arguments, arguments))
                throw new PerSampleGradientsException(Problem.BatchLayout,
                    $"Module '{call.Layer.Display}' ({call.Layer.Module.GetType().Name}) is called twice with " +
                    $"different layouts ({earlier.Primary}, then {inputAxis}): the engines need one layout per " +
                    "layer. Use two layers, or give both calls the same layout.");
            axes[call.Layer.Module] = inputAxis;
            slots[call.Layer.Module] = earlier is null ? layerAxes : new LayerAxes(
                Merge(earlier.Arguments, arguments), Merge(earlier.Outputs, outputs));
        }
        var outputVerdict = Decide(baseline.Output, resized.Output, one?.Output, n, m, j);
        if (outputVerdict.Problem is not null || outputVerdict.Axis != SampleAxis.First)
            throw new PerSampleGradientsException(outputVerdict.Problem ?? Problem.BatchLayout,
                $"The model's output (shape [{Shape(baseline.Output)}]) does not hold sample i in row i: " +
                (outputVerdict.Reason ?? $"it has {outputVerdict.Axis}") + ". The loss needs each sample's output " +
                "in dimension 0 and computed from that sample alone: remove the operation after the last trainable " +
                "layer that mixes or moves the samples, or use the oracle, which evaluates each sample alone.");

        if (axes.Values.Any(a => a.IsShared)) VerifyExpansion(model, x, baseline.Output, axes, layers, n);
        return new SampleLayout(slots);
    }

    // Equal wherever both calls located a slot.
    private static bool Compatible(IReadOnlyList<SampleAxis?> earlier, IReadOnlyList<SampleAxis?> later) =>
        earlier.Count == later.Count && earlier.Zip(later).All(p => p.First is null || p.Second is null
            || p.First == p.Second);

    // Each slot's axis from whichever call located it.
    private static SampleAxis?[] Merge(IReadOnlyList<SampleAxis?> earlier, IReadOnlyList<SampleAxis?> later) =>
        [.. earlier.Select((axis, i) => axis ?? (i < later.Count ? later[i] : null))];

    // The axis of each slot the baseline run holds a tensor in (null elsewhere).
    private static SampleAxis?[] Slots(Tensor?[] baseline, Tensor?[] resized, Tensor?[]? one, long n, long m, long j,
        LayerCapture call, string what)
    {
        var result = new SampleAxis?[baseline.Length];
        for (int s = 0; s < baseline.Length; s++)
        {
            if (baseline[s] is not { } tensor || resized[s] is not { } other) continue;
            var name = baseline.Length == 1 ? what : $"{what} '{call.Slots[s]}'";
            result[s] = Decide(tensor, other, one?[s], n, m, j).OrThrow(call.Layer, name, n, j);
        }
        return result;
    }

    // Giving each sample its own copy of a shared input must leave the model's output as it was; else the engines
    // cannot attribute that layer's gradient to samples.
    private static void VerifyExpansion(nn.Module<Tensor, Tensor> model, Tensor x, Tensor expected,
        Dictionary<nn.Module, SampleAxis> axes, IReadOnlyList<NamedModule> layers, long n)
    {
        var handles = new List<Action>();
        try
        {
            foreach (var named in layers.Where(l => axes.TryGetValue(l.Module, out var a) && a.IsShared))
            {
                var axis = axes[named.Module];
                handles.Add(ModuleSignatures.Of(named.Module, named.Display).HookBefore(named.Module, arguments =>
                    arguments[0] is Tensor input ? [axis.ExpandShared(input, n), .. arguments[1..]] : null));
            }
            Tensor output;
            try
            {
                output = model.call(x);
            }
            catch (Exception e) when (e is not PerSampleGradientsException)
            {
                throw SharedRefusal(axes, layers, $"the model failed with it ({e.Message.Split('\n')[0]})", e);
            }
            if (!output.shape.SequenceEqual(expected.shape) ||
                Perturbation.Changed(expected, output).any().item<bool>())
                throw SharedRefusal(axes, layers, "the model's output changed", null);
        }
        finally
        {
            foreach (var remove in handles) remove();
        }
    }

    private static PerSampleGradientsException SharedRefusal(Dictionary<nn.Module, SampleAxis> axes,
        IReadOnlyList<NamedModule> layers, string what, Exception? inner)
    {
        var names = string.Join(", ", layers.Where(l => axes.TryGetValue(l.Module, out var a) && a.IsShared)
            .Select(l => $"'{l.Display}'"));
        var message = $"The input of {names} is the same for every sample, and giving each sample its own copy of " +
            $"it ({what}) did not keep the model's computation: the engines cannot attribute that layer's gradient " +
            "to samples. Expand the shared input to the batch yourself (ids.expand(N, -1)) before the layer.";
        return inner is null
            ? new PerSampleGradientsException(Problem.BatchLayout, message)
            : new PerSampleGradientsException(Problem.BatchLayout, message, inner);
    }

    // Where this machine's float32 convolutions are wrong for several samples, their garbage looks like mixing too.
    private static string PlatformNote() => Float32Kernels.ConvolutionDefect is { } defect
        ? $" Note: this machine's libtorch computes small float32 transposed convolutions, and so convolution input " +
          $"gradients, wrong for batches of several samples ({defect}), which also looks like mixing here: if the " +
          "model holds convolutions and runs in float32, compute in float64 to tell the two apart."
        : "";

    private sealed record AxisVerdict(SampleAxis Axis, Problem? Problem, string? Reason)
    {
        public static AxisVerdict Of(SampleAxis axis) => new(axis, null, null);

        public SampleAxis OrThrow(NamedModule layer, string what, long n, long j)
        {
            if (Problem is not { } problem) return Axis;
            var fix = problem == PerSampleGrads.Problem.SampleMixing
                ? "Some operation before it computes a statistic over the batch (a mean, norm or softmax over the " +
                  "samples, BatchNorm-like code outside BatchNorm), so sample i's gradient depends on the other " +
                  "samples and no batched engine can separate it. Compute such statistics per sample, or use the " +
                  "oracle (PerSampleGradientOracle), which evaluates each sample as a batch of one." + PlatformNote()
                : $"Keep the N = {n} samples in one dimension of every trainable layer's input (dimension 0 for " +
                  "convolutions and normalisations).";
            return problem == PerSampleGrads.Problem.SampleMixing && what.StartsWith("input", StringComparison.Ordinal)
                ? throw new PerSampleGradientsException(problem,
                    $"Module '{layer.Display}' ({layer.Module.GetType().Name}) receives values that mix the samples: " +
                    $"{Reason}. {fix}")
                : throw new PerSampleGradientsException(problem,
                    $"Module '{layer.Display}' ({layer.Module.GetType().Name}): its {what} {Reason}. {fix}");
        }
    }

    // The samples' dimension is the one whose size follows the batch's (n, then m); none: shared by every sample.
    // Among those, changing sample j alone must change index j only, else the samples are mixed.
    private static AxisVerdict Decide(Tensor baseline, Tensor resized, Tensor? one, long n, long m, long j)
    {
        long[] shape = baseline.shape, other = resized.shape;
        if (shape.Length != other.Length)
            return new(default, Problem.BatchLayout,
                $"changes rank with the batch size (shape [{Shape(shape)}] for N = {n}, [{Shape(other)}] for {m})");
        var following = Enumerable.Range(0, shape.Length).Where(d => shape[d] != other[d]).ToList();
        if (following.Count == 0)
            return AxisVerdict.Of(shape.Length > 0 && shape[0] == 1
                ? new SampleAxis(SampleAxisKind.SharedWithUnitDimension, -1)
                : new SampleAxis(SampleAxisKind.SharedWithoutBatchDimension, -1));
        if (following.Any(d => shape[d] != n || other[d] != m))
            return new(default, Problem.BatchLayout,
                $"has shape [{Shape(shape)}] for N = {n} and [{Shape(other)}] for {m}: no single dimension holds " +
                "the samples");
        if (following.Count > 1)
            return new(default, Problem.SampleMixing,
                $"has several dimensions that follow the batch size (shape [{Shape(shape)}]), as products over " +
                "pairs of samples do");
        int d = following[0];
        if (one is null || !one.shape.SequenceEqual(other)) return AxisVerdict.Of(SampleAxis.Along(d));
        var perIndex = Perturbation.Changed(resized, one).movedim([d], [0]).reshape(m, -1).any(1);
        perIndex[j] = tensor(false);
        return perIndex.any().item<bool>()
            ? new(default, Problem.SampleMixing,
                $"changed for other samples when only sample {j} changed (shape [{Shape(shape)}])")
            : AxisVerdict.Of(SampleAxis.Along(d));
    }

    // In training mode, a layer that hides dropout (TorchSharp's native Transformer layers keep theirs inside) gives
    // another output for the same input; without this check its randomness would read as sample mixing.
    private static void RefuseRandomness(nn.Module<Tensor, Tensor> model, Tensor small, Captures first,
        IReadOnlyList<NamedModule> layers, ModelAccess access)
    {
        using var second = Forward(model, small, layers, access);
        if (second.Calls.Count != first.Calls.Count) return;
        foreach (var (a, b) in first.Calls.Zip(second.Calls))
            if (Same(a.Arguments, b.Arguments) && !Same(a.Outputs, b.Outputs))
                throw new PerSampleGradientsException(Problem.RandomnessInTraining,
                    $"Module '{a.Layer.Display}' ({a.Layer.Module.GetType().Name}) gives another output for the same " +
                    "input in training mode: it draws random numbers (dropout inside it), so per-sample results " +
                    "would not be reproducible and no two methods could be compared. Call model.eval(), or create " +
                    "it with dropout 0.");
        if (!Same([first.Output], [second.Output]))
            throw new PerSampleGradientsException(Problem.RandomnessInTraining,
                "The model gives another output for the same batch in training mode: something in its forward draws " +
                "random numbers, so per-sample results would not be reproducible and no two methods could be " +
                "compared. Call model.eval(), or remove the randomness.");
    }

    private static bool Same(Tensor?[] a, Tensor?[] b) => a.Length == b.Length && a.Zip(b).All(p =>
        p.First is null ? p.Second is null
        : p.Second is not null && p.First.shape.SequenceEqual(p.Second.shape)
            && !Perturbation.Changed(p.First, p.Second).any().item<bool>());

    // Tensors of the slots the probe locates (others null), and every output slot.
    private sealed record LayerCapture(NamedModule Layer, IReadOnlyList<string> Slots, Tensor?[] Arguments,
        Tensor?[] Outputs);

    private sealed class Captures : IDisposable
    {
        public List<LayerCapture> Calls { get; } = [];
        public Tensor Output { get; set; } = null!;

        public void Dispose()
        {
            foreach (var call in Calls)
                foreach (var t in call.Arguments.Concat(call.Outputs))
                    t?.Dispose();
            Output?.Dispose();
        }
    }

    private static Captures Forward(nn.Module<Tensor, Tensor> model, Tensor x, IReadOnlyList<NamedModule> layers,
        ModelAccess access)
    {
        var captures = new Captures();
        var handles = new List<Action>();
        try
        {
            foreach (var named in layers)
            {
                var layer = named.Module;
                var signature = ModuleSignatures.Of(layer, named.Display);
                bool userHooks = access.UserHooks(layer).Post > 0;
                handles.Add(signature.HookAfter(layer, (arguments, outputs) =>
                {
                    if (userHooks) CheckUserHooks(named, signature, arguments, outputs);
                    var probed = signature.SampleSlots(arguments);
                    var kept = arguments.Select((a, i) => a is Tensor t && probed.Contains(i) ? Keep(t) : null)
                        .ToArray();
                    captures.Calls.Add(new LayerCapture(named, signature.Arguments, kept,
                        outputs.Select(o => o is null ? null : Keep(o)).ToArray()));
                    return null;
                }));
            }
            captures.Output = Keep(ModelAccess.Guard("the sample-separation probe", () => model.call(x)));
            return captures;
        }
        catch
        {
            captures.Dispose();
            throw;
        }
        finally
        {
            foreach (var remove in handles) remove();
        }
    }

    private static void CheckUserHooks(NamedModule named, ModuleSignature signature, object?[] arguments,
        Tensor?[] outputs)
    {
        using var scope = NewDisposeScope();
        var own = signature.Forward(named.Module, arguments);
        if (own.Zip(outputs).All(p => p.First is null || p.Second is null
            || p.First.shape.SequenceEqual(p.Second.shape) && !Perturbation.Changed(p.First, p.Second).any()
                .item<bool>())) return;
        throw new PerSampleGradientsException(Problem.UserHooks,
            $"A forward hook registered on '{named.Display}' ({named.Module.GetType().Name}) changes the layer's " +
            "output: the engines derive each sample's gradient from what the layer itself computes. Remove the hook " +
            "while computing per-sample gradients, or move what it does into a module of its own.");
    }

    // Captured tensors outlive the model's own dispose scopes and in-place operations that follow the layer.
    private static Tensor Keep(Tensor t) => t.detach().clone().DetachFromDisposeScope();

    private static string Fingerprint(nn.Module model, Tensor x, ModelAccess access)
    {
        var text = new System.Text.StringBuilder($"{Shape(x.shape)}|{x.dtype}|{x.device}");
        foreach (var named in ModelInspection.AllModules(model))
        {
            text.Append('|').Append(RuntimeHelpers.GetHashCode(named.Module)).Append(named.Module.training ? 't' : 'e')
                .Append(access.UserHooks(named.Module));
            foreach (var (_, p) in named.Module.named_parameters(recurse: false))
                text.Append(p.requires_grad ? 'g' : 'f');
        }
        return text.ToString();
    }

    private static string Shape(long[] shape) => string.Join(", ", shape);

    private static string Shape(Tensor t) => Shape(t.shape);
}
