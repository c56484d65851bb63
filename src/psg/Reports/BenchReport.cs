using System.Text.Json;
using PerSampleGrads.Benchmarking;
using PerSampleGrads.Runs;
using PerSampleGrads.Interop;
using PerSampleGrads.Oracle;
using PerSampleGrads.Checking;

namespace PerSampleGrads.Cli.Reports;

/// <summary>Benchmark figures as JSON.</summary>
internal static class BenchReport
{
    public sealed record SizeResult(long BatchSize, IReadOnlyList<BenchTiming> Timings, PyTorchTimings? Peers,
        IReadOnlyDictionary<string, double>? ClippingPhasesMs = null);

    public static void Write(FileInfo file, CompareSettings settings, string machine, int warmUp, int repeats,
        int? chunkSize, IReadOnlyList<SizeResult> results)
    {
        file.Directory?.Create();
        var document = new
        {
            machine,
            model = settings.Model.Name,
            device = settings.Device.ToString(),
            dtype = ElementTypes.Name(settings.DType),
            tf32 = settings.Arithmetic.Tf32,
            loss = settings.Loss.ToString(),
            functionalChunkSize = chunkSize,
            warmUp,
            repeats,
            sizes = results.Select(r =>
            {
                var plain = r.Timings.FirstOrDefault(t => t.Name == BenchWorkload.PlainBackward);
                var floor = r.Timings.FirstOrDefault(t => t.Name == BenchWorkload.WriteFloor);
                return new
                {
                    batchSize = r.BatchSize,
                    clippingPhasesMs = r.ClippingPhasesMs,
                    contenders = r.Timings.Select(t => new
                    {
                        name = t.Name,
                        medianMs = t.Median,
                        minMs = t.Min,
                        maxMs = t.Max,
                        relativeSpread = t.RelativeSpread,
                        ratioToPlainBackward = plain is null ? (double?)null : t.Median / plain.Median,
                        ratioToWriteFloor = floor is null ? (double?)null : t.Median / floor.Median,
                        peakBytes = t.PeakBytes,
                        samplesMs = t.Milliseconds,
                    }),
                    pytorch = r.Peers is not { } peers ? null : new
                    {
                        versions = peers.Versions.ToString(),
                        threads = peers.Threads,
                        methods = peers.Methods.Select(m => new
                        {
                            name = m.Method,
                            medianMs = m.MedianSeconds * 1000,
                            ratioToOurPlainBackward = plain is null || m.MedianSeconds is null ? (double?)null
                                : m.MedianSeconds * 1000 / plain.Median,
                            samplesMs = m.Seconds.Select(x => x * 1000),
                            unsupported = m.UnsupportedReason,
                        }),
                    },
                };
            }),
        };
        File.WriteAllText(file.FullName, JsonSerializer.Serialize(document,
            new JsonSerializerOptions { WriteIndented = true }));
    }
}
