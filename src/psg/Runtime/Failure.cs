using System.Reflection;
using System.Runtime.InteropServices;
using PerSampleGrads.Interop;

namespace PerSampleGrads.Cli.Runtime;

/// <summary>A command line that cannot run as given: the message says what to change. Exit code 2.</summary>
internal sealed class UsageException(string message) : Exception(message);

/// <summary>
/// Turns any exception that reaches <c>Main</c> into one line on standard error and an exit code: 2 for bad usage,
/// bad input or a problem of the environment (a missing Python, an unwritable path, too little memory), 3 for
/// anything else, which is a bug in psg (the stack trace is printed when <c>PSG_DEBUG=1</c>).
/// </summary>
internal static class Failure
{
    /// <summary>The environment variable that adds the stack trace to an internal error.</summary>
    public const string DebugVariable = "PSG_DEBUG";

    /// <summary>The exit code and the line for <paramref name="exception"/>.</summary>
    public static (int ExitCode, string Line) Describe(Exception exception)
    {
        var e = Unwrap(exception);
        return e switch
        {
            UsageException or PerSampleGradientsException or PyTorchReferenceException
                or ArgumentException or InvalidOperationException => (ExitCodes.BadUsage, e.Message),
            IOException or UnauthorizedAccessException => (ExitCodes.BadUsage, $"{e.Message}"),
            OutOfMemoryException => (ExitCodes.BadUsage, OutOfMemory(e.Message)),
            ExternalException when IsOutOfMemory(e.Message) => (ExitCodes.BadUsage, OutOfMemory(FirstLine(e.Message))),
            _ => (ExitCodes.InternalError,
                $"internal error ({e.GetType().Name}): {FirstLine(e.Message)} This is a bug in psg: "
                + $"please report it with the command "
                + $"line{(Debugging ? "." : $"; {DebugVariable}=1 prints the stack trace.")}"),
        };
    }

    /// <summary>
    /// Writes the line (and, for an internal error under <c>PSG_DEBUG=1</c>, the stack trace); returns the code.
    /// </summary>
    public static int Report(Exception exception)
    {
        var (code, message) = Describe(exception);
        // One line that says it all; what a message carries beyond it (the end of a failing script's output) follows
        // indented, so that the 'psg:' line stays the one to read.
        var lines = message.Split('\n').Select(l => l.TrimEnd('\r')).ToList();
        Console.Error.WriteLine($"psg: {lines[0]}");
        foreach (var detail in lines.Skip(1).Where(l => l.Trim().Length > 0)) Console.Error.WriteLine($"    {detail}");
        if (code == ExitCodes.InternalError && Debugging) Console.Error.WriteLine(exception);
        return code;
    }

    private static bool Debugging => Environment.GetEnvironmentVariable(DebugVariable) is "1" or "true";

    private static Exception Unwrap(Exception e)
    {
        while (true)
        {
            switch (e)
            {
                case TargetInvocationException { InnerException: { } inner }:
                    e = inner;
                    break;
                case TypeInitializationException { InnerException: { } inner }:
                    e = inner;
                    break;
                case AggregateException aggregate when aggregate.InnerExceptions.Count == 1:
                    e = aggregate.InnerExceptions[0];
                    break;
                default:
                    return e;
            }
        }
    }

    // libtorch's CPU allocator: "DefaultCPUAllocator: can't allocate memory: you tried to allocate N bytes";
    // CUDA's: "CUDA out of memory".
    private static bool IsOutOfMemory(string message) =>
        message.Contains("can't allocate memory", StringComparison.OrdinalIgnoreCase)
        || message.Contains("out of memory", StringComparison.OrdinalIgnoreCase);

    private static string OutOfMemory(string detail) =>
        $"out of memory ({detail.TrimEnd('.')}). Use a smaller --batch-size, "
        + "or --chunk-size to bound the functional engine.";

    private static string FirstLine(string message)
    {
        var line = message.Split('\n', 2)[0].Trim();
        return line.EndsWith('.') ? line : line + ".";
    }
}
