using static TorchSharp.torch;

namespace PerSampleGrads.Maths;

/// <summary>
/// The two affine maps of one layer and direction of a recurrent layer, however its weights are held (shared, or one
/// copy per sample). Index letters: t step, n sample, g gate row (G gates times H hidden features), i input feature,
/// h hidden feature.
/// </summary>
public interface IRecurrentWeights
{
    /// <summary>
    /// <c>gi[t, n, g] = sum_i W_ih[g, i] x[t, n, i] + b_ih[g]</c> for every step at once: <paramref name="x"/>
    /// <c>[T, N, I]</c> to <c>[T, N, G*H]</c>.
    /// </summary>
    Tensor InputProjection(int layer, int direction, Tensor x);

    /// <summary>
    /// <c>gh[n, g] = sum_h W_hh[g, h] h[n, h] + b_hh[g]</c> at time position <paramref name="step"/>, from the state
    /// <paramref name="hidden"/> <c>[N, H]</c> before that step: <c>[N, G*H]</c>.
    /// </summary>
    Tensor HiddenProjection(int layer, int direction, long step, Tensor hidden);
}

/// <summary>A recurrent layer's outputs.</summary>
/// <param name="Output">Every step's top-layer hidden state, directions concatenated: <c>[T, N, D*H]</c> (or
/// <c>[N, T, D*H]</c> batch-first); for a cell, the new h <c>[N, H]</c>.</param>
/// <param name="FinalHidden">h_n, <c>[L*D, N, H]</c> in PyTorch's order (layer-major, forward then reverse); for a
/// cell, the new h <c>[N, H]</c>.</param>
/// <param name="FinalCell">c_n (LSTM), shaped as <paramref name="FinalHidden"/>; null otherwise.</param>
public sealed record RecurrentResult(Tensor Output, Tensor FinalHidden, Tensor? FinalCell);

/// <summary>
/// The recurrences of PyTorch's LSTM, GRU and RNN in managed TorchSharp operations, unrolled over time, layers and
/// directions, with the weights supplied by an <see cref="IRecurrentWeights"/>. With a layer's own weights it
/// reproduces the native forward (the equivalence tests check it to the float64 tolerance). It is the statement of
/// what the layouts mean: <see cref="RecurrentInspection"/> accepts a layout only when the native layer reproduces it.
/// The engines run libtorch's own layers instead (<see cref="GateInputRecurrence"/>): one call per layer rather than a
/// dozen operations per step.
/// </summary>
public static class RecurrentUnroll
{
    /// <summary>
    /// Runs the layer described by <paramref name="layout"/> on <paramref name="input"/> (<c>[T, N, I]</c>, <c>[N,
    /// T, I]</c> batch-first, or <c>[N, I]</c> for a cell) from the state <paramref name="hidden"/> (<c>[L*D, N,
    /// H]</c>, or <c>[N, H]</c> for a cell) and, for an LSTM, <paramref name="cell"/> (same shape).
    /// </summary>
    public static RecurrentResult Run(RecurrentLayout layout, Tensor input, Tensor hidden, Tensor? cell,
        IRecurrentWeights weights)
    {
        if (layout.IsCell)
        {
            var (h, c) = Direction(layout, 0, 0, input.unsqueeze(0), hidden, cell, weights).Final;
            return new RecurrentResult(h, h, c);
        }
        var x = layout.BatchFirst ? input.transpose(0, 1) : input;
        var finalHidden = new List<Tensor>();
        var finalCell = new List<Tensor>();
        for (int layer = 0; layer < layout.Layers; layer++)
        {
            var outputs = new List<Tensor>();
            for (int direction = 0; direction < layout.Directions; direction++)
            {
                int index = layer * layout.Directions + direction;
                var (steps, (h, c)) = Direction(layout, layer, direction, x, hidden[index],
                    cell?[index], weights);
                outputs.Add(steps);
                finalHidden.Add(h);
                if (c is not null) finalCell.Add(c);
            }
            x = outputs.Count == 1 ? outputs[0] : cat(outputs, 2);
        }
        return new RecurrentResult(layout.BatchFirst ? x.transpose(0, 1) : x, stack(finalHidden),
            finalCell.Count > 0 ? stack(finalCell) : null);
    }

    // One layer in one direction over x [T, N, in]: every step's h in time order [T, N, H], and the final state.
    private static (Tensor Steps, (Tensor H, Tensor? C) Final) Direction(RecurrentLayout layout, int layer,
        int direction, Tensor x, Tensor h, Tensor? c, IRecurrentWeights weights)
    {
        long length = x.shape[0];
        var gi = weights.InputProjection(layer, direction, x);
        var steps = new Tensor[length];
        for (long k = 0; k < length; k++)
        {
            long t = direction == 0 ? k : length - 1 - k;
            (h, c) = Step(layout.Kind, gi[t], weights.HiddenProjection(layer, direction, t, h), h, c);
            steps[t] = h;
        }
        return (stack(steps), (h, c));
    }

    /// <summary>
    /// One step from the pre-activations <paramref name="gi"/> and <paramref name="gh"/> (<c>[N, G*H]</c>, gates
    /// stacked in PyTorch's order) and the state before it. LSTM (i, f, g, o): <c>c' = s(f) c + s(i) tanh(g)</c>,
    /// <c>h' = s(o) tanh(c')</c> with <c>s</c> the logistic sigmoid and each gate <c>gi + gh</c>. GRU (r, z, n):
    /// <c>r = s(gi_r + gh_r)</c>, <c>z = s(gi_z + gh_z)</c>, <c>n = tanh(gi_n + r * gh_n)</c>, <c>h' = (1 - z) n + z
    /// h</c>. RNN: <c>h' = tanh(gi + gh)</c> or <c>relu(gi + gh)</c>.
    /// </summary>
    public static (Tensor H, Tensor? C) Step(RecurrentKind kind, Tensor gi, Tensor gh, Tensor h, Tensor? c)
    {
        switch (kind)
        {
            case RecurrentKind.Lstm:
                {
                    var gates = (gi + gh).chunk(4, 1);
                    var next = gates[1].sigmoid() * c! + gates[0].sigmoid() * gates[2].tanh();
                    return (gates[3].sigmoid() * next.tanh(), next);
                }
            case RecurrentKind.Gru:
                {
                    var input = gi.chunk(3, 1);
                    var recurrent = gh.chunk(3, 1);
                    var reset = (input[0] + recurrent[0]).sigmoid();
                    var update = (input[1] + recurrent[1]).sigmoid();
                    var candidate = (input[2] + reset * recurrent[2]).tanh();
                    return (candidate + update * (h - candidate), null);
                }
            case RecurrentKind.RnnTanh:
                return ((gi + gh).tanh(), null);
            default:
                return ((gi + gh).relu(), null);
        }
    }
}

/// <summary>
/// A recurrent layer's own weights (detached from autograd), by the layout's parameter names. Missing biases (a layer
/// created with <c>bias: false</c>) are left out of the maps.
/// </summary>
public sealed class SharedRecurrentWeights : IRecurrentWeights
{
    private readonly RecurrentLayout _layout;
    private readonly Dictionary<string, Tensor> _parameters;

    /// <summary>Reads the parameters of <paramref name="module"/>, laid out as <paramref name="layout"/>
    /// says.</summary>
    public SharedRecurrentWeights(RecurrentLayout layout, nn.Module module)
    {
        _layout = layout;
        _parameters = module.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach());
    }

    /// <inheritdoc/>
    public Tensor InputProjection(int layer, int direction, Tensor x) =>
        nn.functional.linear(x, Get("weight_ih", layer, direction), Bias("bias_ih", layer, direction));

    /// <inheritdoc/>
    public Tensor HiddenProjection(int layer, int direction, long step, Tensor hidden) =>
        nn.functional.linear(hidden, Get("weight_hh", layer, direction), Bias("bias_hh", layer, direction));

    /// <summary>The weight or bias <paramref name="role"/> of one layer and direction, detached.</summary>
    public Tensor Get(string role, int layer, int direction) => _parameters[_layout.Name(role, layer, direction)];

    private Tensor? Bias(string role, int layer, int direction) =>
        _layout.HasBias ? Get(role, layer, direction) : null;
}
