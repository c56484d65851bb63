using System.Runtime.CompilerServices;
using TorchSharp;
using TorchSharp.Modules;
using PerSampleGrads.Maths;
using static TorchSharp.torch;

namespace PerSampleGrads.Engines.Probing;

/// <summary>
/// Finds what TorchSharp 0.107's native TransformerEncoderLayer and TransformerDecoderLayer do not expose (number of
/// heads, feed-forward activation) by running the layer (<c>forward</c>, no hooks, no gradients) on a small seeded
/// input and recomputing it in managed code (<see cref="TransformerLayers"/>) for every divisor H of E and both
/// activations: the first configuration that reproduces the output is its own, and none means the layer computes
/// something else (refused). Cached per module. In training mode, a layer whose two forwards differ (dropout above 0)
/// is refused.
/// </summary>
public static class TransformerInspection
{
    private static readonly ConditionalWeakTable<nn.Module, Inspected> Cache = new();

    /// <summary>The behaviour of <paramref name="layer"/> (an encoder or decoder layer).</summary>
    /// <exception cref="PerSampleGradientsException">Dropout in training mode, or no configuration reproduces the
    /// layer (<see cref="Problem.UnsupportedLayers"/>).</exception>
    public static TransformerLayerBehaviour Inspect(nn.Module layer, string path)
    {
        var inspected = Find(layer, path);
        return inspected.Behaviour ?? throw new PerSampleGradientsException(Problem.UnsupportedLayers,
            $"{layer.GetType().Name} '{path}': {inspected.Why}, so the functional engine cannot recompose it with " +
            "per-sample parameters. Use the hook engine (it re-runs such a layer per sample), or freeze its " +
            "parameters.");
    }

    /// <summary>The behaviour of <paramref name="layer"/>, or null when no configuration reproduces it.</summary>
    /// <exception cref="PerSampleGradientsException">Dropout in training mode.</exception>
    public static TransformerLayerBehaviour? TryInspect(nn.Module layer, string path) => Find(layer, path).Behaviour;

    private static Inspected Find(nn.Module layer, string path)
    {
        RefuseDropout(layer, path);
        if (Cache.TryGetValue(layer, out var known)) return known;
        var inspected = Probe(layer);
        Cache.AddOrUpdate(layer, inspected);
        return inspected;
    }

    private sealed record Inspected(TransformerLayerBehaviour? Behaviour, string Why);

    private static void RefuseDropout(nn.Module layer, string path)
    {
        if (!layer.training) return;
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var (x, memory) = ProbeInputs(layer);
        if (!Native(layer, x, memory).equal(Native(layer, x, memory)).all().item<bool>())
            throw new PerSampleGradientsException(Problem.UnsupportedLayers,
                $"{layer.GetType().Name} '{path}' applies dropout in training mode: its output for a sample is " +
                "random, so a per-sample gradient is not defined. Create it with dropout 0, or put it in eval mode.");
    }

    private static Inspected Probe(nn.Module layer)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var (x, memory) = ProbeInputs(layer);
        var output = Native(layer, x, memory).transpose(0, 1);
        var parameters = layer.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach());
        var missing = new[] { "in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias" }
            .SelectMany(role => memory is null ? ["self_attn." + role] : new[] { "self_attn." + role,
                "multihead_attn." + role })
            .Concat(["linear1.weight", "linear1.bias", "linear2.weight", "linear2.bias", "norm1.weight",
                "norm1.bias", "norm2.weight", "norm2.bias"])
            .Concat(memory is null ? [] : new[] { "norm3.weight", "norm3.bias" })
            .FirstOrDefault(name => !parameters.ContainsKey(name));
        if (missing is not null) return new Inspected(null, $"it has no parameter '{missing}'");
        long n = x.shape[1];
        var maps = new PerSampleTransformerMaps(name => parameters[name].unsqueeze(0).expand([n,
            .. parameters[name].shape]));
        long e = x.shape[2];
        double tolerance = x.dtype == ScalarType.Float64 ? 1e-10 : 1e-4;
        for (long heads = 1; heads <= e; heads++)
        {
            if (e % heads != 0) continue;
            foreach (var activation in Enum.GetValues<FeedForwardActivation>())
            {
                var behaviour = new TransformerLayerBehaviour(heads, activation);
                var mine = memory is null
                    ? TransformerLayers.Encode(maps, behaviour, x.transpose(0, 1))
                    : TransformerLayers.Decode(maps, behaviour, x.transpose(0, 1), memory.transpose(0, 1));
                if (mine.shape.SequenceEqual(output.shape) && (mine - output).abs().max().ToDouble()
                    <= tolerance * Math.Max(1, output.abs().max().ToDouble()))
                    return new Inspected(behaviour, "");
            }
        }
        return new Inspected(null, "no number of heads and activation reproduces its output");
    }

    private static Tensor Native(nn.Module layer, Tensor x, Tensor? memory) => layer switch
    {
        TransformerEncoderLayer encoder => encoder.forward(x),
        TransformerDecoderLayer decoder => decoder.forward(x, memory!, null, null, null, null),
        _ => throw new ArgumentException($"{layer.GetType().Name} is not a Transformer layer.", nameof(layer)),
    };

    // Sequence-first [3, 2, E] inputs (and [4, 2, E] memory for a decoder) from a fixed seed.
    private static (Tensor X, Tensor? Memory) ProbeInputs(nn.Module layer)
    {
        var norm = layer.named_parameters().First(p => p.name == "norm1.weight").parameter;
        using var generator = new Generator(20261202, norm.device);
        Tensor Input(long length) => randn([length, 2, norm.shape[0]], dtype: norm.dtype, device: norm.device,
            generator: generator);
        return (Input(3), layer is TransformerDecoderLayer ? Input(4) : null);
    }
}
