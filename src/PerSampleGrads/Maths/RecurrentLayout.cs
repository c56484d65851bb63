using System.Reflection;
using System.Runtime.CompilerServices;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PerSampleGrads.Maths;

/// <summary>Which recurrence a recurrent layer computes (gate order as PyTorch defines it).</summary>
public enum RecurrentKind
{
    /// <summary>LSTM: four gates i, f, g, o; state (h, c).</summary>
    Lstm,
    /// <summary>GRU: three gates r, z, n; state h.</summary>
    Gru,
    /// <summary>Elman RNN with tanh: <c>h' = tanh(W_ih x + b_ih + W_hh h + b_hh)</c>.</summary>
    RnnTanh,
    /// <summary>Elman RNN with ReLU: <c>h' = relu(W_ih x + b_ih + W_hh h + b_hh)</c>.</summary>
    RnnRelu,
}

/// <summary>
/// The configuration of a TorchSharp recurrent layer (<c>LSTM</c>, <c>GRU</c>, <c>RNN</c> or one of their cells),
/// which TorchSharp 0.107 keeps in libtorch: sizes, layers and directions come from the parameters' names and shapes,
/// <c>batch_first</c> from the wrapper's private field, RNN's nonlinearity from a probe (see <see
/// cref="RecurrentInspection"/>).
/// </summary>
/// <param name="Kind">The recurrence.</param>
/// <param name="IsCell">A cell (one step, input <c>[N, I]</c>) rather than a sequence layer.</param>
/// <param name="InputSize">I, features of the layer's input.</param>
/// <param name="HiddenSize">H, features of the hidden state.</param>
/// <param name="Layers">Stacked layers (1 for a cell).</param>
/// <param name="Bidirectional">Whether each layer also runs backwards in time.</param>
/// <param name="BatchFirst">Input and output are <c>[N, T, F]</c> rather than <c>[T, N, F]</c> (h0 and h_n are
/// <c>[L*D, N, H]</c> either way).</param>
/// <param name="HasBias">Whether the layer has <c>b_ih</c> and <c>b_hh</c>.</param>
public sealed record RecurrentLayout(RecurrentKind Kind, bool IsCell, long InputSize, long HiddenSize, long Layers,
    bool Bidirectional, bool BatchFirst, bool HasBias)
{
    /// <summary>Gates G stacked in the weights' first dimension (<c>[G*H, ...]</c>): 4, 3 or 1.</summary>
    public long Gates => Kind switch { RecurrentKind.Lstm => 4, RecurrentKind.Gru => 3, _ => 1 };

    /// <summary>Directions D: 2 when bidirectional.</summary>
    public int Directions => Bidirectional ? 2 : 1;

    /// <summary>Whether the state carries a cell tensor c besides h (LSTM).</summary>
    public bool HasCellState => Kind == RecurrentKind.Lstm;

    /// <summary>
    /// The local parameter name of <paramref name="role"/> (<c>weight_ih</c>, <c>weight_hh</c>, <c>bias_ih</c>,
    /// <c>bias_hh</c>) for layer <paramref name="layer"/> and direction <paramref name="direction"/> (1 = reverse):
    /// <c>weight_ih_l1_reverse</c>; a cell's names carry no suffix.
    /// </summary>
    public string Name(string role, int layer, int direction) =>
        IsCell ? role : $"{role}_l{layer}{(direction == 1 ? "_reverse" : "")}";

    /// <summary>Features of layer <paramref name="layer"/>'s input: I for the first, D*H above it.</summary>
    public long LayerInputSize(int layer) => layer == 0 ? InputSize : Directions * HiddenSize;
}

/// <summary>
/// Reads a recurrent layer's <see cref="RecurrentLayout"/> and checks it by a probe: a forward of the native layer on
/// a few seeded sequences must equal the managed recurrence (<see cref="RecurrentUnroll"/>) with the layer's own
/// weights within the float tolerance of its element type. The probe tells RNN's tanh from ReLU (TorchSharp does not
/// expose it) and finds dropout between layers in training mode (which scales every kept element by <c>1/(1-p)</c>,
/// so one forward shows any p &gt; 0). The layout is cached per module instance; the dropout check runs on every call
/// in training mode, since the mode can change. The caller's global random state is left as it was.
/// </summary>
public static class RecurrentInspection
{
    private static readonly ConditionalWeakTable<nn.Module, RecurrentLayout> Cache = new();

    /// <summary>Whether <paramref name="module"/> is one of TorchSharp's recurrent layers or cells.</summary>
    public static bool IsRecurrent(nn.Module module) =>
        module is LSTM or GRU or RNN or LSTMCell or GRUCell or RNNCell;

    /// <summary>
    /// The layout of <paramref name="module"/>, checked against the native forward; throws a <see
    /// cref="PerSampleGradientsException"/> for what no rule supports (dropout between layers in training mode, an
    /// RNN whose nonlinearity cannot be told because its weights are all zero).
    /// </summary>
    public static RecurrentLayout Inspect(nn.Module module, string path)
    {
        if (!Cache.TryGetValue(module, out var layout))
        {
            layout = Probe(module, path);
            Cache.AddOrUpdate(module, layout);
        }
        else if (module.training && layout.Layers > 1 && !Reproduces(module, layout))
            throw DropoutInTraining(path);
        return layout;
    }

    private static RecurrentLayout Probe(nn.Module module, string path)
    {
        var read = Read(module, path);
        if (Reproduces(module, read)) return read;
        if (read.Kind == RecurrentKind.RnnTanh && Reproduces(module, read with { Kind = RecurrentKind.RnnRelu }))
            return read with { Kind = RecurrentKind.RnnRelu };
        if (module.training && read.Layers > 1) throw DropoutInTraining(path);
        throw new PerSampleGradientsException(Problem.UnsupportedLayers,
            $"Recurrent layer '{path}' ({module.GetType().Name}) computes something other than the recurrence read " +
                $"from its parameters ({read}); no rule supports it. Report this with the layer's constructor call.");
    }

    private static PerSampleGradientsException DropoutInTraining(string path) =>
        new(Problem.RandomnessInTraining,
            $"Recurrent layer '{path}' applies dropout between its layers in training mode: each forward draws a new " +
                $"mask, so a per-sample gradient of one forward is not defined. Call model.eval(), or create the " +
                $"layer with dropout 0.");

    /// <summary>The layout from the parameters' names and shapes (RNN's nonlinearity assumed tanh).</summary>
    private static RecurrentLayout Read(nn.Module module, string path)
    {
        var parameters = module.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        (RecurrentKind kind, bool cell) = module switch
        {
            LSTM => (RecurrentKind.Lstm, false),
            GRU => (RecurrentKind.Gru, false),
            RNN => (RecurrentKind.RnnTanh, false),
            LSTMCell => (RecurrentKind.Lstm, true),
            GRUCell => (RecurrentKind.Gru, true),
            RNNCell => (RecurrentKind.RnnTanh, true),
            _ => throw new ArgumentException($"'{path}' is not a recurrent layer.", nameof(module)),
        };
        string first = cell ? "weight_hh" : "weight_hh_l0";
        var weightHh = parameters[first];
        long hidden = weightHh.shape[1];
        long input = parameters[cell ? "weight_ih" : "weight_ih_l0"].shape[1];
        long layers = cell ? 1 : parameters.Keys.Count(k => k.StartsWith("weight_ih_l", StringComparison.Ordinal)
            && !k.EndsWith("_reverse", StringComparison.Ordinal));
        bool bidirectional = !cell && parameters.ContainsKey("weight_ih_l0_reverse");
        bool bias = parameters.ContainsKey(cell ? "bias_ih" : "bias_ih_l0");
        bool batchFirst = !cell && BatchFirst(module, path);
        return new RecurrentLayout(kind, cell, input, hidden, layers, bidirectional, batchFirst, bias);
    }

    // TorchSharp 0.107 keeps batch_first in a private field of the wrapper and passes it to libtorch only at
    // construction.
    private static bool BatchFirst(nn.Module module, string path)
    {
        var field = module.GetType().GetField("_batch_first", BindingFlags.NonPublic | BindingFlags.Instance);
        return field?.GetValue(module) is bool value
            ? value
            : throw new PerSampleGradientsException(Problem.UnsupportedLayers,
                $"Recurrent layer '{path}': this TorchSharp version does not keep batch_first where 0.107 does; the " +
                    $"recurrent rules cannot read their layout.");
    }

    // Whether the native forward on a few seeded sequences equals the managed recurrence with this layout. With
    // autograd on: libtorch 2.10's float32 LSTM forward without autograd (its inference path on the CPU) differs from
    // the same forward with autograd by up to 0.3, while the latter agrees with float64 to 5e-8.
    private static bool Reproduces(nn.Module module, RecurrentLayout layout)
    {
        using var scope = NewDisposeScope();
        using var _ = enable_grad();
        using var savedRandomState = random.get_rng_state();
        try
        {
            var weight = module.parameters().First();
            const long batch = 3, steps = 4;
            using var generator = new Generator(20261201, CPU);
            long[] shape = layout.IsCell ? [batch, layout.InputSize]
                : layout.BatchFirst ? [batch, steps, layout.InputSize] : [steps, batch, layout.InputSize];
            var x = randn(shape, generator: generator).to(weight.dtype, weight.device);
            var hidden = randn(layout.IsCell ? [batch, layout.HiddenSize]
                : [layout.Layers * layout.Directions, batch, layout.HiddenSize], generator: generator)
                .to(weight.dtype, weight.device);
            var cell = randn(hidden.shape, generator: generator).to(weight.dtype, weight.device);
            // forward(), not call(): the probe must not fire the engines' hooks.
            Tensor[] native = module switch
            {
                LSTM lstm => Flatten(lstm.forward(x, (hidden, cell))),
                GRU gru => Flatten(gru.forward(x, hidden)),
                RNN rnn => Flatten(rnn.forward(x, hidden)),
                LSTMCell lstmCell => Flatten(lstmCell.forward(x, (hidden, cell))),
                GRUCell gruCell => [gruCell.forward(x, hidden)],
                RNNCell rnnCell => [rnnCell.forward(x, hidden)],
                _ => throw new ArgumentException("Not a recurrent layer.", nameof(module)),
            };
            var weights = new SharedRecurrentWeights(layout, module);
            var managed = RecurrentUnroll.Run(layout, x, hidden, layout.HasCellState ? cell : null, weights);
            Tensor[] expected = layout.IsCell
                ? [managed.FinalHidden, .. layout.HasCellState ? new[] { managed.FinalCell! } : []]
                : [managed.Output, managed.FinalHidden, .. layout.HasCellState ? new[] { managed.FinalCell! } : []];
            var tolerance = Checking.TolerancePolicy.ToleranceFor(weight.dtype).Relative;
            return native.Zip(expected).All(pair => Close(pair.First, pair.Second, tolerance));
        }
        finally
        {
            random.set_rng_state(savedRandomState);
        }
    }

    private static Tensor[] Flatten((Tensor, Tensor, Tensor) t) => [t.Item1, t.Item2, t.Item3];

    private static Tensor[] Flatten((Tensor, Tensor) t) => [t.Item1, t.Item2];

    private static bool Close(Tensor actual, Tensor expected, double tolerance)
    {
        if (!actual.shape.SequenceEqual(expected.shape)) return false;
        double scale = Math.Max(expected.abs().max().to(ScalarType.Float64).item<double>(), 1.0);
        double error = (actual - expected).abs().max().to(ScalarType.Float64).item<double>();
        return error <= tolerance * scale;
    }
}
