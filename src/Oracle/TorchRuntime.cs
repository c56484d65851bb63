using System.Text.RegularExpressions;
using static TorchSharp.torch;

namespace PerSampleGrads;

/// <summary>Checks that TorchSharp's native libraries load, and says in one line what is missing when they do
/// not.</summary>
public static partial class TorchRuntime
{
    private static readonly Lazy<string?> LoadProblem = new(Probe);

    /// <summary>Null when TorchSharp works; else one line naming the missing piece and the fix.</summary>
    public static string? Problem => LoadProblem.Value;

    /// <summary>Throws <see cref="InvalidOperationException"/> with <see cref="Problem"/> when TorchSharp cannot
    /// load.</summary>
    public static void EnsureLoaded()
    {
        if (Problem is { } problem) throw new InvalidOperationException(problem);
    }

    private static string? Probe()
    {
        try
        {
            using var t = ones(1);
            return null;
        }
        catch (Exception e) when (e is TypeInitializationException or DllNotFoundException or BadImageFormatException or
            NotSupportedException)
        {
            return Describe(e);
        }
    }

    /// <summary>One line for a failure to load TorchSharp's native library, naming a missing GLIBCXX version if
    /// any.</summary>
    internal static string Describe(Exception e)
    {
        var all = string.Join(" | ", Chain(e).Select(x => x.Message));
        var glibcxx = GlibcxxPattern().Match(all);
        if (glibcxx.Success)
            return $"TorchSharp cannot load its native library: the system libstdc++ lacks {glibcxx.Value} " +
                $"(TorchSharp 0.107 needs GCC 13's). Run scripts/setup.sh (on Debian 12 it installs libstdc++6 from " +
                $"Debian 13), then try again.";
        return $"TorchSharp cannot load its native library ({Chain(e).Last().Message.Split('\n')[0]}). Run " +
            $"scripts/setup.sh, and on a CUDA machine put your PyTorch's torch/lib on LD_LIBRARY_PATH.";
    }

    private static IEnumerable<Exception> Chain(Exception e)
    {
        for (var x = e; x is not null; x = x.InnerException) yield return x;
    }

    [GeneratedRegex(@"GLIBCXX_[0-9.]+[0-9]")]
    private static partial Regex GlibcxxPattern();
}
