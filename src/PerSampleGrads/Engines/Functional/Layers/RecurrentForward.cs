using PerSampleGrads.Maths;
using static TorchSharp.torch;

namespace PerSampleGrads.Engines.Functional.Layers;

/// <summary>
/// LSTM, GRU and RNN (tanh, ReLU; any layers, directions, batch-first, bias) and their cells with per-sample weights
/// <c>W_ih[n]</c> <c>[k, G*H, I]</c>, <c>W_hh[n]</c> <c>[k, G*H, H]</c>, biases <c>[k, G*H]</c>: the recurrence of
/// <see cref="RecurrentUnroll"/> with each affine map one batched matrix product in which sample n uses its own copy:
/// <c>gi[t, n] = W_ih[n] x[t, n] + b_ih[n]</c>, <c>gh[n] = W_hh[n] h[n] + b_hh[n]</c>. Autograd does every
/// reduction over time.
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
        var result = Run(layout, call.Parameters, Argument(0)!, Argument(1),
            layout.HasCellState ? Argument(2) : null);
        Tensor?[] outputs = layout.IsCell ? [result.FinalHidden, result.FinalCell]
            : [result.Output, result.FinalHidden, result.FinalCell];
        for (int slot = 1; slot < call.OtherOutputs.Length && slot < outputs.Length; slot++)
            call.OtherOutputs[slot] = outputs[slot] is { } o ? SlotLayout.First(o, call.OutputAxes[slot]) : null;
        return SlotLayout.First(outputs[0]!, call.OutputAxes[0]);
    }

    /// <summary>
    /// The layer's outputs for <paramref name="input"/> (its own layout) from <paramref name="hidden"/> and
    /// <paramref name="cell"/> (null: zeros), with <paramref name="parameters"/> by local name.
    /// </summary>
    public static RecurrentResult Run(RecurrentLayout layout, SampleParameters parameters, Tensor input,
        Tensor? hidden, Tensor? cell)
    {
        long n = layout.IsCell || layout.BatchFirst ? input.shape[0] : input.shape[1];
        long[] stateShape = layout.IsCell ? [n, layout.HiddenSize]
            : [layout.Layers * layout.Directions, n, layout.HiddenSize];
        hidden ??= zeros(stateShape, input.dtype, input.device);
        if (layout.HasCellState) cell ??= zeros(stateShape, input.dtype, input.device);
        return RecurrentUnroll.Run(layout, input, hidden, layout.HasCellState ? cell : null,
            new PerSampleWeights(layout, parameters));
    }

    private sealed class PerSampleWeights(RecurrentLayout layout, SampleParameters parameters) : IRecurrentWeights
    {
        // x [T, k, in] -> [k, T, in] x W_ih[n]^T [k, in, G*H] -> [T, k, G*H].
        public Tensor InputProjection(int layer, int direction, Tensor x) =>
            Affine(x.transpose(0, 1), layer, direction, "weight_ih", "bias_ih").transpose(0, 1);

        // h [k, H] -> [k, 1, H] x W_hh[n]^T [k, H, G*H] -> [k, G*H].
        public Tensor HiddenProjection(int layer, int direction, long step, Tensor hidden) =>
            Affine(hidden.unsqueeze(1), layer, direction, "weight_hh", "bias_hh").squeeze(1);

        private Tensor Affine(Tensor x, int layer, int direction, string weight, string bias)
        {
            var y = bmm(x, parameters[layout.Name(weight, layer, direction)]!.transpose(1, 2));
            return parameters[layout.Name(bias, layer, direction)] is { } b ? y + b.unsqueeze(1) : y;
        }
    }
}
