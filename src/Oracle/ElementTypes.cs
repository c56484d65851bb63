using static TorchSharp.torch;

namespace PerSampleGrads;

/// <summary>Element type names as PyTorch writes them (<c>float32</c>, <c>float64</c>), for ids, reports and
/// options.</summary>
public static class ElementTypes
{
    /// <summary>PyTorch's name for <paramref name="dtype"/>.</summary>
    public static string Name(ScalarType dtype) => dtype switch
    {
        ScalarType.Float64 => "float64",
        ScalarType.Float32 => "float32",
        ScalarType.Float16 => "float16",
        ScalarType.BFloat16 => "bfloat16",
        ScalarType.Int64 => "int64",
        _ => dtype.ToString().ToLowerInvariant(),
    };
}
