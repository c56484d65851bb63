using Spectre.Console;

namespace PerSampleGrads.Cli.Commands;

/// <summary>A status spinner on a terminal; nothing in logs, where every update would become a line.</summary>
internal static class Quiet
{
    public static void Status(string initial, Action<StatusContext?> work)
    {
        if (AnsiConsole.Profile.Capabilities.Interactive) AnsiConsole.Status().Start(initial, context => work(context));
        else work(null);
    }
}
