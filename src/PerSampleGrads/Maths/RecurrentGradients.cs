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
/// Per-sample gradients of a recurrent layer's weights from one call (Opacus' DPLSTM idea): the call is rerun through
/// libtorch's own layers with a zero input e at every step's gate pre-activations (<see cref="GateInputRecurrence"/>);
/// one backward of the call's output gradients through it gives the gradient at every step's pre-activations,
/// <c>dz[t, n, g]</c>, for every sample at once. Then, for each layer and direction (index letters: t step, n
/// sample, g gate row, i input feature, h hidden feature): <c>dW_ih[n] = sum_t dz_ih[t, n] x[t, n]^T</c> (<c>[N,
/// G*H, I]</c>, x the layer's input), <c>dW_hh[n] = sum_t dz_hh[t, n] h[t-1, n]^T</c> (<c>[N, G*H, H]</c>, h[t-1]
/// the state before step t in that direction's order), <c>db_ih[n] = sum_t dz_ih[t, n]</c>, <c>db_hh[n] = sum_t
/// dz_hh[t, n]</c>. For LSTM and RNN the gates are <c>gi + gh</c>, so <c>dz_hh = dz_ih</c>; GRU's candidate gate
/// multiplies <c>gh_n</c> by the reset gate r, so there <c>dz_hh_n = r dz_ih_n</c>. No per-sample loop: each product
/// is one batched matrix product over the samples.
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
        var weights = Weights(module);
        var recurrence = GateInputRecurrence.Of(module, layout, weights);
        var starts = new List<RecurrentLayerStart>();
        var leaves = new List<Tensor>();
        GateInputRun run;
        using (enable_grad())
        {
            run = recurrence.Run(call.Input.detach(), call.Hidden?.detach(), call.Cell?.detach(), start =>
            {
                starts.Add(start);
                var leaf = recurrence.ZeroGateInput(start).requires_grad_();
                leaves.Add(leaf);
                return leaf;
            });
            var outputs = new List<Tensor>();
            var gradients = new List<Tensor>();
            void Add(Tensor? output, Tensor? gradient)
            {
                if (output is null || gradient is null) return;
                outputs.Add(output);
                gradients.Add(gradient);
            }
            Add(run.Result.Output, call.OutputGradient);
            if (!layout.IsCell) Add(run.Result.FinalHidden, call.FinalHiddenGradient);
            Add(run.Result.FinalCell, call.FinalCellGradient);
            if (outputs.Count > 0) autograd.backward(outputs, gradients, inputs: leaves);
        }
        return Steps(layout, weights, starts, run.LayerOutputs, leaves.Select(leaf => leaf.grad).ToList());
    }

    /// <summary>
    /// For each layer and direction, the layer's input, the state before each step and the gradients at each step's
    /// pre-activations, from a run of a <see cref="GateInputRecurrence"/>: each layer's <paramref name="starts"/>,
    /// its output <paramref name="layerOutputs"/> <c>[T, N, D*H]</c> and the gradient at its gate input e
    /// <paramref name="gateGradients"/> <c>[T, N, D*G*H]</c> (null where the backward did not reach: zeros).
    /// </summary>
    public static List<RecurrentStepGradients> Steps(RecurrentLayout layout,
        IReadOnlyDictionary<string, Tensor> weights, IReadOnlyList<RecurrentLayerStart> starts,
        IReadOnlyList<Tensor> layerOutputs, IReadOnlyList<Tensor?> gateGradients)
    {
        long width = layout.Gates * layout.HiddenSize;
        var steps = new List<RecurrentStepGradients>();
        for (int layer = 0; layer < layout.Layers; layer++)
        {
            var start = starts[layer];
            var x = start.Input.detach();
            var dz = gateGradients[layer] ?? zeros([x.shape[0], x.shape[1], layout.Directions * width], x.dtype,
                x.device);
            for (int direction = 0; direction < layout.Directions; direction++)
            {
                var states = GateInputRecurrence.States(layout, direction, layerOutputs[layer].detach(),
                    start.Hidden.detach());
                var dzInput = dz.narrow(2, direction * width, width);
                var dzHidden = dzInput;
                if (layout.Kind == RecurrentKind.Gru)
                {
                    Tensor? Weight(string role) => weights.GetValueOrDefault(layout.Name(role, layer, direction));
                    var reset = GateInputRecurrence.ResetGate(x, states, Weight("weight_ih")!, Weight("bias_ih"),
                        Weight("weight_hh")!, Weight("bias_hh"));
                    long h = layout.HiddenSize;
                    dzHidden = cat([dzInput.narrow(2, 0, 2 * h), dzInput.narrow(2, 2 * h, h) * reset], 2);
                }
                steps.Add(new RecurrentStepGradients(layer, direction, x, states, dzInput, dzHidden));
            }
        }
        return steps;
    }

    /// <summary>The layer's weights and biases by local name, detached.</summary>
    public static Dictionary<string, Tensor> Weights(nn.Module module) =>
        module.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach());

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
}
