using PerSampleGrads.Maths;
using static TorchSharp.torch;

namespace PerSampleGrads.Engines.Hooks.Rules;

/// <summary>
/// The hook engine's fallback for a module without a rule (<see cref="UnsupportedLayerPolicy.PerSampleRerun"/>): from
/// the captured input and output gradient, the module alone is re-run on each sample and autograd gives that sample's
/// gradient of every wanted parameter of its subtree (<see cref="PerSampleRerun"/>). Not in <see cref="HookRules"/>:
/// the engine takes it only for types its table lacks.
/// </summary>
public static class PerSampleRerunRule
{
    /// <summary>
    /// Adds this call's per-sample gradients of the layer's trainable parameters, <c>[N, ...parameter shape]</c>,
    /// to the sink (the formula is in the class summary).
    /// </summary>
    public static void Compute(LayerCall call, ILayerGradientSink sink)
    {
        if (call.Arguments.Count != 1 || call.OutputGradients.Count != 1
            || call.ArgumentAxes[0] is not { IsShared: false, Dimension: 0 })
        {
            ComputeSlots(call, sink);
            return;
        }
        var module = (nn.Module<Tensor, Tensor>)call.Layer;
        var wanted = module.named_parameters().Where(p => sink.Wants(p.name)).ToList();
        if (wanted.Count == 0) return;
        PerSampleRerun.CheckOneSample(module, call.Path, call.Input, call.OutputGradient.shape);
        var gradients = PerSampleRerun.Gradients(module, wanted.Select(p => (Tensor)p.parameter).ToList(),
            call.Input, call.OutputGradient);
        for (int j = 0; j < wanted.Count; j++) sink.Add(wanted[j].name, gradients[j]);
    }

    // A module of another signature (ModuleSignatures): sample n's arguments are slice n of every argument that holds
    // the samples along a dimension (moved back to the module's own layout) and every other argument as given.
    private static void ComputeSlots(LayerCall call, ILayerGradientSink sink)
    {
        var module = call.Layer;
        var signature = ModuleSignatures.Of(module, call.Path);
        var wanted = module.named_parameters().Where(p => sink.Wants(p.name)).ToList();
        if (wanted.Count == 0) return;
        for (int i = 0; i < call.Arguments.Count; i++)
            if (call.Arguments[i] is Tensor && (i >= call.ArgumentAxes.Count || call.ArgumentAxes[i] is null))
                throw new PerSampleGradientsException(Problem.UnsupportedLayers,
                    $"Module '{call.Path}' ({module.GetType().Name}) has no per-sample rule, and the rerun fallback " +
                    $"cannot split its argument '{signature.Arguments[i]}' by sample (the samples are not along one " +
                    "of its dimensions). Add a rule to the engine's table, or freeze its parameters.");
        long n = call.OutputGradient.shape[0];
        var gradients = PerSampleRerun.Gradients(wanted.Select(p => (Tensor)p.parameter).ToList(), n, s =>
        {
            var arguments = call.Arguments.Select((a, i) => a is Tensor t && SlotLayout.PerSample(call.ArgumentAxes, i)
                ? SlotLayout.Back(t.narrow(0, s, 1), call.ArgumentAxes[i]) : a).ToList();
            var outputs = signature.Forward(module, arguments);
            var pairs = new List<(Tensor, Tensor)>();
            for (int j = 0; j < outputs.Length; j++)
                if (outputs[j] is { } output && call.Gradient(j) is { } gradient)
                    pairs.Add((SlotLayout.First(output, j < call.OutputAxes.Count ? call.OutputAxes[j] : null),
                        gradient.narrow(0, s, 1)));
            return pairs;
        });
        for (int j = 0; j < wanted.Count; j++) sink.Add(wanted[j].name, gradients[j]);
    }
}
