using static TorchSharp.torch;

namespace PerSampleGrads.Engines;

/// <summary>
/// How the engines hook one module class whatever its <c>forward</c> signature: its arguments flattened into slots
/// (tensors, and the other values such as <c>need_weights</c>, as passed), its result flattened into tensor output
/// slots, which argument slots carry the samples, and how to register hooks, replace outputs and call
/// <c>forward</c> in those terms. Nested tuples flatten in order: LSTM's <c>(input, (h0, c0))</c> is the three slots
/// <c>input, h0, c0</c> and its <c>(output, (h_n, c_n))</c> result the three output slots <c>output, h_n, c_n</c>.
/// </summary>
/// <remarks>
/// Slot 0 of the arguments and of the outputs is the primary one: <c>LayerCall.Input</c> and
/// <c>LayerCall.OutputGradient</c> are those slots, so rules written for <c>Module&lt;Tensor, Tensor&gt;</c> keep
/// working. Where a module's samples are not along a dimension of slot 0 (EmbeddingBag with a 1-d input and offsets:
/// bags are samples), <see cref="SampleSlots"/> leaves slot 0 out and the probe locates the samples through the
/// primary output.
/// </remarks>
public abstract class ModuleSignature
{
    /// <summary>Creates a signature with its slot names.</summary>
    protected ModuleSignature(Type moduleType, IReadOnlyList<string> arguments, IReadOnlyList<string> outputs)
    {
        ModuleType = moduleType;
        Arguments = arguments;
        Outputs = outputs;
    }

    /// <summary>The module class (or generic base) this signature describes.</summary>
    public Type ModuleType { get; }

    /// <summary>Names of the argument slots, in order (<c>query, key, value, ...</c>).</summary>
    public IReadOnlyList<string> Arguments { get; }

    /// <summary>Names of the output slots, in order (<c>output, weights</c>).</summary>
    public IReadOnlyList<string> Outputs { get; }

    /// <summary>Whether this is the plain <c>Module&lt;Tensor, Tensor&gt;</c> signature.</summary>
    public bool IsTensorToTensor => Arguments.Count == 1 && Outputs.Count == 1;

    /// <summary>
    /// The argument slots that hold one value per sample along some dimension (or one shared by every sample) in
    /// this call: the sample-separation probe locates the samples in each. Default: every tensor slot. Slots left
    /// out are passed to rules as given (EmbeddingBag's 1-d ids and offsets).
    /// </summary>
    public virtual IReadOnlyList<int> SampleSlots(IReadOnlyList<object?> arguments) =>
        Enumerable.Range(0, arguments.Count).Where(i => arguments[i] is Tensor).ToList();

    /// <summary>Registers a forward pre-hook that may replace the arguments (return null to keep them); returns
    /// the action that removes it.</summary>
    public abstract Action HookBefore(nn.Module module, Func<object?[], object?[]?> hook);

    /// <summary>Registers a forward hook that sees the arguments and outputs and may replace the outputs (return
    /// null to keep them); returns the action that removes it.</summary>
    public abstract Action HookAfter(nn.Module module, Func<object?[], Tensor?[], Tensor?[]?> hook);

    /// <summary>Calls the module's <c>forward</c> (no hooks) with the flattened arguments; the flattened
    /// outputs.</summary>
    public abstract Tensor?[] Forward(nn.Module module, IReadOnlyList<object?> arguments);

    /// <summary>The argument in slot <paramref name="slot"/> as a tensor, or null.</summary>
    public static Tensor? TensorAt(IReadOnlyList<object?> arguments, int slot) =>
        slot < arguments.Count ? arguments[slot] as Tensor : null;
}

/// <summary>
/// A signature built from four conversions between the module's own argument and result types and slots; one
/// class per arity of TorchSharp's <c>Module&lt;T1, ..., TResult&gt;</c>.
/// </summary>
internal sealed class Signature1<T, TResult>(Type type, string[] arguments, string[] outputs,
    Func<T, object?[]> flatten, Func<object?[], T> unflatten, Func<TResult, Tensor?[]> results,
    Func<Tensor?[], TResult> rebuild, Func<IReadOnlyList<object?>, IReadOnlyList<int>>? sampleSlots = null)
    : ModuleSignature(type, arguments, outputs)
{
    public override IReadOnlyList<int> SampleSlots(IReadOnlyList<object?> args) =>
        sampleSlots?.Invoke(args) ?? base.SampleSlots(args);

    public override Action HookBefore(nn.Module module, Func<object?[], object?[]?> hook) =>
        ((nn.Module<T, TResult>)module).register_forward_pre_hook((_, a) =>
            hook(flatten(a)) is { } changed ? unflatten(changed) : a).remove;

    public override Action HookAfter(nn.Module module, Func<object?[], Tensor?[], Tensor?[]?> hook) =>
        ((nn.Module<T, TResult>)module).register_forward_hook((_, a, result) =>
            hook(flatten(a), results(result)) is { } changed ? rebuild(changed) : result).remove;

    public override Tensor?[] Forward(nn.Module module, IReadOnlyList<object?> args) =>
        results(((nn.Module<T, TResult>)module).forward(unflatten([.. args])));
}

/// <inheritdoc cref="Signature1{T, TResult}"/>
internal sealed class Signature2<T1, T2, TResult>(Type type, string[] arguments, string[] outputs,
    Func<T1, T2, object?[]> flatten, Func<object?[], (T1, T2)> unflatten, Func<TResult, Tensor?[]> results,
    Func<Tensor?[], TResult> rebuild, Func<IReadOnlyList<object?>, IReadOnlyList<int>>? sampleSlots = null)
    : ModuleSignature(type, arguments, outputs)
{
    public override IReadOnlyList<int> SampleSlots(IReadOnlyList<object?> args) =>
        sampleSlots?.Invoke(args) ?? base.SampleSlots(args);

    public override Action HookBefore(nn.Module module, Func<object?[], object?[]?> hook) =>
        ((nn.Module<T1, T2, TResult>)module).register_forward_pre_hook((_, a, b) =>
            hook(flatten(a, b)) is { } changed ? unflatten(changed) : null).remove;

    public override Action HookAfter(nn.Module module, Func<object?[], Tensor?[], Tensor?[]?> hook) =>
        ((nn.Module<T1, T2, TResult>)module).register_forward_hook((_, a, b, result) =>
            hook(flatten(a, b), results(result)) is { } changed ? rebuild(changed) : result).remove;

    public override Tensor?[] Forward(nn.Module module, IReadOnlyList<object?> args)
    {
        var (a, b) = unflatten([.. args]);
        return results(((nn.Module<T1, T2, TResult>)module).forward(a, b));
    }
}

/// <inheritdoc cref="Signature1{T, TResult}"/>
internal sealed class Signature3<T1, T2, T3, TResult>(Type type, string[] arguments, string[] outputs,
    Func<T1, T2, T3, object?[]> flatten, Func<object?[], (T1, T2, T3)> unflatten, Func<TResult, Tensor?[]> results,
    Func<Tensor?[], TResult> rebuild, Func<IReadOnlyList<object?>, IReadOnlyList<int>>? sampleSlots = null)
    : ModuleSignature(type, arguments, outputs)
{
    public override IReadOnlyList<int> SampleSlots(IReadOnlyList<object?> args) =>
        sampleSlots?.Invoke(args) ?? base.SampleSlots(args);

    public override Action HookBefore(nn.Module module, Func<object?[], object?[]?> hook) =>
        ((nn.Module<T1, T2, T3, TResult>)module).register_forward_pre_hook((_, a, b, c) =>
            hook(flatten(a, b, c)) is { } changed ? unflatten(changed) : null).remove;

    public override Action HookAfter(nn.Module module, Func<object?[], Tensor?[], Tensor?[]?> hook) =>
        ((nn.Module<T1, T2, T3, TResult>)module).register_forward_hook((_, a, b, c, result) =>
            hook(flatten(a, b, c), results(result)) is { } changed ? rebuild(changed) : result).remove;

    public override Tensor?[] Forward(nn.Module module, IReadOnlyList<object?> args)
    {
        var (a, b, c) = unflatten([.. args]);
        return results(((nn.Module<T1, T2, T3, TResult>)module).forward(a, b, c));
    }
}

/// <inheritdoc cref="Signature1{T, TResult}"/>
internal sealed class Signature6<T1, T2, T3, T4, T5, T6, TResult>(Type type, string[] arguments, string[] outputs,
    Func<Tensor?[], TResult> rebuild, Func<TResult, Tensor?[]> results,
    Func<IReadOnlyList<object?>, IReadOnlyList<int>>? sampleSlots = null)
    : ModuleSignature(type, arguments, outputs)
{
    public override IReadOnlyList<int> SampleSlots(IReadOnlyList<object?> args) =>
        sampleSlots?.Invoke(args) ?? base.SampleSlots(args);

    private static object?[] Flatten(T1 a, T2 b, T3 c, T4 d, T5 e, T6 f) => [a, b, c, d, e, f];

    public override Action HookBefore(nn.Module module, Func<object?[], object?[]?> hook) =>
        ((nn.Module<T1, T2, T3, T4, T5, T6, TResult>)module).register_forward_pre_hook((_, a, b, c, d, e, f) =>
            hook(Flatten(a, b, c, d, e, f)) is { } x
                ? ((T1)x[0]!, (T2)x[1]!, (T3)x[2]!, (T4)x[3]!, (T5)x[4]!, (T6)x[5]!) : null).remove;

    public override Action HookAfter(nn.Module module, Func<object?[], Tensor?[], Tensor?[]?> hook) =>
        ((nn.Module<T1, T2, T3, T4, T5, T6, TResult>)module).register_forward_hook((_, a, b, c, d, e, f, result) =>
            hook(Flatten(a, b, c, d, e, f), results(result)) is { } changed ? rebuild(changed) : result).remove;

    public override Tensor?[] Forward(nn.Module module, IReadOnlyList<object?> x) =>
        results(((nn.Module<T1, T2, T3, T4, T5, T6, TResult>)module)
            .forward((T1)x[0]!, (T2)x[1]!, (T3)x[2]!, (T4)x[3]!, (T5)x[4]!, (T6)x[5]!));
}
