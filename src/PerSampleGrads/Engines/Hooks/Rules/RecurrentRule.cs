using PerSampleGrads.Engines.Probing;
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
    /// to the sink (the formula is in the class summary): from the tape when the engine ran <see cref="Forward"/>,
    /// else by running the recurrence again from the call's inputs and output gradients.
    /// </summary>
    public static void Compute(LayerCall call, ILayerGradientSink sink)
    {
        var layout = RecurrentInspection.Inspect(call.Layer, call.Path);
        var steps = call.Tape is { } tape ? Steps(layout, call.Layer, tape)
            : RecurrentGradients.Backpropagate(layout, call.Layer, Arguments(call, layout));
        foreach (var (name, gradient) in RecurrentGradients.WeightGradients(layout, steps, sink.Wants))
            sink.Add(name, gradient);
    }

    /// <summary>
    /// The layer's forward through libtorch's layers with a marked zero input at every step's gates
    /// (<see cref="GateInputRecurrence"/>): the outputs are the layer's, and the model's backward records the gradient
    /// at every step's gate pre-activations. Keeps, per layer: its input, its h0 and its output sequence; marks its
    /// gate input.
    /// </summary>
    public static Tensor?[] Forward(nn.Module layer, string path, object?[] arguments, LayerAxes axes,
        ForwardTape tape)
    {
        var layout = RecurrentInspection.Inspect(layer, path);
        var recurrence = GateInputRecurrence.Of(layer, layout, RecurrentGradients.Weights(layer));
        var input = (Tensor)arguments[0]!;
        var run = recurrence.Run(input, ModuleSignature.TensorAt(arguments, 1),
            layout.HasCellState ? ModuleSignature.TensorAt(arguments, 2) : null, start =>
            {
                tape.Keep(start.Input);
                tape.Keep(start.Hidden);
                return tape.Mark(recurrence.ZeroGateInput(start));
            });
        foreach (var output in run.LayerOutputs) tape.Keep(output);
        var result = run.Result;
        return layout.IsCell ? [result.FinalHidden, result.FinalCell]
            : [result.Output, result.FinalHidden, result.FinalCell];
    }

    // The tape of Forward: per layer its input and h0, then every layer's output; one gradient per layer.
    private static List<RecurrentStepGradients> Steps(RecurrentLayout layout, nn.Module layer, ForwardTape tape)
    {
        var starts = Enumerable.Range(0, (int)layout.Layers)
            .Select(l => new RecurrentLayerStart(l, tape.Values[2 * l], tape.Values[2 * l + 1], null)).ToList();
        var outputs = tape.Values.Skip(2 * (int)layout.Layers).ToList();
        return RecurrentGradients.Steps(layout, RecurrentGradients.Weights(layer), starts, outputs, tape.Gradients);
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
