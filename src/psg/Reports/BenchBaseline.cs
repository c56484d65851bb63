using System.Text.Json;
using PerSampleGrads.Benchmarking;
using PerSampleGrads.Cli.Runtime;
using PerSampleGrads.Runs;
using PerSampleGrads.Oracle;
using PerSampleGrads.Checking;

namespace PerSampleGrads.Cli.Reports;

/// <summary>
/// A committed <c>bench --json</c> file used as the baseline of <c>bench --baseline</c>: read and matched against the
/// run's workload before anything is timed (same model, device, dtype, TF32, loss; every batch size of the run
/// present).
/// </summary>
internal sealed class BenchBaseline
{
    private readonly Dictionary<long, Dictionary<string, double[]>> _samples;

    private BenchBaseline(string path, string machine, Dictionary<long, Dictionary<string, double[]>> samples)
    {
        Path = path;
        Machine = machine;
        _samples = samples;
    }

    /// <summary>Path of the baseline's JSON file, as given.</summary>
    public string Path { get; }

    /// <summary>The machine the baseline was recorded on, as the JSON says.</summary>
    public string Machine { get; }

    /// <summary>Reads <paramref name="file"/> and checks that it describes the workload of <paramref name="settings"/>
    /// at every size.</summary>
    public static BenchBaseline Load(FileInfo file, CompareSettings settings, IReadOnlyList<long> sizes)
    {
        Preflight.RequireReadableFile(file, "--baseline");
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(File.ReadAllText(file.FullName));
        }
        catch (JsonException e)
        {
            throw new UsageException($"--baseline {file.FullName} is not JSON: {e.Message}");
        }
        using (document)
        {
            try
            {
                return Read(file.FullName, document.RootElement, settings, sizes);
            }
            catch (Exception e) when (e is KeyNotFoundException or InvalidOperationException or FormatException)
            {
                throw new UsageException(
                    $"--baseline {file.FullName} is not a 'psg bench --json' file ({e.Message}); record one with psg "
                        + $"bench --json FILE.");
            }
        }
    }

    private static BenchBaseline Read(string path, JsonElement root, CompareSettings settings,
        IReadOnlyList<long> sizes)
    {
        var expected = new (string Field, string Value)[]
        {
            ("model", settings.Model.Name), ("device", settings.Device.ToString()),
            ("dtype", ElementTypes.Name(settings.DType)),
            ("loss", settings.Loss.ToString()),
        };
        foreach (var (field, value) in expected)
        {
            var recorded = root.GetProperty(field).GetString();
            if (recorded != value)
                throw new UsageException($"--baseline {path} was recorded with {field} {recorded}; this run has "
                    + $"{field} {value}. Compare like with like.");
        }
        bool tf32 = settings.Arithmetic.Tf32;
        if (root.GetProperty("tf32").GetBoolean() != tf32)
            throw new UsageException($"--baseline {path} was recorded with TF32 {(tf32 ? "off" : "on")}; this run "
                + $"has it {(tf32 ? "on" : "off")}.");

        var samples = new Dictionary<long, Dictionary<string, double[]>>();
        foreach (var size in root.GetProperty("sizes").EnumerateArray())
        {
            var contenders = size.GetProperty("contenders").EnumerateArray();
            samples[size.GetProperty("batchSize").GetInt64()] = contenders.ToDictionary(
                c => c.GetProperty("name").GetString() ?? throw new FormatException("a contender without a name"),
                c => c.GetProperty("samplesMs").EnumerateArray().Select(v => v.GetDouble()).ToArray());
        }
        var missing = sizes.Where(n => !samples.ContainsKey(n)).ToList();
        if (missing.Count > 0)
            throw new UsageException(
                $"--baseline {path} has no figures for N = {string.Join(", ", missing)} (it has N = "
                    + $"{string.Join(", ", samples.Keys)}).");
        return new BenchBaseline(path, root.GetProperty("machine").GetString() ?? "", samples);
    }

    /// <summary>The baseline's repeats of <paramref name="contender"/> at <paramref name="batchSize"/>, or null when it
    /// was not timed.</summary>
    public IReadOnlyList<double>? Samples(long batchSize, string contender) =>
        _samples.TryGetValue(batchSize, out var contenders) && contenders.TryGetValue(contender, out var values)
                                                            && values.Length > 0
            ? values
            : null;

    /// <summary>Each contender's verdict at one size; contenders the baseline lacks are left out.</summary>
    public List<BaselineResult> Compare(long batchSize, IEnumerable<BenchTiming> timings, BaselineCriteria criteria) =>
        [.. timings.Where(t => Samples(batchSize, t.Name) is not null)
            .Select(t => BaselineComparison.Compare(t.Name, Samples(batchSize, t.Name)!, t.Milliseconds, criteria))];
}
