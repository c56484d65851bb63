using PerSampleGrads.Maths;
using static TorchSharp.torch;

namespace PerSampleGrads.Engines.Functional.Layers;

/// <summary>
/// LSTM, GRU and RNN (tanh, ReLU; any layers, directions, batch-first, bias) and their cells with per-sample weights
/// <c>W_ih[n]</c> <c>[k, G*H, I]</c>, <c>W_hh[n]</c> <c>[k, G*H, H]</c>, biases <c>[k, G*H]</c>. The value comes from
/// libtorch's own layers with the shared weights (<see cref="GateInputRecurrence"/>); sample n's copies enter through
/// the gate input, as a term whose value is zero and whose derivative is theirs: <c>e[t, n] = (W_ih[n] - sg(W_ih[n]))
/// x[t, n] + (b_ih[n] - sg(b_ih[n])) + (W_hh[n] - sg(W_hh[n])) h[t-1, n] + (b_hh[n] - sg(b_hh[n]))</c> with sg the
/// stop-gradient (detach) and h[t-1] the state before step t, read from a first run without them. The gate
/// pre-activations then equal <c>W_ih[n] x + b_ih[n] + W_hh[n] h + b_hh[n]</c> in value and in derivative with
/// respect to every copy; GRU's candidate gate takes <c>r (W_hn h + b_hn)</c>, so its hidden terms are scaled by the
/// reset gate r. Autograd does every reduction over time.
/// </summary>
public static class RecurrentForward
{
    /// <summary>The batched forward: output slot 0 returned, the others written into <see
    /// cref="FunctionalCall.OtherOutputs"/>, every slot samples-first.</summary>
    public static Tensor Forward(FunctionalCall call)
    {
        var layout = RecurrentInspection.Inspect(call.Layer, call.Path);
        // Back to the layer's own layout: input [T, N, I] unless batch-first, states [L*D, N, H].
        Tensor? Argument(int slot) =>
            call.Argument(slot) is { } t ? SlotLayout.Back(t, call.ArgumentAxes[slot]) : null;
        var result = Run(call.Layer, layout, call.Parameters, Argument(0)!, Argument(1),
            layout.HasCellState ? Argument(2) : null);
        Tensor?[] outputs = layout.IsCell ? [result.FinalHidden, result.FinalCell]
            : [result.Output, result.FinalHidden, result.FinalCell];
        for (int slot = 1; slot < call.OtherOutputs.Length; slot++)
            call.OtherOutputs[slot] = outputs[slot] is { } o ? SlotLayout.First(o, call.OutputAxes[slot]) : null;
        return SlotLayout.First(outputs[0]!, call.OutputAxes[0]);
    }

    /// <summary>
    /// The outputs of <paramref name="layer"/> for <paramref name="input"/> (its own layout) from
    /// <paramref name="hidden"/> and <paramref name="cell"/> (null: zeros), with <paramref name="parameters"/> by local
    /// name.
    /// </summary>
    public static RecurrentResult Run(nn.Module layer, RecurrentLayout layout, SampleParameters parameters,
        Tensor input, Tensor? hidden, Tensor? cell)
    {
        var shared = parameters.Names.ToDictionary(name => name, name => parameters.Shared(name)!);
        var recurrence = GateInputRecurrence.Of(layer, layout, shared);
        return recurrence.Run(input, hidden, layout.HasCellState ? cell : null, start =>
        {
            long length = start.Input.shape[0], k = start.Input.shape[1];
            var x = start.Input.detach();
            // The states before each step: from a run without the per-sample terms (its value is the same).
            Tensor? before = null;
            if (length > 1)
            {
                var detached = start with { Input = x };
                before = recurrence.Layer(detached, recurrence.ZeroGateInput(detached)).Output.detach();
            }
            var blocks = new List<Tensor>();
            for (int direction = 0; direction < layout.Directions; direction++)
            {
                // One step: States reads only h0 (and the length from x).
                var states = recurrence.States(direction, before ?? x, start.Hidden.detach());
                Tensor? Copy(string role) => parameters[layout.Name(role, start.Layer, direction)] is
                    { requires_grad: true } p ? p : null;
                Tensor? Shared(string role) => shared.GetValueOrDefault(layout.Name(role, start.Layer, direction));
                var inputTerm = Term(Copy("weight_ih"), Copy("bias_ih"), x);
                var hiddenTerm = Term(Copy("weight_hh"), Copy("bias_hh"), states);
                if (hiddenTerm is not null && layout.Kind == RecurrentKind.Gru)
                {
                    var reset = GateInputRecurrence.ResetGate(x, states, Shared("weight_ih")!, Shared("bias_ih"),
                        Shared("weight_hh")!, Shared("bias_hh"));
                    hiddenTerm = hiddenTerm * cat([ones_like(reset), ones_like(reset), reset], 2);
                }
                var block = inputTerm is null ? hiddenTerm : hiddenTerm is null ? inputTerm : inputTerm + hiddenTerm;
                blocks.Add(block ?? zeros([length, k, recurrence.GateWidth], x.dtype, x.device));
            }
            return blocks.Count == 1 ? blocks[0] : cat(blocks, 2);
        }).Result;
    }

    // (W[n] - sg(W[n])) v[t, n] + (b[n] - sg(b[n])), [T, k, G*H]: zero in value; null when neither is trained.
    private static Tensor? Term(Tensor? weight, Tensor? bias, Tensor v)
    {
        Tensor? term = null;
        if (weight is not null) term = bmm(v.transpose(0, 1), (weight - weight.detach()).transpose(1, 2))
            .transpose(0, 1);
        if (bias is not null)
        {
            var shift = (bias - bias.detach()).unsqueeze(0);
            term = term is null ? shift.expand(v.shape[0], -1, -1) : term + shift;
        }
        return term;
    }
}
