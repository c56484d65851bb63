using PerSampleGrads.Engines.Functional;
using PerSampleGrads.Engines.Hooks;
using static TorchSharp.torch;

namespace PerSampleGrads.Runs;

/// <summary>The engines by name, as the command line and reports know them.</summary>
public static class EngineCatalogue
{
    /// <summary>Every engine name.</summary>
    public static IReadOnlyList<string> Names { get; } = ["hooks", "functional"];

    /// <summary>The clipping method's name (norms and clipped sums, not per-sample gradients).</summary>
    public const string Clipping = "clipping";

    /// <summary>Creates the engine <paramref name="name"/> computing on <paramref name="device"/> with
    /// <paramref name="tf32"/>, auditing <paramref name="auditSamples"/> samples per call.</summary>
    public static IPerSampleGradientMethod Create(string name, Device device, Tf32Mode tf32, int? chunkSize = null,
        int auditSamples = 0) => name switch
    {
        "hooks" => new HookEngine(new HookEngineOptions { Device = device, Tf32 = tf32, AuditSamples = auditSamples }),
        "functional" => new FunctionalEngine(new FunctionalEngineOptions
            { Device = device, Tf32 = tf32, ChunkSize = chunkSize, AuditSamples = auditSamples }),
        _ => throw new ArgumentException($"Unknown engine '{name}'. Known engines: {string.Join(", ", Names)}."),
    };
}
