using System.Runtime.CompilerServices;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PerSampleGrads.Maths;

/// <summary>Where one layer of a <see cref="GateInputRecurrence"/> starts.</summary>
/// <param name="Layer">The layer.</param>
/// <param name="Input">The layer's input x, <c>[T, N, in]</c> (above layer 0, the layer below's output, still in
/// the graph).</param>
/// <param name="Hidden">h0 of this layer's directions, <c>[D, N, H]</c>.</param>
/// <param name="Cell">c0 (LSTM), shaped as <paramref name="Hidden"/>; null otherwise.</param>
public sealed record RecurrentLayerStart(int Layer, Tensor Input, Tensor Hidden, Tensor? Cell);

/// <summary>A run of a <see cref="GateInputRecurrence"/>.</summary>
/// <param name="Result">The layer's outputs, in the layer's own layout.</param>
/// <param name="LayerOutputs">Every layer's output sequence, <c>[T, N, D*H]</c>, directions concatenated.</param>
public sealed record GateInputRun(RecurrentResult Result, IReadOnlyList<Tensor> LayerOutputs);

/// <summary>
/// A recurrent layer rebuilt from libtorch's own one-layer modules, one per layer, whose input is wider by one gate
/// block per direction: layer l reads <c>[x, e]</c> with <c>W'_ih = [W_ih | P_d]</c>, where <c>P_d</c> passes the
/// d-th block of e (<c>G*H</c> features) unchanged into direction d's gate pre-activations and the other blocks not
/// at all. So each direction computes the layer's recurrence with <c>gi[t] = W_ih x[t] + b_ih + e_d[t]</c>: with
/// <c>e = 0</c> the outputs are the layer's, and the gradient at e is the gradient at every step's gate
/// pre-activations, <c>dz[t, n]</c>, for every sample at once. A zero-valued e built from other tensors routes dz to
/// them. Why: libtorch runs a layer's recurrence and its backward in one call, where a managed unroll costs a dozen
/// operations per step. A cell is a one-layer, one-direction layer run for one step.
/// </summary>
public sealed class GateInputRecurrence
{
    // One recurrence per layer module, element type and device, kept while the module lives: building libtorch's
    // modules costs more than the layer's forward on small batches.
    private static readonly ConditionalWeakTable<nn.Module,
        Dictionary<(ScalarType, DeviceType, int), GateInputRecurrence>> Kept = new();

    private readonly RecurrentLayout _layout;
    private readonly nn.Module[] _layers;
    // Where each of the layer's weights lives in the libtorch modules: the whole parameter, or W_ih's own columns.
    private readonly List<(Tensor Target, string Source)> _targets = [];

    private GateInputRecurrence(RecurrentLayout layout, IReadOnlyDictionary<string, Tensor> weights)
    {
        _layout = layout;
        _layers = new nn.Module[layout.Layers];
        for (int layer = 0; layer < layout.Layers; layer++) _layers[layer] = Build(layer, weights);
        Load(weights);
    }

    /// <summary>
    /// The recurrence of <paramref name="layer"/> (laid out as <paramref name="layout"/>) with
    /// <paramref name="weights"/>, the layer's weights and biases by local name (<c>weight_ih_l0</c>, ...), in their
    /// element type and on their device. Built once per layer, element type and device and kept while the layer
    /// lives; each call copies in the weights that changed since the last one (so a layer called twice in one
    /// forward leaves the first call's graph intact).
    /// </summary>
    public static GateInputRecurrence Of(nn.Module layer, RecurrentLayout layout,
        IReadOnlyDictionary<string, Tensor> weights)
    {
        var reference = weights[layout.Name("weight_ih", 0, 0)];
        var key = (reference.dtype, reference.device_type, reference.device_index);
        var kept = Kept.GetOrCreateValue(layer);
        lock (kept)
        {
            if (kept.TryGetValue(key, out var recurrence) && recurrence._layout == layout)
            {
                recurrence.Load(weights);
                return recurrence;
            }
            recurrence?.Release();
            return kept[key] = new GateInputRecurrence(layout, weights);
        }
    }

    /// <summary>The gate features of one direction, <c>G*H</c>.</summary>
    public long GateWidth => _layout.Gates * _layout.HiddenSize;

    /// <summary>A zero e for the layer that starts at <paramref name="start"/>, <c>[T, N, D*G*H]</c>, in its
    /// input's element type and on its device.</summary>
    public Tensor ZeroGateInput(RecurrentLayerStart start) =>
        zeros([start.Input.shape[0], start.Input.shape[1], _layout.Directions * GateWidth], start.Input.dtype,
            start.Input.device);

    /// <summary>
    /// Runs the layer on <paramref name="input"/> in its own layout (<c>[T, N, I]</c>, <c>[N, T, I]</c>
    /// batch-first, or <c>[N, I]</c> for a cell) from <paramref name="hidden"/> and <paramref name="cell"/> (null:
    /// zeros), with each layer's e, <c>[T, N, D*G*H]</c>, from <paramref name="gateInput"/>.
    /// </summary>
    public GateInputRun Run(Tensor input, Tensor? hidden, Tensor? cell, Func<RecurrentLayerStart, Tensor> gateInput)
    {
        var x = _layout.IsCell ? input.unsqueeze(0) : _layout.BatchFirst ? input.transpose(0, 1) : input;
        long[] stateShape = [_layout.Layers * _layout.Directions, x.shape[1], _layout.HiddenSize];
        Tensor State(Tensor? given) =>
            given is null ? zeros(stateShape, x.dtype, x.device) : _layout.IsCell ? given.unsqueeze(0) : given;
        var h0 = State(hidden);
        var c0 = _layout.HasCellState ? State(cell) : null;
        var outputs = new List<Tensor>();
        var finalHidden = new List<Tensor>();
        var finalCell = new List<Tensor>();
        for (int layer = 0; layer < _layout.Layers; layer++)
        {
            var start = new RecurrentLayerStart(layer, x, h0.narrow(0, layer * _layout.Directions, _layout.Directions),
                c0?.narrow(0, layer * _layout.Directions, _layout.Directions));
            var result = Layer(start, gateInput(start));
            x = result.Output;
            outputs.Add(x);
            finalHidden.Add(result.FinalHidden);
            if (result.FinalCell is { } c) finalCell.Add(c);
        }
        var hn = cat(finalHidden, 0);
        var cn = finalCell.Count > 0 ? cat(finalCell, 0) : null;
        var layerResult = _layout.IsCell
            ? new RecurrentResult(hn[0], hn[0], cn?[0])
            : new RecurrentResult(_layout.BatchFirst ? x.transpose(0, 1) : x, hn, cn);
        return new GateInputRun(layerResult, outputs);
    }

    /// <summary>
    /// One layer from <paramref name="start"/> with e <paramref name="gateInput"/>: output <c>[T, N, D*H]</c>, h_n
    /// and c_n <c>[D, N, H]</c>.
    /// </summary>
    public RecurrentResult Layer(RecurrentLayerStart start, Tensor gateInput)
    {
        // Grad mode, always: libtorch 2.10's float32 CPU recurrence without it (its inference path) is off by up to
        // 0.3 for some sizes (see RecurrentInspection).
        using var gradMode = enable_grad();
        var input = cat([start.Input, gateInput], 2);
        switch (_layers[start.Layer])
        {
            case LSTM lstm:
                {
                    var (output, h, c) = lstm.forward(input, (start.Hidden, start.Cell!));
                    return new RecurrentResult(output, h, c);
                }
            case GRU gru:
                {
                    var (output, h) = gru.forward(input, start.Hidden);
                    return new RecurrentResult(output, h, null);
                }
            default:
                {
                    var (output, h) = ((RNN)_layers[start.Layer]).forward(input, start.Hidden);
                    return new RecurrentResult(output, h, null);
                }
        }
    }

    /// <summary>
    /// The state before each step of direction <paramref name="direction"/>, indexed by time position t, <c>[T, N,
    /// H]</c>: h0 then the outputs of steps 0 to T-2 forward, the outputs of steps 1 to T-1 then h0 in reverse;
    /// from a layer's <paramref name="output"/> <c>[T, N, D*H]</c> and its <paramref name="hidden"/> h0 <c>[D, N,
    /// H]</c>.
    /// </summary>
    public Tensor States(int direction, Tensor output, Tensor hidden) => States(_layout, direction, output, hidden);

    /// <summary>
    /// The state before each step, as <see cref="States(int, Tensor, Tensor)"/>, for a layer of
    /// <paramref name="layout"/>.
    /// </summary>
    public static Tensor States(RecurrentLayout layout, int direction, Tensor output, Tensor hidden)
    {
        long length = output.shape[0], h = layout.HiddenSize;
        var first = hidden[direction].unsqueeze(0);
        if (length == 1) return first;
        var own = output.narrow(2, direction * h, h);
        return direction == 0 ? cat([first, own.narrow(0, 0, length - 1)], 0) : cat([own.narrow(0, 1, length - 1),
            first], 0);
    }

    /// <summary>
    /// GRU's reset gate at every step, <c>r[t] = s(W_ir x[t] + b_ir + W_hr h[t-1] + b_hr)</c> <c>[T, N, H]</c>, from
    /// the layer's input <paramref name="x"/> <c>[T, N, in]</c>, the <paramref name="states"/> before each step
    /// <c>[T, N, H]</c> and the weights of one layer and direction (biases null when the layer has none). Its
    /// candidate gate is <c>tanh(gi_n + r * gh_n)</c>, so the gradient at <c>gh_n</c> is r times the one at
    /// <c>gi_n</c>.
    /// </summary>
    public static Tensor ResetGate(Tensor x, Tensor states, Tensor weightIh, Tensor? biasIh, Tensor weightHh,
        Tensor? biasHh)
    {
        long h = weightHh.shape[1];
        return (nn.functional.linear(x, weightIh.narrow(0, 0, h), biasIh?.narrow(0, 0, h))
            + nn.functional.linear(states, weightHh.narrow(0, 0, h), biasHh?.narrow(0, 0, h))).sigmoid();
    }

    private void Release()
    {
        foreach (var target in _targets) target.Target.Dispose();
        foreach (var layer in _layers) layer.Dispose();
    }

    // Copies each weight that differs from its place in the modules.
    private void Load(IReadOnlyDictionary<string, Tensor> weights)
    {
        using var _ = no_grad();
        foreach (var (target, source) in _targets)
        {
            var own = weights[source];
            if (!target.allclose(own, rtol: 0, atol: 0)) target.copy_(own);
        }
    }

    // One libtorch layer with every direction of `layer`, its input widened by D*G*H features and the identity block
    // in place; its weights' places are added to _targets. Its tensors outlive the caller's dispose scope.
    private nn.Module Build(int layer, IReadOnlyDictionary<string, Tensor> weights)
    {
        var reference = weights[_layout.Name("weight_ih", layer, 0)];
        long input = _layout.LayerInputSize(layer), width = input + _layout.Directions * GateWidth;
        long hidden = _layout.HiddenSize;
        bool bias = _layout.HasBias, both = _layout.Bidirectional;
        nn.Module module = _layout.Kind switch
        {
            RecurrentKind.Lstm => nn.LSTM(width, hidden, 1, bias, false, 0, both, reference.device, reference.dtype),
            RecurrentKind.Gru => nn.GRU(width, hidden, 1, bias, false, 0, both, reference.device, reference.dtype),
            RecurrentKind.RnnTanh => nn.RNN(width, hidden, 1, nn.NonLinearities.Tanh, bias, false, 0, both,
                reference.device, reference.dtype),
            _ => nn.RNN(width, hidden, 1, nn.NonLinearities.ReLU, bias, false, 0, both, reference.device,
                reference.dtype),
        };
        using var _ = no_grad();
        foreach (var (name, parameter) in module.named_parameters())
        {
            parameter.DetachFromDisposeScope();
            parameter.requires_grad_(false);
            int direction = name.EndsWith("_reverse", StringComparison.Ordinal) ? 1 : 0;
            string role = name[..name.IndexOf("_l0", StringComparison.Ordinal)];
            string source = _layout.Name(role, layer, direction);
            if (role != "weight_ih")
            {
                _targets.Add((parameter.alias().DetachFromDisposeScope(), source));
                continue;
            }
            parameter.zero_();
            _targets.Add((parameter.narrow(1, 0, input).DetachFromDisposeScope(), source));
            parameter.narrow(1, input + direction * GateWidth, GateWidth)
                .copy_(eye(GateWidth, dtype: reference.dtype, device: reference.device));
        }
        return module;
    }
}
