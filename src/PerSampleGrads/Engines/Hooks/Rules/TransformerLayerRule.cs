using PerSampleGrads.Engines.Probing;
using PerSampleGrads.Maths;
using TorchSharp.Modules;
using static PerSampleGrads.Maths.PerSampleContractions;
using static TorchSharp.torch;

namespace PerSampleGrads.Engines.Hooks.Rules;

/// <summary>
/// TorchSharp's native TransformerEncoderLayer and TransformerDecoderLayer (no managed children, so no hook fires
/// inside them). From the captured input (decoder: target, memory, masks) the layer is recomposed with its own weights
/// (<see cref="TransformerLayers"/>; heads and activation from <see cref="TransformerInspection"/>), each affine map's
/// input recorded and a zero leaf added to its output, each LayerNorm's normalised input recorded and a zero leaf
/// added to its output; one backward of the captured output gradient gives the gradient <c>g</c> at every map's and
/// norm's output for every sample. Then, as for Linear and LayerNorm (l position): <c>dW[n] = sum_l g[n, l]
/// x[n, l]^T</c>, <c>db[n] = sum_l g[n, l]</c> (a packed <c>in_proj_weight</c> from its query, key and value parts),
/// <c>dgamma[n] = sum_l g[n, l] * xhat[n, l]</c>, <c>dbeta[n] = sum_l g[n, l]</c>. A layer the recomposition does not
/// reproduce (a configuration libtorch has and the recomposition lacks) goes to the per-sample rerun
/// (<see cref="PerSampleRerunRule"/>): exact, one pass per sample.
/// </summary>
public static class TransformerLayerRule
{
    /// <summary>
    /// Adds this call's per-sample gradients of the layer's trainable parameters, <c>[N, ...parameter shape]</c>,
    /// to the sink (the formula is in the class summary).
    /// </summary>
    public static void Compute(LayerCall call, ILayerGradientSink sink)
    {
        if (TransformerInspection.TryInspect(call.Layer, call.Path) is not { } behaviour)
        {
            PerSampleRerunRule.Compute(call, sink);
            return;
        }
        var maps = new RecordingMaps(call.Layer.named_parameters().ToDictionary(p => p.name,
            p => p.parameter.detach()));
        using (enable_grad())
        {
            var output = call.Layer is TransformerEncoderLayer
                ? TransformerLayers.Encode(maps, behaviour, call.Input.detach())
                : TransformerLayers.Decode(maps, behaviour, call.Argument(0)!.detach(), call.Argument(1)!.detach(),
                    call.Argument(2), call.Argument(3), call.Argument(4), call.Argument(5));
            autograd.backward([output], [call.OutputGradient], inputs: maps.Leaves);
        }
        foreach (var (name, gradient) in maps.PerSampleGradients(sink.Wants)) sink.Add(name, gradient);
    }

    // The layer's own weights; every map's and norm's input recorded and a zero leaf added to its output.
    private sealed class RecordingMaps(IReadOnlyDictionary<string, Tensor> weights) : ITransformerMaps
    {
        private readonly List<(string Weight, string Bias, int? Part, Tensor Input, Tensor Leaf)> _affine = [];
        private readonly List<(string Prefix, Tensor Normalized, Tensor Leaf)> _norms = [];

        public List<Tensor> Leaves => [.. _affine.Select(a => a.Leaf), .. _norms.Select(n => n.Leaf)];

        public Tensor Affine(string weight, string bias, int? part, Tensor x)
        {
            var (w, b) = (weights[weight], weights[bias]);
            if (part is { } p)
            {
                long e = w.shape[^1];
                (w, b) = (w.narrow(0, p * e, e), b.narrow(0, p * e, e));
            }
            var output = nn.functional.linear(x, w, b);
            var leaf = zeros_like(output).requires_grad_();
            _affine.Add((weight, bias, part, x.detach(), leaf));
            return output + leaf;
        }

        public Tensor Norm(string prefix, Tensor x)
        {
            var normalized = nn.functional.layer_norm(x, [x.shape[^1]], eps: TransformerLayers.LayerNormEpsilon);
            var output = normalized * weights[prefix + "weight"] + weights[prefix + "bias"];
            var leaf = zeros_like(output).requires_grad_();
            _norms.Add((prefix, normalized.detach(), leaf));
            return output + leaf;
        }

        // By parameter name; a packed weight's parts concatenated in query, key, value order.
        public Dictionary<string, Tensor> PerSampleGradients(Func<string, bool> wants)
        {
            var result = new Dictionary<string, Tensor>();
            foreach (var group in _affine.GroupBy(a => (a.Weight, a.Bias)))
            {
                var parts = group.OrderBy(a => a.Part).ToList();
                if (wants(group.Key.Weight))
                    result[group.Key.Weight] = cat(parts.Select(a => SumOfOuterProducts(Gradient(a.Leaf), a.Input))
                        .ToList(), 1);
                if (wants(group.Key.Bias))
                    result[group.Key.Bias] = cat(parts.Select(a => Gradient(a.Leaf).sum(dim: 1)).ToList(), 1);
            }
            foreach (var (prefix, normalized, leaf) in _norms)
            {
                if (wants(prefix + "weight")) result[prefix + "weight"] = (Gradient(leaf) * normalized).sum(dim: 1);
                if (wants(prefix + "bias")) result[prefix + "bias"] = Gradient(leaf).sum(dim: 1);
            }
            return result;
        }

        // Zero where nothing reached the leaf (a fully masked key).
        private static Tensor Gradient(Tensor leaf) => leaf.grad is { IsInvalid: false } g ? g : zeros_like(leaf);
    }
}
