using System.Diagnostics;

namespace PerSampleGrads.Tests;

/// <summary>
/// The machine set-up that the build runs (Directory.Build.targets calling scripts/setup.sh), exercised with
/// <c>dotnet build</c> on a tiny project in a temporary folder that imports the repository's targets exactly as
/// src/Oracle does, with its own stamp: a fresh machine without root stops the build with one error naming the
/// command, and a second build on a set-up machine does not run the set-up again.
/// </summary>
[Trait("Category", "Oracle")]
public sealed class MachineSetupTests : IDisposable
{
    private const string SimulateMissing = "PSG_SETUP_SIMULATE_MISSING";
    private const string SkipMachineSetup = "PSG_SKIP_MACHINE_SETUP";
    private const string CheckingMessage = "machine set-up: checking this machine";

    private readonly string _folder = Path.Combine(Path.GetTempPath(), $"psg-machine-setup-{Guid.NewGuid():N}");
    private readonly string? _repository = RepositoryRoot();

    private string Repository => _repository ?? throw new InvalidOperationException("No repository.");

    private string ProjectFile => Path.Combine(_folder, "tiny.proj");

    private string StampFile => Path.Combine(_folder, "obj", "machine-setup.stamp");

    // The tiny project, written for each test; skips the test where there is no source tree (a published bundle).
    private void WriteTinyProject()
    {
        if (_repository is null)
            Assert.Skip($"No PerSampleGrads.sln above {AppContext.BaseDirectory}: the build's machine set-up is "
                + "tested from the source tree (with the .NET SDK), not from a published bundle.");
        Directory.CreateDirectory(_folder);
        var targets = Path.Combine(_repository, "Directory.Build.targets");
        File.WriteAllText(ProjectFile, $"""
            <Project DefaultTargets="Build">
              <PropertyGroup><RunsMachineSetup>true</RunsMachineSetup></PropertyGroup>
              <Import Project="{targets}" />
              <Target Name="BeforeBuild" />
              <Target Name="Build" DependsOnTargets="BeforeBuild" />
            </Project>
            """);
    }

    [Fact]
    public void A_fresh_machine_without_root_stops_the_build_with_one_error_naming_the_command()
    {
        WriteTinyProject();
        var build = Build(simulateMissing: true);

        Assert.NotEqual(0, build.ExitCode);
        var errors = build.Output.Split('\n').Where(line => line.Contains("error PSG0001:", StringComparison.Ordinal))
            .Distinct().ToList();
        Assert.True(errors.Count == 1, $"expected one distinct error line, got {errors.Count}:\n{build.Output}");
        var error = errors[0];
        Assert.Contains("GLIBCXX_3.4.32", error, StringComparison.Ordinal);
        Assert.Contains("torch and numpy", error, StringComparison.Ordinal);
        var script = Path.Combine(Repository, "scripts", "setup.sh");
        Assert.Contains($"`sudo bash {script}`", error, StringComparison.Ordinal);
        Assert.False(File.Exists(StampFile), "a failed set-up must leave no stamp");
    }

    [Fact]
    public void A_second_build_does_not_run_the_set_up_again_until_the_machine_or_settings_change()
    {
        WriteTinyProject();
        if (Environment.GetEnvironmentVariable(SkipMachineSetup)?.Trim() == "1")
            Assert.Skip($"{SkipMachineSetup}=1: the machine set-up is turned off here, so its real check is not run.");

        var first = Build(simulateMissing: false);
        Assert.True(first.ExitCode == 0, first.Output);
        Assert.Contains(CheckingMessage, first.Output, StringComparison.Ordinal);
        var stamp = File.ReadAllText(StampFile);
        var written = File.GetLastWriteTimeUtc(StampFile);

        var second = Build(simulateMissing: false);
        Assert.True(second.ExitCode == 0, second.Output);
        Assert.DoesNotContain(CheckingMessage, second.Output, StringComparison.Ordinal);
        Assert.Equal(written, File.GetLastWriteTimeUtc(StampFile));

        // The stamp of another machine (a copied obj/ folder) does not count here: the check runs again.
        File.WriteAllText(StampFile, stamp.Replace("machine=", "machine=another-", StringComparison.Ordinal));
        var elsewhere = Build(simulateMissing: false);
        Assert.True(elsewhere.ExitCode == 0, elsewhere.Output);
        Assert.Contains(CheckingMessage, elsewhere.Output, StringComparison.Ordinal);
        Assert.Equal(stamp, File.ReadAllText(StampFile));

        // Nor does it hold for other settings: simulating a fresh machine runs the check, fails, and drops the stamp.
        var simulated = Build(simulateMissing: true);
        Assert.NotEqual(0, simulated.ExitCode);
        Assert.Contains(CheckingMessage, simulated.Output, StringComparison.Ordinal);
        Assert.False(File.Exists(StampFile), "a failed set-up must leave no stamp");
    }

    [Fact]
    public void A_build_that_installs_something_says_so_in_a_warning_and_records_the_stamp()
    {
        WriteTinyProject();
        // A stand-in for scripts/setup.sh on a fresh machine with root: it reports what it installed.
        var script = Path.Combine(_folder, "installs.sh");
        File.WriteAllText(script, "echo 'Installed libstdc++6 from Debian 13.' > \"$PSG_SETUP_REPORT\"\n");

        var build = Build(simulateMissing: false, $"-p:MachineSetupScript={script}");

        Assert.True(build.ExitCode == 0, build.Output);
        Assert.Contains("warning PSG0002: This build set the machine up (scripts/setup.sh, once per machine). "
            + "Installed libstdc++6 from Debian 13.", build.Output, StringComparison.Ordinal);
        Assert.True(File.Exists(StampFile), build.Output);
    }

    public void Dispose()
    {
        if (Directory.Exists(_folder)) Directory.Delete(_folder, recursive: true);
    }

    private (int ExitCode, string Output) Build(bool simulateMissing, params string[] properties)
    {
        var dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet";
        var start = new ProcessStartInfo(dotnet)
        {
            WorkingDirectory = _folder,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        string[] arguments = ["build", ProjectFile, "-nologo", "-v:m", "-m:1", "-nodeReuse:false", "-tl:off"];
        foreach (var argument in arguments.Concat(properties)) start.ArgumentList.Add(argument);
        start.Environment.Remove(SkipMachineSetup);
        if (simulateMissing) start.Environment[SimulateMissing] = "1";
        else start.Environment.Remove(SimulateMissing);

        using var process = Process.Start(start) ?? throw new InvalidOperationException($"{dotnet} did not start.");
        var standardError = process.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        var standardOutput = process.StandardOutput.ReadToEnd();
        if (!process.WaitForExit(TimeSpan.FromMinutes(2)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"dotnet build of the tiny project did not finish in 2 minutes:\n{standardOutput}");
        }
        return (process.ExitCode, standardOutput + standardError.Result);
    }

    private static string? RepositoryRoot()
    {
        for (var folder = new DirectoryInfo(AppContext.BaseDirectory); folder is not null; folder = folder.Parent)
            if (File.Exists(Path.Combine(folder.FullName, "PerSampleGrads.sln"))) return folder.FullName;
        return null;
    }
}
