using PerSampleGrads.Maths;
using static TorchSharp.torch;

namespace PerSampleGrads.Engines.Hooks.Rules;

/// <summary>
/// LSTM, GRU and RNN (tanh, ReLU; any layers, directions, batch-first, bias) and their cells, from one call's inputs
/// (input, h0, c0) and the gradients at its outputs (output, h_n, c_n; a cell's h1, c1): the recurrence recomputed
/// with the layer's own weights and the gradients backpropagated through it give every step's pre-activation
/// gradient <c>dz</c>; then <c>dW_ih[n] = sum_t dz[t, n] x[t, n]^T</c>, <c>dW_hh[n] = sum_t dz[t, n] h[t-1,
/// n]^T</c>, biases <c>sum_t dz[t, n]</c> (<see cref="RecurrentGradients"/>). A cell called once per step gives one
/// call per step; the calls accumulate.
/// </summary>
public static class RecurrentRule
{
    /// <summary>
    /// Adds this call's per-sample gradients of the layer's trainable parameters, <c>[N, ...parameter shape]</c>,
    /// to the sink (the formula is in the class summary).
    /// </summary>
    public static void Compute(LayerCall call, ILayerGradientSink sink)
    {
        var layout = RecurrentInspection.Inspect(call.Layer, call.Path);
        foreach (var (name, gradient) in RecurrentGradients.Compute(layout, call.Layer, Arguments(call, layout),
            sink.Wants))
            sink.Add(name, gradient);
    }

    /// <summary>
    /// The call's slots in the layer's own layout (input <c>[T, N, I]</c> unless batch-first, states <c>[L*D, N,
    /// H]</c>): input, h0, c0 and the gradients at output, h_n, c_n (a cell's h1, c1).
    /// </summary>
    public static RecurrentCall Arguments(LayerCall call, RecurrentLayout layout)
    {
        Tensor? Argument(int slot) =>
            call.Argument(slot) is { } t ? SlotLayout.Back(t, call.ArgumentAxes[slot]) : null;
        Tensor? Gradient(int slot) =>
            call.Gradient(slot) is { } g ? SlotLayout.Back(g, call.OutputAxes[slot]) : null;
        bool lstm = layout.HasCellState;
        return layout.IsCell
            ? new RecurrentCall(Argument(0)!, Argument(1), lstm ? Argument(2) : null, Gradient(0), null,
                lstm ? Gradient(1) : null)
            : new RecurrentCall(Argument(0)!, Argument(1), lstm ? Argument(2) : null, Gradient(0), Gradient(1),
                lstm ? Gradient(2) : null);
    }
}
