using System.Text.Json;
using PerSampleGrads.Cli;

namespace PerSampleGrads.Tests.Cli;

/// <summary>
/// An engine that refuses a zoo model by design (the clipping method and the LSTM's multi-tensor signature) is
/// reported with its problem and message, and the other engines are still compared: the run ends on their verdict,
/// not on the refusal. Before, <c>compare --model lstm</c> and <c>compare --all</c> with the default engines stopped
/// with exit code 2.
/// </summary>
[Trait("Category", "Cli")]
public sealed class CompareRefusalTests : IDisposable
{
    private readonly Psg _psg = new();

    public void Dispose() => _psg.Dispose();

    [Fact]
    public void A_refusing_engine_is_reported_and_the_others_are_compared()
    {
        var report = Path.Combine(_psg.Folder, "report");
        var outcome = _psg.Run("compare", "--model", "lstm", "--batch-size", "3", "--report", report);
        Assert.True(outcome.ExitCode == ExitCodes.Agree, outcome.ToString());
        Assert.Contains("clipping refused (UnsupportedLayers)", outcome.Output);
        Assert.Contains("'lstm' (LSTM)", outcome.Output);
        Assert.Contains("refused: clipping", outcome.Output);
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(report, "report.json")));
        var refusal = Assert.Single(json.RootElement.GetProperty("refusals").EnumerateArray());
        Assert.Equal("clipping", refusal.GetProperty("engine").GetString());
        Assert.Equal("UnsupportedLayers", refusal.GetProperty("problem").GetString());
        Assert.Equal(["hooks", "functional"], json.RootElement.GetProperty("engines").EnumerateArray()
            .Select(e => e.GetProperty("engine").GetString()));
    }

    [Fact]
    public void Compare_all_takes_the_clipping_method_and_reports_its_refusals()
    {
        var outcome = _psg.Run("compare", "--all", "--engines", "hooks,clipping");
        Assert.True(outcome.ExitCode == ExitCodes.Agree, outcome.ToString());
        Assert.Contains("clipping refused on lstm (UnsupportedLayers)", outcome.Output);
        Assert.Contains("clipping-sums max rel. error", outcome.Output);
    }
}
