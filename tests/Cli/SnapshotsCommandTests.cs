using PerSampleGrads.Cli;

namespace PerSampleGrads.Tests.Cli;

/// <summary>
/// <c>psg snapshots diff</c> and <c>accept</c> on a snapshots folder of their own: the pending change is told in
/// words (which parameter's per-sample norms, which engine's error bucket, old -> new), and accepting it replaces the
/// committed file and empties <c>__mismatch__/</c>.
/// </summary>
[Trait("Category", "Cli")]
public sealed class SnapshotsCommandTests : IDisposable
{
    private readonly Psg _psg = new();
    private readonly string _snapshots;

    public SnapshotsCommandTests()
    {
        _snapshots = Directory.CreateDirectory(Path.Combine(_psg.Folder, "snapshots")).FullName;
    }

    public void Dispose() => _psg.Dispose();

    private static string Snapshot(double secondNorm, string hooksBucket, string shape = "[4, 2, 4]") =>
        Template(secondNorm.ToString(System.Globalization.CultureInfo.InvariantCulture), hooksBucket, shape);

    private static string Template(string secondNorm, string hooksBucket, string shape) => $$"""
        {
          "Case": "conv1d-same-k4-B3-ce-mean",
          "DType": "float64",
          "BatchSize": 3,
          "Parameters": [
            { "Name": "0.weight", "Shape": "{{shape}}", "PerSampleGradientNorms": [ 1.20057, {{secondNorm}}, 1.0352 ] },
            { "Name": "0.bias", "Shape": "[4]", "PerSampleGradientNorms": [ 0.248712, 0.300642, 0.378353 ] }
          ],
          "MaxRelativeErrorAgainstTheOracle": { "Hooks": "{{hooksBucket}}", "Functional": "<=1e-13" }
        }
        """;

    private void Pending(string name, string json)
    {
        var mismatch = Directory.CreateDirectory(Path.Combine(_snapshots, "__mismatch__"));
        File.WriteAllText(Path.Combine(mismatch.FullName, name + ".json"), json);
    }

    [Fact]
    public void Diff_names_each_changed_norm_and_bucket_old_to_new_and_exits_1()
    {
        File.WriteAllText(Path.Combine(_snapshots, "conv.json"), Snapshot(1.67084, "<=1e-13"));
        Pending("conv", Snapshot(1.7, "<=1e-11", shape: "[4, 2, 3]"));
        Pending("brand-new", Snapshot(1, "<=1e-13"));

        var outcome = _psg.Run("snapshots", "diff", "--folder", _snapshots);

        Assert.True(outcome.ExitCode == ExitCodes.Disagree, outcome.ToString());
        Assert.Contains("Parameters[0.weight].PerSampleGradientNorms: 1 of 3 changed", outcome.Output);
        Assert.Contains("sample 1: 1.67084 -> 1.7 (rel. +1.75e-2)", outcome.Output);
        Assert.Contains("Parameters[0.weight].Shape: [4, 2, 4] -> [4, 2, 3]", outcome.Output);
        Assert.Contains("MaxRelativeErrorAgainstTheOracle.Hooks: <=1e-13 -> <=1e-11", outcome.Output);
        Assert.DoesNotContain("0.bias", outcome.Output);
        Assert.Contains("brand-new: new snapshot", outcome.Output);
    }

    [Fact]
    public void Diff_as_markdown_writes_a_table_per_snapshot_for_the_job_summary()
    {
        File.WriteAllText(Path.Combine(_snapshots, "conv.json"), Snapshot(1.67084, "<=1e-13"));
        Pending("conv", Snapshot(1.67084, "<=1e-9"));

        var outcome = _psg.Run("snapshots", "diff", "--folder", _snapshots, "--markdown");

        Assert.True(outcome.ExitCode == ExitCodes.Disagree, outcome.ToString());
        Assert.Contains("### `conv`", outcome.Output);
        Assert.Contains("| `MaxRelativeErrorAgainstTheOracle.Hooks` | <=1e-13 -> <=1e-9 |", outcome.Output);
    }

    [Fact]
    public void Accept_replaces_the_committed_snapshot_and_leaves_nothing_pending()
    {
        File.WriteAllText(Path.Combine(_snapshots, "conv.json"), Snapshot(1.67084, "<=1e-13"));
        var pending = Snapshot(1.7, "<=1e-13");
        Pending("conv", pending);

        var accepted = _psg.Run("snapshots", "accept", "--folder", _snapshots);
        Assert.True(accepted.ExitCode == ExitCodes.Agree, accepted.ToString());
        Assert.Equal(pending, File.ReadAllText(Path.Combine(_snapshots, "conv.json")));
        Assert.False(Directory.Exists(Path.Combine(_snapshots, "__mismatch__")));

        var diff = _psg.Run("snapshots", "diff", "--folder", _snapshots);
        Assert.True(diff.ExitCode == ExitCodes.Agree, diff.ToString());
        Assert.Contains("No pending snapshot changes", diff.Output);
    }

    [Fact]
    public void Accept_of_an_unknown_name_is_refused_and_changes_nothing()
    {
        Pending("conv", Snapshot(1.7, "<=1e-13"));
        var outcome = _psg.Run("snapshots", "accept", "nope", "--folder", _snapshots);
        Assert.True(outcome.ExitCode == ExitCodes.BadUsage, outcome.ToString());
        Assert.Contains("No pending snapshot named nope; pending: conv", Assert.Single(outcome.ErrorLines));
        Assert.True(File.Exists(Path.Combine(_snapshots, "__mismatch__", "conv.json")));
    }
}
