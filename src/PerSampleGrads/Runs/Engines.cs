using PerSampleGrads.Engines;
using PerSampleGrads.Engines.Functional;
using PerSampleGrads.Engines.Hooks;
using static TorchSharp.torch;

namespace PerSampleGrads.Runs;

/// <summary>Creates the per-sample engines from their ids (<see cref="EngineId"/>).</summary>
public static class EngineCatalogue
{
    /// <summary>Creates the engine <paramref name="id"/> computing on <paramref name="device"/> with
    /// <paramref name="tf32"/>, auditing <paramref name="auditSamples"/> samples per call.</summary>
    public static IPerSampleGradientMethod Create(EngineId id, Device device, Tf32Mode tf32, int? chunkSize = null,
        int auditSamples = 0)
    {
        if (id == EngineId.Hooks)
            return new HookEngine(new HookEngineOptions { Device = device, Tf32 = tf32, AuditSamples = auditSamples });
        if (id == EngineId.Functional)
            return new FunctionalEngine(new FunctionalEngineOptions
                { Device = device, Tf32 = tf32, ChunkSize = chunkSize, AuditSamples = auditSamples });
        throw new ArgumentException($"{id} is not a per-sample engine: it returns norms and clipped sums.",
            nameof(id));
    }
}
