using static TorchSharp.torch;

namespace PerSampleGrads.Testing.Specs;

/// <summary>
/// One layer of a generated architecture, as data. Input sizes are not stored: they follow from the layers before
/// it, so removing or shrinking a layer keeps the rest meaningful, and <see cref="Apply"/> says whether the layer still
/// fits (the shrinkers keep only candidates that do).
/// </summary>
public abstract record LayerSpec
{
    /// <summary>
    /// The fewest values a generated GroupNorm group or LayerNorm normalises. Over one value the output ignores the
    /// input, and its exact zero gradient comes out in float32 as rounding noise amplified by 1/sqrt(eps) = 316 (seen:
    /// 1.4e-4 against the float32 tolerance of 1e-4, from <c>[1x3] LayerNorm(3)+AvgPool1d(2)+GroupNorm(1,1)</c>); over
    /// two or three values nearly equal inputs do the same. Real models normalise many values; a rule error shows at
    /// four.
    /// </summary>
    public const long MinimumNormalizedValues = 4;

    /// <summary>The sample shape after this layer, or null when the layer does not fit <paramref
    /// name="input"/>.</summary>
    public abstract SampleShape? Apply(SampleShape input);

    /// <summary>Builds the TorchSharp module for <paramref name="input"/> (which <see cref="Apply"/>
    /// accepted).</summary>
    public abstract nn.Module<Tensor, Tensor> Build(SampleShape input);

    /// <summary>One readable token: <c>Conv2d(3->4,k3,s2,p1,d1,g1)</c>.</summary>
    public abstract string Describe(SampleShape input);

    /// <summary>Simpler variants of this layer, for shrinking (not necessarily valid for the surrounding
    /// shapes).</summary>
    public virtual IEnumerable<LayerSpec> Simpler() => [];

    /// <summary>Whether the module stays in training mode after the model is put in eval mode (fault layers
    /// only).</summary>
    public virtual bool StaysInTraining => false;

    /// <summary>What this layer exercises, for FsCheck's classification of the generated cases.</summary>
    public virtual IEnumerable<string> Exercises(SampleShape input) => [];

    /// <summary>
    /// The shapes through <paramref name="layers"/>: the input first, then after each layer; null when one does not
    /// fit.
    /// </summary>
    public static List<SampleShape>? Walk(SampleShape input, IEnumerable<LayerSpec> layers)
    {
        var shapes = new List<SampleShape> { input };
        foreach (var layer in layers)
        {
            var next = layer.Apply(shapes[^1]);
            if (next is null || next.Dims.Any(d => d < 1)) return null;
            shapes.Add(next);
        }
        return shapes;
    }
}
