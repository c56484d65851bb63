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
        var module = (nn.Module<Tensor, Tensor>)call.Layer;
        var wanted = module.named_parameters().Where(p => sink.Wants(p.name)).ToList();
        if (wanted.Count == 0) return;
        PerSampleRerun.CheckOneSample(module, call.Path, call.Input, call.OutputGradient.shape);
        var (gradients, _) = PerSampleRerun.Gradients(module, wanted.Select(p => (Tensor)p.parameter).ToList(),
            call.Input, call.OutputGradient, inputGradient: false);
        for (int j = 0; j < wanted.Count; j++) sink.Add(wanted[j].name, gradients[j]);
    }
}
