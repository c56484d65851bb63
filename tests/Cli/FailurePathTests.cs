using PerSampleGrads.Cli;

namespace PerSampleGrads.Tests.Cli;

/// <summary>
/// Every way a psg run can fail ends with one <c>psg:</c> line on standard error and exit code 2 (usage, input,
/// environment), before any computing where the failure can be known in advance, and leaves nothing in the temp
/// directory. Each test runs the built program.
/// </summary>
[Trait("Category", "Cli")]
public sealed class FailurePathTests : IDisposable
{
    private readonly Psg _psg = new();

    public void Dispose() => _psg.Dispose();

    // The oracle's table title: present only when computing happened.
    private const string Computed = "against the float64 oracle";

    private static void AssertRefused(PsgOutcome outcome, params string[] fragments)
    {
        Assert.True(outcome.ExitCode == ExitCodes.BadUsage, outcome.ToString());
        var line = Assert.Single(outcome.ErrorLines);
        Assert.StartsWith("psg: ", line);
        foreach (var fragment in fragments) Assert.Contains(fragment, line);
        Assert.DoesNotContain(Computed, outcome.Output);
    }

    [Fact]
    public void A_report_path_that_is_an_existing_file_is_refused_before_computing()
    {
        var file = Path.Combine(_psg.Folder, "report");
        File.WriteAllText(file, "keep me");
        AssertRefused(_psg.Run("compare", "--report", file), "--report", "is a file");
        Assert.Equal("keep me", File.ReadAllText(file));
        Assert.Empty(_psg.LeftInTemp());
    }

    [Fact]
    public void A_report_folder_that_cannot_be_created_is_refused_before_computing()
    {
        var file = Path.Combine(_psg.Folder, "plain-file");
        File.WriteAllText(file, "");
        AssertRefused(_psg.Run("compare", "--report", Path.Combine(file, "reports")), "--report", "not writable");
    }

    [Fact]
    public void Compare_all_with_a_model_loss_or_report_of_its_own_is_refused_before_computing()
    {
        AssertRefused(_psg.Run("compare", "--all", "--model", "mlp", "--reduction", "sum"),
            "--all", "--model", "--reduction");
        AssertRefused(_psg.Run("compare", "--all", "--report", _psg.Folder), "--all", "--report");
    }

    [Fact]
    public void Bench_json_pointing_at_a_folder_is_refused_before_timing()
    {
        AssertRefused(_psg.Run("bench", "--json", _psg.Folder, "--methods", "plain"), "--json", "is a folder");
    }

    [Fact]
    public void Bench_json_in_a_folder_that_cannot_be_created_is_refused_before_timing()
    {
        var file = Path.Combine(_psg.Folder, "plain-file");
        File.WriteAllText(file, "");
        var outcome = _psg.Run("bench", "--json", Path.Combine(file, "figures.json"), "--methods", "plain");
        AssertRefused(outcome, "--json", "not writable");
        Assert.DoesNotContain("plain backward", outcome.Output);
    }

    [Fact]
    public void A_missing_python_for_the_pytorch_reference_is_refused_with_the_install_hint_before_computing()
    {
        var outcome = _psg.Run(["compare", "--reference", "pytorch"],
            new Dictionary<string, string?> { ["PSG_PYTHON"] = Path.Combine(_psg.Folder, "no-such-python") });
        AssertRefused(outcome, "no-such-python", "PSG_PYTHON", "python3-torch");
    }

    [Fact]
    public void A_python_without_torch_ends_with_the_install_hint_and_exit_code_2()
    {
        // The reference script's own answer when torch is missing: its message and exit status 3.
        var python = _psg.Script("python-without-torch", "echo 'pytorch_reference: No module named torch' >&2; exit 3");
        var outcome = _psg.Run(["compare", "--reference", "pytorch", "--batch-size", "2"],
            new Dictionary<string, string?> { ["PSG_PYTHON"] = python });
        Assert.True(outcome.ExitCode == ExitCodes.BadUsage, outcome.ToString());
        var line = Assert.Single(outcome.ErrorLines, l => l.StartsWith("psg: ", StringComparison.Ordinal));
        Assert.Contains("No module named torch", line);
        Assert.Contains("python3-torch", line);
        Assert.Empty(_psg.LeftInTemp());
    }

    [Fact]
    public void A_failing_python_for_bench_peers_ends_with_one_line_its_output_indented_and_exit_code_2()
    {
        var python = _psg.Script("python-that-crashes", "echo 'Segmentation fault' >&2; exit 139");
        string[] arguments =
            ["bench", "--peers", "pytorch", "--methods", "plain", "-n", "2", "--repeats", "1", "--warmup", "0"];
        var outcome = _psg.Run(arguments,
            new Dictionary<string, string?> { ["PSG_PYTHON"] = python });
        Assert.True(outcome.ExitCode == ExitCodes.BadUsage, outcome.ToString());
        // One 'psg:' line; the script's output follows indented, as detail.
        var line = Assert.Single(outcome.ErrorLines, l => l.StartsWith("psg: ", StringComparison.Ordinal));
        Assert.StartsWith("psg: The PyTorch reference failed", line);
        Assert.Contains("status 139", line);
        var details = outcome.Errors.Split('\n', StringSplitOptions.RemoveEmptyEntries).Skip(1).ToList();
        Assert.All(details, d => Assert.StartsWith("    ", d));
        Assert.Contains(details, d => d.Contains("Segmentation fault", StringComparison.Ordinal));
        Assert.Empty(_psg.LeftInTemp());
    }

    [Fact]
    public void A_batch_size_whose_results_cannot_fit_in_memory_is_refused_before_computing()
    {
        AssertRefused(_psg.Run("compare", "--model", "resnet18-gn", "--batch-size", "100000000"),
            "need at least", "available", "--batch-size");
    }

    [Fact]
    public void Bench_refuses_a_batch_size_whose_result_cannot_fit_in_memory()
    {
        AssertRefused(_psg.Run("bench", "--model", "resnet18-gn", "--batch-sizes", "16,100000000"),
            "need at least", "--batch-sizes");
    }

    [Theory]
    [InlineData("2147483647")]
    [InlineData("0")]
    [InlineData("-3")]
    public void Thread_counts_outside_one_to_four_per_processor_are_refused(string threads)
    {
        AssertRefused(_psg.Run("compare", "--threads", threads), "--threads must be between 1 and", threads);
    }

    [Fact]
    public void Engines_given_as_an_empty_list_ask_for_at_least_one()
    {
        AssertRefused(_psg.Run("compare", "--engines", ""), "at least one engine", "hooks, functional");
    }

    [Fact]
    public void An_unknown_engine_is_named()
    {
        AssertRefused(_psg.Run("compare", "--engines", "hooks,vmap"), "Unknown engine 'vmap'");
    }

    [Fact]
    public void Sweep_with_batch_sizes_is_refused_instead_of_ignoring_the_sizes()
    {
        AssertRefused(_psg.Run("bench", "--sweep", "--batch-sizes", "4"), "--sweep", "--batch-sizes");
    }

    [Fact]
    public void An_unknown_option_value_is_a_usage_error()
    {
        var outcome = _psg.Run("compare", "--model", "resnet50");
        Assert.True(outcome.ExitCode == ExitCodes.BadUsage, outcome.ToString());
        Assert.All(outcome.ErrorLines, l => Assert.StartsWith("psg: ", l));
    }

    [Fact]
    public void Where_the_compute_threads_cannot_be_started_psg_refuses_instead_of_hanging()
    {
        // A per-user process limit (ulimit -u) for an unprivileged user stands in for a container's pids limit; root
        // ignores the limit, so the run drops to 'nobody'.
        if (!OperatingSystem.IsLinux() || Environment.UserName != "root" || !File.Exists("/usr/bin/setpriv")
            || !File.Exists("/usr/bin/prlimit"))
            Assert.Skip("needs Linux, root, setpriv and prlimit to run psg as an unprivileged user under a process "
                + "limit");
        const UnixFileMode everyone = (UnixFileMode)0x1ff;
        File.SetUnixFileMode(_psg.Folder, everyone);
        File.SetUnixFileMode(_psg.Temp, everyone);
        string[] asNobody = ["--reuid=65534", "--regid=65534", "--clear-groups", "env", $"HOME={_psg.Temp}"];
        using (var probe = _psg.Start([.. asNobody, "dotnet", Psg.Dll, "--help"], new Dictionary<string, string?>(),
                   program: "/usr/bin/setpriv"))
        {
            if (_psg.Finish(probe).ExitCode != 0) Assert.Skip("the unprivileged user 'nobody' cannot run dotnet and "
                + "psg here");
        }
        string threads = (4 * Environment.ProcessorCount).ToString(System.Globalization.CultureInfo.InvariantCulture);
        using var process = _psg.Start(
            [.. asNobody, "prlimit", "--nproc=12", "dotnet", Psg.Dll, "compare", "--threads", threads],
            new Dictionary<string, string?>(), program: "/usr/bin/setpriv");
        var outcome = _psg.Finish(process);
        AssertRefused(outcome, "Cannot start", "compute threads", "--threads");
    }
}
