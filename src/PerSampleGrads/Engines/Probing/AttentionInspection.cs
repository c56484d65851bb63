using System.Runtime.CompilerServices;
using TorchSharp;
using TorchSharp.Modules;
using PerSampleGrads.Maths;
using static TorchSharp.torch;

namespace PerSampleGrads.Engines.Probing;

/// <summary>What a MultiheadAttention does that TorchSharp 0.107 (a native module) does not expose.</summary>
/// <param name="Heads">Number of heads H.</param>
/// <param name="ZeroAttention">Whether <c>add_zero_attn</c> is on.</param>
public sealed record AttentionBehaviour(long Heads, bool ZeroAttention);

/// <summary>
/// A MultiheadAttention's parameters by role: input projections <c>W [..., E, E_in]</c> and biases <c>[..., E]</c>
/// for queries, keys and values (slices of <c>in_proj_weight</c>/<c>in_proj_bias</c>, or <c>q/k/v_proj_weight</c>
/// when kdim or vdim differ from E), <c>bias_k</c>/<c>bias_v</c> (<c>add_bias_kv</c>) and the output projection.
/// Works for the layer's own tensors and for per-sample copies with a leading sample dimension alike.
/// </summary>
/// <param name="Query">W_q.</param>
/// <param name="Key">W_k.</param>
/// <param name="Value">W_v.</param>
/// <param name="QueryBias">b_q, or null.</param>
/// <param name="KeyBias">b_k, or null.</param>
/// <param name="ValueBias">b_v, or null.</param>
/// <param name="BiasKey"><c>bias_k</c> <c>[..., 1, 1, E]</c>, or null.</param>
/// <param name="BiasValue"><c>bias_v</c> <c>[..., 1, 1, E]</c>, or null.</param>
/// <param name="Output"><c>out_proj.weight</c>.</param>
/// <param name="OutputBias"><c>out_proj.bias</c>, or null.</param>
public sealed record AttentionParameters(Tensor Query, Tensor Key, Tensor Value, Tensor? QueryBias, Tensor? KeyBias,
    Tensor? ValueBias, Tensor? BiasKey, Tensor? BiasValue, Tensor Output, Tensor? OutputBias)
{
    /// <summary>The roles, from a lookup by local parameter name.</summary>
    public static AttentionParameters Of(Func<string, Tensor?> parameter)
    {
        var output = parameter("out_proj.weight")!;
        long e = output.shape[^1];
        Tensor q, k, v;
        if (parameter("in_proj_weight") is { } packed)
            (q, k, v) = (packed.narrow(-2, 0, e), packed.narrow(-2, e, e), packed.narrow(-2, 2 * e, e));
        else
            (q, k, v) = (parameter("q_proj_weight")!, parameter("k_proj_weight")!, parameter("v_proj_weight")!);
        var bias = parameter("in_proj_bias");
        return new AttentionParameters(q, k, v, bias?.narrow(-1, 0, e), bias?.narrow(-1, e, e),
            bias?.narrow(-1, 2 * e, e), parameter("bias_k"), parameter("bias_v"), output,
            parameter("out_proj.bias"));
    }
}

/// <summary>
/// Finds a MultiheadAttention's number of heads and <c>add_zero_attn</c> by running it (<c>forward</c>, no hooks, no
/// gradients) on a small seeded input and recomputing it in managed code (<see cref="AttentionCore"/>) for every
/// divisor H of E with and without zero attention: the first configuration that reproduces output and weights is
/// its own. Cached per module. <see cref="RefuseDropout"/> checks, in training mode, that two forwards agree.
/// </summary>
public static class AttentionInspection
{
    private static readonly ConditionalWeakTable<MultiheadAttention, AttentionBehaviour> Cache = new();

    /// <summary>The behaviour of <paramref name="attention"/>; throws when no configuration reproduces it.</summary>
    public static AttentionBehaviour Inspect(MultiheadAttention attention, string path)
    {
        RefuseDropout(attention, path);
        if (Cache.TryGetValue(attention, out var known)) return known;
        var behaviour = Probe(attention, path);
        Cache.AddOrUpdate(attention, behaviour);
        return behaviour;
    }

    /// <summary>In training mode, refuses a layer whose two forwards on one input differ (dropout above 0).</summary>
    public static void RefuseDropout(MultiheadAttention attention, string path)
    {
        if (!attention.training) return;
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var (q, k, v) = ProbeInputs(attention);
        var first = attention.forward(q, k, v, null, false, null).Item1;
        var second = attention.forward(q, k, v, null, false, null).Item1;
        if (!first.equal(second).all().item<bool>())
            throw new PerSampleGradientsException(Problem.UnsupportedLayers,
                $"MultiheadAttention '{path}' applies dropout in training mode: its output for a sample is random, " +
                "so a per-sample gradient is not defined. Create it with dropout 0, or put it in eval mode.");
    }

    private static AttentionBehaviour Probe(MultiheadAttention attention, string path)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var (q, k, v) = ProbeInputs(attention);
        var (output, weights) = attention.forward(q, k, v, null, true, null);
        var parameters = AttentionParameters.Of(name => attention.get_parameter(name)?.detach());
        long e = parameters.Output.shape[0];
        double tolerance = q.dtype == ScalarType.Float64 ? 1e-10 : 1e-4;
        for (long heads = 1; heads <= e; heads++)
        {
            if (e % heads != 0) continue;
            foreach (var zero in new[] { false, true })
            {
                var (mine, myWeights) = Recompute(parameters, q, k, v, heads, zero);
                if (Close(mine, output.transpose(0, 1), tolerance) && Close(myWeights, weights, tolerance))
                    return new AttentionBehaviour(heads, zero);
            }
        }
        throw new PerSampleGradientsException(Problem.UnsupportedLayers,
            $"MultiheadAttention '{path}': no number of heads reproduces its output, so no rule can follow it. " +
            "Freeze its parameters, or use the oracle.");
    }

    private static (Tensor Output, Tensor Weights) Recompute(AttentionParameters p, Tensor q, Tensor k, Tensor v,
        long heads, bool zero)
    {
        Tensor Project(Tensor x, Tensor w, Tensor? b) => b is null ? matmul(x, w.t()) : matmul(x, w.t()) + b;
        var qs = q.transpose(0, 1);
        var ks = k.transpose(0, 1);
        var vs = v.transpose(0, 1);
        long n = qs.shape[0];
        var (context, weights) = AttentionCore.Attend(Project(qs, p.Query, p.QueryBias), Project(ks, p.Key,
            p.KeyBias), Project(vs, p.Value, p.ValueBias), heads, p.BiasKey?.reshape(1, 1, -1).expand(n, 1, -1),
            p.BiasValue?.reshape(1, 1, -1).expand(n, 1, -1), zero, null, null);
        return (Project(context, p.Output, p.OutputBias), weights);
    }

    private static bool Close(Tensor a, Tensor b, double tolerance) =>
        a.shape.SequenceEqual(b.shape) && (a - b).abs().max().ToDouble()
        <= tolerance * Math.Max(1, b.abs().max().ToDouble());

    // Sequence-first [L, 2, E] queries and [S, 2, kdim/vdim] keys and values from a fixed seed.
    private static (Tensor Q, Tensor K, Tensor V) ProbeInputs(MultiheadAttention attention)
    {
        var p = AttentionParameters.Of(name => attention.get_parameter(name));
        using var generator = new Generator(20261201, p.Output.device);
        Tensor Input(long length, long width) => randn([length, 2, width], dtype: p.Output.dtype,
            device: p.Output.device, generator: generator);
        return (Input(3, p.Query.shape[1]), Input(4, p.Key.shape[1]), Input(4, p.Value.shape[1]));
    }
}
