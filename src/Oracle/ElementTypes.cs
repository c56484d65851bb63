using static TorchSharp.torch;

namespace PerSampleGrads;

/// <summary>Element type names as PyTorch writes them (<c>float32</c>, <c>float64</c>): the one name table for ids,
/// reports, options and the PyTorch exchange.</summary>
public static class ElementTypes
{
    private static readonly (ScalarType Type, string Name)[] Names =
    [
        (ScalarType.Float64, "float64"), (ScalarType.Float32, "float32"), (ScalarType.Float16, "float16"),
        (ScalarType.BFloat16, "bfloat16"), (ScalarType.Int64, "int64"), (ScalarType.Bool, "bool"),
    ];

    /// <summary>The floating-point types a gradient can be computed and compared in, by name.</summary>
    public static IReadOnlyList<string> GradientTypeNames { get; } = ["float32", "float64"];

    /// <summary>PyTorch's name for <paramref name="dtype"/>.</summary>
    public static string Name(ScalarType dtype) =>
        Names.FirstOrDefault(n => n.Type == dtype).Name ?? dtype.ToString().ToLowerInvariant();

    /// <summary>The element type PyTorch calls <paramref name="name"/>.</summary>
    /// <exception cref="ArgumentException">The table has no such name.</exception>
    public static ScalarType Parse(string name)
    {
        foreach (var (type, known) in Names)
            if (known == name) return type;
        throw new ArgumentException($"Unknown element type '{name}'; known: "
            + $"{string.Join(", ", Names.Select(n => n.Name))}.", nameof(name));
    }
}
