using System.Globalization;
using System.Text.Json;
using PerSampleGrads.Cli;

namespace PerSampleGrads.Tests.Cli;

/// <summary>
/// <c>bench --baseline</c> end to end: a baseline file that cannot describe the run is refused before timing, and a
/// run against a baseline far faster (or slower) than any machine gives the verdict and the exit code.
/// </summary>
[Trait("Category", "Cli")]
public sealed class BaselineTests : IDisposable
{
    private static readonly Dictionary<string, string?> NoEnvironment = [];

    private readonly Psg _psg = new();

    public void Dispose() => _psg.Dispose();

    private static readonly string[] QuickBench =
        ["bench", "--model", "mlp", "--batch-sizes", "4", "--methods", "plain", "--repeats", "7", "--warmup", "1"];

    // A 'bench --json' document for mlp, N = 4, plain backward, with the given repeats.
    private string Baseline(double milliseconds, string model = "mlp", long batchSize = 4)
    {
        var document = new
        {
            machine = "a test baseline", model, device = "cpu", dtype = "float32", tf32 = false, loss = "CE/mean",
            warmUp = 1, repeats = 7,
            sizes = new[]
            {
                new
                {
                    batchSize,
                    contenders = new[]
                    {
                        new
                        {
                            name = "plain backward",
                            samplesMs = Enumerable.Range(0, 7).Select(i => milliseconds * (1 + i / 100.0)).ToArray(),
                        },
                    },
                },
            },
        };
        var name = $"baseline-{milliseconds.ToString(CultureInfo.InvariantCulture)}-{model}-{batchSize}.json";
        var path = Path.Combine(_psg.Folder, name);
        File.WriteAllText(path, JsonSerializer.Serialize(document));
        return path;
    }

    [Fact]
    public void A_run_far_slower_than_its_baseline_is_a_regression_with_exit_code_1()
    {
        var outcome = _psg.Run([.. QuickBench, "--baseline", Baseline(1e-6)], NoEnvironment);
        Assert.True(outcome.ExitCode == ExitCodes.Disagree, outcome.ToString());
        Assert.Contains("slower", outcome.Output);
        Assert.Contains("Slower than the baseline: plain backward", outcome.Output);
    }

    [Fact]
    public void A_run_far_faster_than_its_baseline_passes_and_says_faster()
    {
        var outcome = _psg.Run([.. QuickBench, "--baseline", Baseline(1e6)], NoEnvironment);
        Assert.True(outcome.ExitCode == ExitCodes.Agree, outcome.ToString());
        Assert.Contains("faster", outcome.Output);
        Assert.Contains("No contender is slower than the baseline", outcome.Output);
    }

    [Fact]
    public void A_baseline_of_another_model_is_refused_before_timing()
    {
        var outcome = _psg.Run([.. QuickBench, "--baseline", Baseline(1, model: "small-cnn")], NoEnvironment);
        Assert.True(outcome.ExitCode == ExitCodes.BadUsage, outcome.ToString());
        Assert.Contains("model small-cnn", Assert.Single(outcome.ErrorLines));
        Assert.DoesNotContain("plain backward", outcome.Output);
    }

    [Fact]
    public void A_baseline_without_the_batch_size_is_refused_before_timing()
    {
        var outcome = _psg.Run([.. QuickBench, "--baseline", Baseline(1, batchSize: 32)], NoEnvironment);
        Assert.True(outcome.ExitCode == ExitCodes.BadUsage, outcome.ToString());
        Assert.Contains("no figures for N = 4", Assert.Single(outcome.ErrorLines));
    }

    [Fact]
    public void A_baseline_that_is_not_bench_json_is_refused()
    {
        var path = Path.Combine(_psg.Folder, "not-json.json");
        File.WriteAllText(path, "{ \"model\": ");
        var outcome = _psg.Run([.. QuickBench, "--baseline", path], NoEnvironment);
        Assert.True(outcome.ExitCode == ExitCodes.BadUsage, outcome.ToString());
        Assert.Contains("is not JSON", Assert.Single(outcome.ErrorLines));
    }

    [Fact]
    public void The_committed_cpu_baselines_describe_a_run_psg_can_compare_with()
    {
        // Every committed CPU baseline loads against its own workload (model, N, device): a format change breaks here.
        var folder = Path.Combine(RepositoryRoot(), "docs", "bench");
        var files = Directory.GetFiles(folder, "*.json");
        Assert.NotEmpty(files);
        foreach (var file in files)
        {
            using var document = JsonDocument.Parse(File.ReadAllText(file));
            var root = document.RootElement;
            Assert.Equal("cpu", root.GetProperty("device").GetString());
            foreach (var size in root.GetProperty("sizes").EnumerateArray())
                foreach (var contender in size.GetProperty("contenders").EnumerateArray())
                    Assert.True(contender.GetProperty("samplesMs").GetArrayLength() >= 5,
                        $"{file}: too few repeats for the test");
        }
    }

    private static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null;
             directory = directory.Parent)
            if (File.Exists(Path.Combine(directory.FullName, "PerSampleGrads.sln"))) return directory.FullName;
        throw new InvalidOperationException($"No PerSampleGrads.sln above {AppContext.BaseDirectory}.");
    }
}
