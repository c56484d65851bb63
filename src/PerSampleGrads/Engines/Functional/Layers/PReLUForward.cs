using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PerSampleGrads.Engines.Functional.Layers;

/// <summary>
/// PReLU with per-sample slopes <c>[k, 1]</c> or <c>[k, C]</c>: <c>y = x</c> where <c>x &gt; 0</c>, else
/// <c>a[n, c] * x</c>, the slope broadcast over the positions after the channel dimension.
/// </summary>
public static class PReLUForward
{
    /// <summary>The batched forward.</summary>
    public static Tensor Forward(FunctionalCall call)
    {
        var prelu = (PReLU)call.Layer;
        var x = call.Input;
        long[] shape = [x.shape[0], prelu.num_parameters, .. Enumerable.Repeat(1L, Math.Max(0, (int)x.dim() - 2))];
        var slope = call.Parameters["weight"]!.reshape(shape);
        return where(x > 0, x, x * slope);
    }
}
