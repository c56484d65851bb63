using PerSampleGrads.Engines;
using System.Globalization;
using System.Text.Json;
using PerSampleGrads.Benchmarking;
using PerSampleGrads.Runs;
using PerSampleGrads.Zoo;
using static TorchSharp.torch;

namespace PerSampleGrads.Tests;

/// <summary>
/// The nightly timing job (<c>--filter Category=Timing</c>, excluded from the default run): a short benchmark on
/// <c>PSG_DEVICE</c>, checking only robust relations (each engine faster than the oracle loop at N &gt;= 16) and
/// recording the figures in the test output and in <c>timing-*.json</c> beside the test assembly. Absolute times are
/// never asserted.
/// </summary>
[Trait("Category", "Timing")]
public sealed class TimingTests
{
    public TimingTests() => TestSettings.RequireTorch();

    public static TheoryData<string, long> Workloads => new()
    {
        { ModelZoo.SmallCnn.Name, 16 },
        { ModelZoo.SmallCnn.Name, 64 },
        { ModelZoo.ResNet18GroupNorm.Name, 16 },
    };

    [Theory]
    [MemberData(nameof(Workloads))]
    public void Every_engine_is_faster_than_the_oracle_loop(string model, long batchSize)
    {
        var settings = new CompareSettings(ModelZoo.Get(model), batchSize, 1, TestSettings.Device, ScalarType.Float32,
            Tf32: false,
            LossFunction.CrossEntropy(), EngineId.PerSampleEngines);
        using var workload = new BenchWorkload(settings);
        var timings = BenchmarkRunner.Measure(workload.Contenders([BenchMethod.Plain,
                .. EngineId.PerSampleEngines.Select(e => BenchMethod.Of(e)), BenchMethod.Oracle]),
            settings.Device,
            warmUp: 1, repeats: 3, measureMemory: false);

        var figures = timings.ToDictionary(t => t.Name, t => t.Median);
        var output = TestContext.Current.TestOutputHelper;
        foreach (var t in timings)
            output?.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{model} N={batchSize} {settings.Device}: {t.Name,-15} median {t.Median,9:0.0} ms " +
                $"(x{t.Median / figures[BenchWorkload.PlainBackward]:0.00} plain backward)"));
        File.WriteAllText(Path.Combine(AppContext.BaseDirectory,
            $"timing-{model}-N{batchSize}-{settings.Device.type}.json".ToLowerInvariant()),
            JsonSerializer.Serialize(new { model, batchSize, device = settings.Device.ToString(),
                mediansMs = figures }));

        // Fastest repeat against fastest repeat: a shared VM stalls a process for 100-250 ms at times, which only ever
        // adds time, and with three repeats two stalled ones decide a median.
        var fastest = timings.ToDictionary(t => t.Name, t => t.Min);
        double oracle = fastest[BenchWorkload.OracleLoop];
        foreach (var engine in EngineId.PerSampleEngines.Select(e => e.Name))
            Assert.True(fastest[engine] < oracle, $"{engine} took {fastest[engine]:0.0} ms at best, the oracle loop " +
                $"{oracle:0.0} ms, at N = {batchSize}.");
    }
}
