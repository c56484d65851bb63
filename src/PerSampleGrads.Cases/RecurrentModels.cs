using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace PerSampleGrads.Cases;

/// <summary>Which recurrent layer a <see cref="RecurrentClassifier"/> holds.</summary>
public enum RecurrentCellKind
{
    /// <summary><c>LSTM</c> (or <c>LSTMCell</c>).</summary>
    Lstm,
    /// <summary><c>GRU</c> (or <c>GRUCell</c>).</summary>
    Gru,
    /// <summary><c>RNN</c> with tanh (or <c>RNNCell</c>).</summary>
    RnnTanh,
    /// <summary><c>RNN</c> with ReLU (or <c>RNNCell</c>).</summary>
    RnnRelu,
}

/// <summary>
/// A recurrent layer's options for a catalogue case.
/// </summary>
/// <param name="Kind">The recurrence.</param>
/// <param name="Cell">The <c>*Cell</c> version, unrolled by the model over the steps (one layer, one
/// direction).</param>
/// <param name="Layers">Stacked layers.</param>
/// <param name="Bidirectional">Both directions.</param>
/// <param name="BatchFirst">The layer takes <c>[N, T, F]</c>; otherwise the model hands it <c>[T, N, F]</c>.</param>
/// <param name="Bias">Whether the layer has biases.</param>
/// <param name="InitialState">h0 (and c0) computed from the first step's features instead of zeros.</param>
/// <param name="ReadFinalState">The head reads h_n (and c_n) besides the last step's output.</param>
/// <param name="Twice">The layer (not a cell) runs a second time, from zeros, on the sequence reversed in time; its
/// last step's output is added to the first run's.</param>
public sealed record RecurrentOptions(RecurrentCellKind Kind, bool Cell = false, long Layers = 1,
    bool Bidirectional = false, bool BatchFirst = false, bool Bias = true, bool InitialState = false,
    bool ReadFinalState = false, bool Twice = false);

/// <summary>
/// A sequence classifier around one recurrent layer, inputs <c>[N, T, F]</c>: <c>embed</c> = Linear(F→I) per step,
/// then <c>recurrent</c> (the layer of <see cref="RecurrentOptions"/>; sequence-first unless batch-first; a cell is
/// called once per step), optionally from <c>h0 = tanh(initial(x[:, 0]))</c> (and <c>c0</c> from the same map's
/// second half), then <c>head</c> = Linear on the last step's output (concatenated with every final state when
/// <see cref="RecurrentOptions.ReadFinalState"/>). Parameter names match
/// <c>tools/pytorch_reference/sequence_cases.py</c>.
/// </summary>
public sealed class RecurrentClassifier : Module<Tensor, Tensor>
{
    private readonly RecurrentOptions _options;
    private readonly long _hidden;
    private readonly Linear _embed;
    private readonly nn.Module _recurrent;
    private readonly Linear? _initial;
    private readonly Linear _head;

    /// <summary>Builds the model for F = <paramref name="features"/>, I = <paramref name="inputSize"/>, H =
    /// <paramref name="hidden"/>, with the global generator's initial values.</summary>
    public RecurrentClassifier(RecurrentOptions options, long features, long inputSize, long hidden, long classes)
        : base(nameof(RecurrentClassifier))
    {
        _options = options;
        _hidden = hidden;
        _embed = Linear(features, inputSize);
        _recurrent = Create(options, inputSize, hidden);
        long directions = options.Bidirectional ? 2 : 1;
        long states = States * (options.Cell ? 1 : options.Layers * directions);
        if (options.InitialState) _initial = Linear(features, states * hidden);
        long read = directions * hidden + (options.ReadFinalState ? states * hidden : 0);
        _head = Linear(read, classes);
        register_module("embed", _embed);
        register_module("recurrent", _recurrent);
        if (_initial is not null) register_module("initial", _initial);
        register_module("head", _head);
    }

    // h, or h and c.
    private long States => _options.Kind == RecurrentCellKind.Lstm ? 2 : 1;

    private static nn.Module Create(RecurrentOptions o, long input, long hidden)
    {
        var nonlinearity = o.Kind == RecurrentCellKind.RnnRelu ? NonLinearities.ReLU : NonLinearities.Tanh;
        return (o.Kind, o.Cell) switch
        {
            (RecurrentCellKind.Lstm, false) => LSTM(input, hidden, o.Layers, o.Bias, o.BatchFirst,
                bidirectional: o.Bidirectional),
            (RecurrentCellKind.Gru, false) => GRU(input, hidden, o.Layers, o.Bias, o.BatchFirst,
                bidirectional: o.Bidirectional),
            (_, false) => RNN(input, hidden, o.Layers, nonlinearity, o.Bias, o.BatchFirst,
                bidirectional: o.Bidirectional),
            (RecurrentCellKind.Lstm, true) => LSTMCell(input, hidden, o.Bias),
            (RecurrentCellKind.Gru, true) => GRUCell(input, hidden, o.Bias),
            _ => RNNCell(input, hidden, nonlinearity, o.Bias),
        };
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var x = _embed.call(input);
        long n = input.shape[0];
        // [N, S*H] -> S states of [L*D, N, H] (or [N, H] for a cell).
        Tensor[]? initial = _initial?.call(input.select(1, 0)).tanh().chunk(States, 1)
            .Select(s => _options.Cell ? s : s.reshape(n, -1, _hidden).transpose(0, 1)).ToArray();
        Tensor last;
        var finals = new List<Tensor>();
        if (_options.Cell)
        {
            (last, var c) = Unroll(x, initial);
            finals.Add(last);
            if (c is not null) finals.Add(c);
        }
        else
        {
            var sequence = _options.BatchFirst ? x : x.transpose(0, 1);
            (var output, finals) = Run(sequence, initial);
            last = _options.BatchFirst ? output.select(1, -1) : output[-1];
            if (_options.Twice)
            {
                var (again, _) = Run(sequence.flip(_options.BatchFirst ? 1 : 0), null);
                last = last + (_options.BatchFirst ? again.select(1, -1) : again[-1]);
            }
        }
        var features = new List<Tensor> { last };
        if (_options.ReadFinalState)
            features.AddRange(finals.Select(f => _options.Cell ? f : f.transpose(0, 1).reshape(n, -1)));
        return scope.MoveToOuter(_head.call(features.Count == 1 ? last : cat(features, 1)));
    }

    // The layer over a sequence in its own layout: the output and the final states (h, or h and c).
    private (Tensor Output, List<Tensor> Finals) Run(Tensor sequence, Tensor[]? initial)
    {
        switch (_recurrent)
        {
            case LSTM lstm:
                {
                    var (o, h, c) = lstm.call(sequence, initial is null ? null : (initial[0], initial[1]));
                    return (o, [h, c]);
                }
            case GRU gru:
                {
                    var (o, h) = gru.call(sequence, initial?[0]);
                    return (o, [h]);
                }
            default:
                {
                    var (o, h) = ((RNN)_recurrent).call(sequence, initial?[0]);
                    return (o, [h]);
                }
        }
    }

    // The cell over the steps of x [N, T, I]: the last h (and c).
    private (Tensor H, Tensor? C) Unroll(Tensor x, Tensor[]? initial)
    {
        // A null state (no h0, first step) makes the cell start from zeros; TorchSharp's call() passes it through.
        Tensor? h = initial?[0], c = initial is { Length: 2 } ? initial[1] : null;
        for (long t = 0; t < x.shape[1]; t++)
        {
            var step = x.select(1, t);
            switch (_recurrent)
            {
                case LSTMCell lstm:
                    // TorchSharp 0.107's LSTMCell without a state fails ("hidden0 batch size 0"): zeros are passed.
                    h ??= zeros(step.shape[0], _hidden, step.dtype, step.device);
                    c ??= zeros_like(h);
                    (h, c) = lstm.call(step, (h, c));
                    break;
                case GRUCell gru:
                    h = gru.call(step, h!);
                    break;
                default:
                    h = ((RNNCell)_recurrent).call(step, h!);
                    break;
            }
        }
        return (h!, c);
    }
}
