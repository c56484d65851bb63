using static PerSampleGrads.Maths.PerSampleContractions;
using static TorchSharp.torch;

namespace PerSampleGrads.Engines.Functional.Layers;

/// <summary>Linear with per-sample weights: <c>y[n, l] = W[n] x[n, l] + b[n]</c>, one batched matrix product.</summary>
public static class LinearForward
{
    /// <summary>The batched forward.</summary>
    public static Tensor Forward(FunctionalCall call)
    {
        var weight = call.Parameters["weight"]!;
        var bias = call.Parameters["bias"];
        var y = bmm(FlattenPositions(call.Input), weight.transpose(1, 2));
        if (bias is not null) y = y + bias.unsqueeze(1);
        return y.reshape([.. call.Input.shape[..^1], weight.shape[1]]);
    }
}
