using TorchSharp;
using static TorchSharp.torch;

namespace PerSampleGrads;

/// <summary>
/// The arithmetic a computation runs in: its element type, and for float32 whether matrix products and convolutions
/// use TF32 (10-bit mantissa on NVIDIA tensor cores). The one type for what reports, tolerances and options call
/// <c>float64</c>, <c>float32</c> and <c>float32+TF32</c>.
/// </summary>
public sealed record Arithmetic
{
    /// <summary>IEEE float64.</summary>
    public static Arithmetic Float64 { get; } = new(ScalarType.Float64);

    /// <summary>IEEE float32 (CPU; CUDA with TF32 off).</summary>
    public static Arithmetic Float32 { get; } = new(ScalarType.Float32);

    /// <summary>Float32 with TF32 products.</summary>
    public static Arithmetic Float32Tf32 { get; } = new(ScalarType.Float32, tf32: true);

    /// <summary>The arithmetics the tools run, in <see cref="Name"/> order of precision.</summary>
    public static IReadOnlyList<Arithmetic> Known { get; } = [Float64, Float32, Float32Tf32];

    /// <param name="dtype">Element type.</param>
    /// <param name="tf32">Whether float32 products use TF32; only float32 has a TF32 form.</param>
    public Arithmetic(ScalarType dtype, bool tf32 = false)
    {
        if (tf32 && dtype != ScalarType.Float32)
            throw new ArgumentException($"TF32 is a float32 arithmetic; {ElementTypes.Name(dtype)} has none.",
                nameof(tf32));
        DType = dtype;
        Tf32 = tf32;
    }

    /// <summary>Element type.</summary>
    public ScalarType DType { get; }

    /// <summary>Whether float32 matrix products and convolutions use TF32.</summary>
    public bool Tf32 { get; }

    /// <summary><c>float64</c>, <c>float32</c> or <c>float32+TF32</c>.</summary>
    public string Name => Tf32 ? $"{ElementTypes.Name(DType)}+TF32" : ElementTypes.Name(DType);

    /// <summary>The TF32 switch a computation in this arithmetic runs with.</summary>
    public Tf32Mode Tf32Mode => Tf32 ? Tf32Mode.ForceOn : Tf32Mode.ForceOff;

    /// <summary>
    /// The arithmetic a computation in <paramref name="dtype"/> gets on <paramref name="device"/> when TF32 is
    /// <paramref name="tf32Requested"/>: TF32 only for float32 on CUDA (it does not exist elsewhere).
    /// </summary>
    public static Arithmetic On(Device device, ScalarType dtype, bool tf32Requested) =>
        new(dtype, tf32Requested && dtype == ScalarType.Float32 && device.type == DeviceType.CUDA);

    /// <summary>The arithmetic named <paramref name="name"/> (<see cref="Name"/>).</summary>
    /// <exception cref="ArgumentException">No known arithmetic has that name.</exception>
    public static Arithmetic Parse(string name) =>
        Known.FirstOrDefault(a => a.Name == name) ?? throw new ArgumentException(
            $"Unknown arithmetic '{name}'; known: {string.Join(", ", Known.Select(a => a.Name))}.", nameof(name));

    /// <inheritdoc/>
    public override string ToString() => Name;
}
