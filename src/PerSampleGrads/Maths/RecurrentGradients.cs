using static PerSampleGrads.Maths.PerSampleContractions;
using static TorchSharp.torch;

namespace PerSampleGrads.Maths;

/// <summary>
/// What one call of a recurrent layer saw, in the layer's own layout: its inputs and the gradients of <c>sum_i
/// L_i</c> at its outputs (null where an output did not reach the loss).
/// </summary>
/// <param name="Input"><c>[T, N, I]</c>, <c>[N, T, I]</c> batch-first, or <c>[N, I]</c> for a cell.</param>
/// <param name="Hidden">h0, <c>[L*D, N, H]</c> (<c>[N, H]</c> for a cell), or null for zeros.</param>
/// <param name="Cell">c0 (LSTM), shaped as h0, or null for zeros.</param>
/// <param name="OutputGradient">Gradient at the output sequence (the new h for a cell), or null.</param>
/// <param name="FinalHiddenGradient">Gradient at h_n (not used for a cell: its h is its output), or null.</param>
/// <param name="FinalCellGradient">Gradient at c_n (LSTM), or null.</param>
public sealed record RecurrentCall(Tensor Input, Tensor? Hidden, Tensor? Cell, Tensor? OutputGradient,
    Tensor? FinalHiddenGradient, Tensor? FinalCellGradient);

/// <summary>One layer and direction of a recomputed recurrent call, every tensor indexed by time position t.</summary>
/// <param name="Layer">The layer.</param>
/// <param name="Direction">0 forward, 1 reverse.</param>
/// <param name="Inputs">The layer's input x, <c>[T, N, in]</c>.</param>
/// <param name="States">The state h before step t in this direction's order (h[t-1] forward, h[t+1] reverse, h0
/// first), <c>[T, N, H]</c>.</param>
/// <param name="InputGradient">dz_ih, the gradient at <c>gi[t] = W_ih x[t] + b_ih</c>, <c>[T, N, G*H]</c>.</param>
/// <param name="HiddenGradient">dz_hh, the gradient at <c>gh[t] = W_hh h[t-1] + b_hh</c>, <c>[T, N,
/// G*H]</c>.</param>
public sealed record RecurrentStepGradients(int Layer, int Direction, Tensor Inputs, Tensor States,
    Tensor InputGradient, Tensor HiddenGradient);

/// <summary>
/// Per-sample gradients of a recurrent layer's weights from one call (Opacus' DPLSTM idea): the recurrence is
/// recomputed from the call's inputs with the layer's own weights (<see cref="RecurrentUnroll"/>), each step's gate
/// pre-activations carrying a zero leaf <c>E</c>; one backward of the call's output gradients through it gives the
/// gradient at every step's pre-activations, <c>dz[t, n, g]</c>, for every sample at once. Then, for each layer and
/// direction (index letters: t step, n sample, g gate row, i input feature, h hidden feature):
/// <c>dW_ih[n] = sum_t dz_ih[t, n] x[t, n]^T</c> (<c>[N, G*H, I]</c>, x the layer's input), <c>dW_hh[n] = sum_t
/// dz_hh[t, n] h[t-1, n]^T</c> (<c>[N, G*H, H]</c>, h[t-1] the state before step t in that direction's order),
/// <c>db_ih[n] = sum_t dz_ih[t, n]</c>, <c>db_hh[n] = sum_t dz_hh[t, n]</c>. For LSTM and RNN the gates are <c>gi +
/// gh</c>, so <c>dz_hh = dz_ih</c>; GRU's candidate gate multiplies <c>gh_n</c> by r, so it gets a leaf of its own.
/// No per-sample loop: each product is one batched matrix product over the samples.
/// </summary>
public static class RecurrentGradients
{
    /// <summary>
    /// Per-sample gradients <c>[N, ...parameter shape]</c> by local parameter name (<c>weight_ih_l0</c>, ...) for the
    /// names <paramref name="wants"/> accepts.
    /// </summary>
    public static Dictionary<string, Tensor> Compute(RecurrentLayout layout, nn.Module module, RecurrentCall call,
        Func<string, bool> wants) => WeightGradients(layout, Backpropagate(layout, module, call), wants);

    /// <summary>
    /// The recomputed recurrence and its backward: for each layer and direction, the layer's input, the state before
    /// each step and the gradients at each step's pre-activations.
    /// </summary>
    public static List<RecurrentStepGradients> Backpropagate(RecurrentLayout layout, nn.Module module,
        RecurrentCall call)
    {
        var input = call.Input.detach();
        long n = layout.IsCell || layout.BatchFirst ? input.shape[0] : input.shape[1];
        long[] stateShape = layout.IsCell ? [n, layout.HiddenSize]
            : [layout.Layers * layout.Directions, n, layout.HiddenSize];
        var hidden = call.Hidden?.detach() ?? zeros(stateShape, input.dtype, input.device);
        var cell = layout.HasCellState ? call.Cell?.detach() ?? zeros(stateShape, input.dtype, input.device) : null;
        var weights = new PerturbedWeights(layout, module);
        using (enable_grad())
        {
            var result = RecurrentUnroll.Run(layout, input, hidden, cell, weights);
            var outputs = new List<Tensor>();
            var gradients = new List<Tensor>();
            void Add(Tensor? output, Tensor? gradient)
            {
                if (output is null || gradient is null) return;
                outputs.Add(output);
                gradients.Add(gradient);
            }
            Add(result.Output, call.OutputGradient);
            if (!layout.IsCell) Add(result.FinalHidden, call.FinalHiddenGradient);
            Add(result.FinalCell, call.FinalCellGradient);
            if (outputs.Count > 0) autograd.backward(outputs, gradients, inputs: weights.Leaves);
        }
        var steps = new List<RecurrentStepGradients>();
        for (int layer = 0; layer < layout.Layers; layer++)
            for (int direction = 0; direction < layout.Directions; direction++)
                steps.Add(weights.Recorded(layer, direction));
        return steps;
    }

    /// <summary>
    /// The per-sample weight gradients from <paramref name="steps"/> (the class summary's sums over t), by local
    /// parameter name, for the names <paramref name="wants"/> accepts.
    /// </summary>
    public static Dictionary<string, Tensor> WeightGradients(RecurrentLayout layout,
        IEnumerable<RecurrentStepGradients> steps, Func<string, bool> wants)
    {
        var perSample = new Dictionary<string, Tensor>();
        foreach (var step in steps)
        {
            string Name(string role) => layout.Name(role, step.Layer, step.Direction);
            // [T, N, F] to [N, T, F]: positions t summed by one batched product per parameter.
            if (wants(Name("weight_ih")))
                perSample[Name("weight_ih")] = SumOfOuterProducts(step.InputGradient.transpose(0, 1),
                    step.Inputs.transpose(0, 1));
            if (wants(Name("weight_hh")))
                perSample[Name("weight_hh")] = SumOfOuterProducts(step.HiddenGradient.transpose(0, 1),
                    step.States.transpose(0, 1));
            if (layout.HasBias && wants(Name("bias_ih"))) perSample[Name("bias_ih")] = step.InputGradient.sum(dim: 0);
            if (layout.HasBias && wants(Name("bias_hh"))) perSample[Name("bias_hh")] = step.HiddenGradient.sum(dim: 0);
        }
        return perSample;
    }

    // The layer's own weights, with a zero leaf added to each pre-activation and each map's input recorded.
    private sealed class PerturbedWeights(RecurrentLayout layout, nn.Module module) : IRecurrentWeights
    {
        private readonly SharedRecurrentWeights _shared = new(layout, module);
        private readonly Dictionary<(int, int), Tensor> _inputs = [];
        private readonly Dictionary<(int, int), Tensor> _inputLeaves = [];
        private readonly Dictionary<(int, int), Tensor> _hiddenLeaves = [];
        private readonly Dictionary<(int, int), Tensor[]> _states = [];

        public List<Tensor> Leaves => [.. _inputLeaves.Values, .. _hiddenLeaves.Values];

        public Tensor InputProjection(int layer, int direction, Tensor x)
        {
            var projection = _shared.InputProjection(layer, direction, x);
            var leaf = zeros_like(projection).requires_grad_();
            _inputs[(layer, direction)] = x.detach();
            _inputLeaves[(layer, direction)] = leaf;
            _states[(layer, direction)] = new Tensor[x.shape[0]];
            if (layout.Kind == RecurrentKind.Gru) _hiddenLeaves[(layer, direction)] = zeros_like(leaf).requires_grad_();
            return projection + leaf;
        }

        public Tensor HiddenProjection(int layer, int direction, long step, Tensor hidden)
        {
            _states[(layer, direction)][step] = hidden.detach();
            var projection = _shared.HiddenProjection(layer, direction, step, hidden);
            return _hiddenLeaves.TryGetValue((layer, direction), out var leaf) ? projection + leaf[step] : projection;
        }

        // Zero where the backward did not reach.
        public RecurrentStepGradients Recorded(int layer, int direction)
        {
            var key = (layer, direction);
            var dzInput = GradientOf(_inputLeaves[key]);
            var dzHidden = _hiddenLeaves.TryGetValue(key, out var leaf) ? GradientOf(leaf) : dzInput;
            return new RecurrentStepGradients(layer, direction, _inputs[key], stack(_states[key]), dzInput, dzHidden);
        }

        private static Tensor GradientOf(Tensor leaf) => leaf.grad is { } grad ? grad : zeros_like(leaf);
    }
}
