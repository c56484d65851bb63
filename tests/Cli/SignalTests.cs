using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;

namespace PerSampleGrads.Tests.Cli;

/// <summary>
/// SIGINT (Ctrl-C) and SIGTERM while psg waits for the PyTorch reference: the Python child is stopped, the exchange
/// folder removed, the terminal's cursor shown again, and the process ends as the signal's default action does. The
/// "Python" is a script that records its process id and sleeps, so the signal always arrives while it runs.
/// </summary>
[Trait("Category", "Cli")]
public sealed partial class SignalTests : IDisposable
{
    private const int SigInt = 2;
    private const int SigTerm = 15;
    private static readonly TimeSpan ChildWait = TimeSpan.FromSeconds(90);

    private readonly Psg _psg = new();

    public void Dispose() => _psg.Dispose();

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);

    private string SleepingPython(string pidFile) =>
        _psg.Script("python-that-sleeps", $"echo $$ > '{pidFile}'; exec sleep 300");

    [Theory]
    [InlineData(SigInt)]
    [InlineData(SigTerm)]
    public void A_signal_stops_the_python_child_and_removes_the_exchange_folder(int signal)
    {
        var pidFile = Path.Combine(_psg.Folder, "python.pid");
        using var psg = _psg.Start(["compare", "--reference", "pytorch", "--batch-size", "2"],
            new Dictionary<string, string?> { ["PSG_PYTHON"] = SleepingPython(pidFile) });
        int child = WaitForPid(pidFile, psg);
        Assert.NotEmpty(PsgFolders());  // psg's private temp folder with the exchange, while Python runs

        Assert.Equal(0, Kill(psg.Id, signal));
        var outcome = _psg.Finish(psg);

        Assert.True(outcome.ExitCode == 128 + signal, outcome.ToString());
        Assert.Contains("psg: interrupted", outcome.Errors);
        Assert.False(IsRunning(child), $"the Python child {child} still runs");
        Assert.Empty(PsgFolders());
    }

    [Fact]
    public void Ctrl_c_on_a_terminal_shows_the_cursor_again()
    {
        // util-linux's script gives psg a pseudo-terminal, so the progress display hides the cursor.
        if (!File.Exists("/usr/bin/script")) Assert.Skip("needs util-linux's script for a pseudo-terminal");
        var pidFile = Path.Combine(_psg.Folder, "python.pid");
        var command = $"exec dotnet '{Psg.Dll}' compare --reference pytorch --batch-size 2";
        using var terminal = _psg.Start(["-qfec", command, "/dev/null"],
            new Dictionary<string, string?> { ["PSG_PYTHON"] = SleepingPython(pidFile), ["TERM"] = "xterm" },
            program: "/usr/bin/script");
        int child = WaitForPid(pidFile, terminal);
        int psg = ParentOf(child);

        Assert.Equal(0, Kill(psg, SigInt));
        var outcome = _psg.Finish(terminal);

        const string hide = "\u001b[?25l", show = "\u001b[?25h";
        int hidden = outcome.Output.LastIndexOf(hide, StringComparison.Ordinal);
        Assert.True(hidden >= 0, $"the progress display never hid the cursor:{Environment.NewLine}{outcome}");
        Assert.True(outcome.Output.IndexOf(show, hidden, StringComparison.Ordinal) > hidden,
            $"the cursor stays hidden after Ctrl-C:{Environment.NewLine}{outcome}");
        Assert.False(IsRunning(child));
        Assert.Empty(PsgFolders());
    }

    // psg's own temp folder (psg-PID-*, holding the exchange folders). A process ended by a signal's default action
    // also leaves the .NET runtime's diagnostic sockets (dotnet-diagnostic-*, clr-debug-pipe-*): those are the
    // runtime's.
    private string[] PsgFolders() => Directory.GetDirectories(_psg.Temp, "psg-*");

    private static int WaitForPid(string pidFile, Process psg)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < ChildWait)
        {
            var text = File.Exists(pidFile) ? File.ReadAllText(pidFile).Trim() : "";
            if (int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
                return pid;
            if (psg.HasExited) Assert.Fail($"psg ended (exit {psg.ExitCode}) before it started the Python child");
            Thread.Sleep(50);
        }
        Assert.Fail($"psg did not start the Python child within {ChildWait.TotalSeconds} s");
        return -1;
    }

    // A process that has exited and been reaped has no /proc entry; a zombie no longer runs either.
    private static bool IsRunning(int pid)
    {
        var stat = $"/proc/{pid}/stat";
        if (!File.Exists(stat)) return false;
        try
        {
            var text = File.ReadAllText(stat);
            return text[(text.LastIndexOf(')') + 2)] != 'Z';
        }
        catch (IOException)
        {
            return false;
        }
    }

    private static int ParentOf(int pid)
    {
        var text = File.ReadAllText($"/proc/{pid}/stat");
        return int.Parse(text[(text.LastIndexOf(')') + 2)..].Split(' ')[1], CultureInfo.InvariantCulture);
    }
}
