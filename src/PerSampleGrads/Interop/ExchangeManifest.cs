using System.Text.Json;
using System.Text.Json.Serialization;

namespace PerSampleGrads.Interop;

// The JSON documents of the exchange folder, in both directions. Property names are snake_case on the wire
// (problem, batch_size, requires_grad, ...), as tools/pytorch_reference/exchange.py reads and writes them.

/// <summary>One tensor of the exchange: its <c>.npy</c> file (relative to the folder), shape and element type
/// name.</summary>
internal sealed record ExchangeTensor(string Name, string File, long[] Shape,
    [property: JsonPropertyName("dtype")] string DType);

/// <summary>A parameter: its tensor and whether it is trainable.</summary>
internal sealed record ExchangeParameter(string Name, string File, long[] Shape,
    [property: JsonPropertyName("dtype")] string DType, bool RequiresGrad);

/// <summary>The loss: <c>CE</c>, <c>NLL</c>, <c>MSE</c>, <c>L1</c> or a custom loss's name; <c>sum</c> or
/// <c>mean</c>.</summary>
internal sealed record ExchangeLoss(string Name, string Reduction, bool Custom);

/// <summary>
/// <c>request.json</c>: what PyTorch must rebuild (architecture by name, weights by qualified name), the batch, the
/// loss and the run's element type.
/// </summary>
internal sealed record ExchangeRequest(
    int Format,
    string Problem,
    string Architecture,
    [property: JsonPropertyName("dtype")] string DType,
    long BatchSize,
    ExchangeLoss Loss,
    ExchangeTensor Inputs,
    ExchangeTensor Targets,
    IReadOnlyList<ExchangeParameter> Parameters,
    IReadOnlyList<ExchangeTensor> Buffers,
    IReadOnlyList<string> TrainingModules);

/// <summary>The versions the script reports (also the output of its <c>versions</c> command).</summary>
internal sealed record ExchangeVersions(string Python, string Torch, string Numpy, string? VmapApi,
    bool ExpandedWeights, int Threads);

/// <summary>One per-sample gradient file of a method's answer.</summary>
internal sealed record ExchangeGradient(string Name, string File, long[] Shape);

/// <summary>One method's outcome: <c>ok</c> with gradients or timings, or <c>unsupported</c> with PyTorch's
/// reason.</summary>
internal sealed record ExchangeMethod(
    string Name,
    [property: JsonPropertyName("dtype")] string DType,
    string Status,
    string? Reason,
    double? Seconds,
    IReadOnlyList<ExchangeGradient>? Gradients,
    IReadOnlyList<double>? SecondsPerRepeat,
    double? MedianSeconds);

/// <summary><c>result/result.json</c>: the script's answer.</summary>
internal sealed record ExchangeResult(
    int Format,
    string Problem,
    string Architecture,
    ExchangeVersions Versions,
    int Threads,
    IReadOnlyList<ExchangeMethod> Methods,
    int? Repeats,
    int? Warmup);

/// <summary>Serialisation settings shared by both directions.</summary>
internal static class ExchangeJson
{
    /// <summary>The format version both sides agree on.</summary>
    public const int Format = 1;

    /// <summary>snake_case names, indented, nulls omitted.</summary>
    public static JsonSerializerOptions Options { get; } = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>Reads a document; the error names the file and what is wrong with it.</summary>
    public static T Read<T>(string path)
    {
        try
        {
            return JsonSerializer.Deserialize<T>(File.ReadAllText(path), Options)
                ?? throw new InvalidDataException($"{path} holds null.");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path} is not a valid {typeof(T).Name}: {e.Message}", e);
        }
    }

    /// <summary>Writes a document.</summary>
    public static void Write<T>(string path, T value) => File.WriteAllText(path,
        JsonSerializer.Serialize(value, Options));
}
