using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PerSampleGrads.Engines;

/// <summary>
/// The engines' table of module signatures, module class to how to hook it (<see cref="ModuleSignature"/>), read top
/// to bottom. Every <c>Module&lt;Tensor, Tensor&gt;</c> has the default one-slot signature; any other module needs
/// an entry here, or the engines refuse it (<see cref="Problem.UnsupportedLayers"/>) whether or not a rule exists.
/// </summary>
/// <remarks>
/// Slots, samples and outputs per entry (N samples):
/// <list type="bullet">
/// <item><c>Module&lt;Tensor, Tensor&gt;</c>: <c>input -> output</c>.</item>
/// <item>EmbeddingBag: <c>input, offsets, per_sample_weights -> output [N, D]</c>. With 2-d ids <c>[N, bag]</c>
/// the samples are the rows of <c>input</c> (and of <c>per_sample_weights</c>); with 1-d ids and offsets each bag
/// is a sample and the probe finds them through the output (slots 0 to 2 are passed as given).</item>
/// <item>MultiheadAttention: <c>query, key, value, key_padding_mask, need_weights, attn_mask -> output,
/// weights</c>; sequence-first <c>[L, N, E]</c> (samples in dimension 1 of query, key, value), the key padding mask
/// <c>[N, S]</c>; the attention mask is shared when <c>[L, S]</c> and passed as given when <c>[N*heads, L, S]</c>; the
/// weights output <c>[N, L, S]</c> is null when <c>need_weights</c> is false.</item>
/// <item>TransformerDecoderLayer: <c>tgt, memory, tgt_mask, memory_mask, tgt_key_padding_mask,
/// memory_key_padding_mask -> output</c>, sequence-first; the two attention masks are passed as given.</item>
/// <item>LSTM: <c>input, h0, c0 -> output, h_n, c_n</c>; GRU and RNN: <c>input, h0 -> output, h_n</c>; states
/// <c>[layers*directions, N, H]</c>.</item>
/// <item>LSTMCell: <c>input, h0, c0 -> h1, c1</c>; GRUCell and RNNCell: <c>input, h0 -> h1</c>.</item>
/// </list>
/// </remarks>
public static class ModuleSignatures
{
    /// <summary>The signature of every <c>Module&lt;Tensor, Tensor&gt;</c>.</summary>
    public static ModuleSignature TensorToTensor { get; } = new Signature1<Tensor, Tensor>(
        typeof(nn.Module<Tensor, Tensor>), ["input"], ["output"],
        x => [x], a => (Tensor)a[0]!, y => [y], y => y[0]!);

    /// <summary>Signatures of the module classes that do not map one tensor to one tensor.</summary>
    public static IReadOnlyDictionary<Type, ModuleSignature> Default { get; } = new Dictionary<Type, ModuleSignature>
    {
        [typeof(EmbeddingBag)] = new Signature3<Tensor, Tensor?, Tensor?, Tensor>(typeof(EmbeddingBag),
            ["input", "offsets", "per_sample_weights"], ["output"],
            (x, o, w) => [x, o, w], a => ((Tensor)a[0]!, (Tensor?)a[1], (Tensor?)a[2]), y => [y], y => y[0]!,
            a => ((Tensor)a[0]!).dim() == 2 ? Enumerable.Range(0, 3).Where(i => a[i] is Tensor).ToList() : []),
        [typeof(MultiheadAttention)] = new Signature6<Tensor, Tensor, Tensor, Tensor?, bool, Tensor?,
            Tuple<Tensor, Tensor>>(typeof(MultiheadAttention),
            ["query", "key", "value", "key_padding_mask", "need_weights", "attn_mask"], ["output", "weights"],
            y => Tuple.Create(y[0]!, y[1]!), r => [r.Item1, Valid(r.Item2)],
            a => Enumerable.Range(0, 4).Where(i => a[i] is Tensor).Concat(TwoDimensional(a, 5)).ToList()),
        [typeof(TransformerDecoderLayer)] = new Signature6<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>(
            typeof(TransformerDecoderLayer), ["tgt", "memory", "tgt_mask", "memory_mask", "tgt_key_padding_mask",
            "memory_key_padding_mask"], ["output"], y => y[0]!, r => [r],
            a => new[] { 0, 1, 4, 5 }.Where(i => a[i] is Tensor).Concat(TwoDimensional(a, 2))
                .Concat(TwoDimensional(a, 3)).ToList()),
        [typeof(LSTM)] = new Signature2<Tensor, (Tensor, Tensor)?, (Tensor, Tensor, Tensor)>(typeof(LSTM),
            ["input", "h0", "c0"], ["output", "h_n", "c_n"],
            (x, s) => [x, s?.Item1, s?.Item2], a => ((Tensor)a[0]!, Pair(a[1], a[2])),
            r => [r.Item1, r.Item2, r.Item3], y => (y[0]!, y[1]!, y[2]!)),
        [typeof(GRU)] = RecurrentNetwork<GRU>(),
        [typeof(RNN)] = RecurrentNetwork<RNN>(),
        [typeof(LSTMCell)] = new Signature2<Tensor, (Tensor, Tensor)?, (Tensor, Tensor)>(typeof(LSTMCell),
            ["input", "h0", "c0"], ["h1", "c1"],
            (x, s) => [x, s?.Item1, s?.Item2], a => ((Tensor)a[0]!, Pair(a[1], a[2])),
            r => [r.Item1, r.Item2], y => (y[0]!, y[1]!)),
        [typeof(GRUCell)] = Cell<GRUCell>(),
        [typeof(RNNCell)] = Cell<RNNCell>(),
    };

    /// <summary>
    /// The signature of <paramref name="module"/> in <paramref name="table"/> (default: <see cref="Default"/>):
    /// its class's entry, else the default one for a <c>Module&lt;Tensor, Tensor&gt;</c>, else null (no engine can
    /// hook it).
    /// </summary>
    public static ModuleSignature? Find(nn.Module module, IReadOnlyDictionary<Type, ModuleSignature>? table = null)
    {
        if ((table ?? Default).TryGetValue(module.GetType(), out var signature)) return signature;
        return module is nn.Module<Tensor, Tensor> ? TensorToTensor : null;
    }

    /// <summary>The signature of <paramref name="module"/>; throws <see cref="Problem.UnsupportedLayers"/> when
    /// there is none.</summary>
    public static ModuleSignature Of(nn.Module module, string path) => Find(module)
        ?? throw new PerSampleGradientsException(Problem.UnsupportedLayers,
            $"Module '{path}' ({module.GetType().Name}) has a forward signature the engines cannot hook: only " +
            "Module<Tensor, Tensor> and the classes in ModuleSignatures.Default are hooked. Freeze its parameters, " +
            "or wrap it in a Module<Tensor, Tensor> with a rule.");

    // RNN declares Module<Tensor, Tensor?, ...> and GRU Module<Tensor, Tensor, ...>: one type at run time.
    private static ModuleSignature RecurrentNetwork<TModule>() where TModule : nn.Module =>
        new Signature2<Tensor, Tensor, (Tensor, Tensor)>(typeof(TModule), ["input", "h0"], ["output", "h_n"],
            (x, h) => [x, h], a => ((Tensor)a[0]!, (Tensor)a[1]!), r => [r.Item1, r.Item2], y => (y[0]!, y[1]!));

    private static ModuleSignature Cell<TModule>() where TModule : nn.Module =>
        new Signature2<Tensor, Tensor, Tensor>(typeof(TModule), ["input", "h0"], ["h1"],
            (x, h) => [x, h], a => ((Tensor)a[0]!, (Tensor)a[1]!), r => [r], y => y[0]!);

    // A 2-d attention mask [L, S] is one for every sample: the probe finds it shared. A 3-d one, [N*heads, L, S],
    // holds no sample in one dimension: it is passed as given.
    private static IEnumerable<int> TwoDimensional(IReadOnlyList<object?> arguments, int slot) =>
        arguments[slot] is Tensor { Dimensions: 2 } ? [slot] : [];

    private static (Tensor, Tensor)? Pair(object? h, object? c) =>
        h is Tensor hidden && c is Tensor cell ? (hidden, cell) : null;

    // MultiheadAttention returns an empty handle for the weights when need_weights is false.
    private static Tensor? Valid(Tensor? t) => t is null || t.IsInvalid ? null : t;
}
