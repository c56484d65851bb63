namespace PerSampleGrads.Interop;

/// <summary>How to run the PyTorch reference.</summary>
public sealed record PyTorchReferenceOptions
{
    /// <summary>The environment variable naming the Python to use.</summary>
    public const string PythonVariable = "PSG_PYTHON";

    /// <summary>The Python used when neither <see cref="Python"/> nor <c>PSG_PYTHON</c> is set (Debian's, with
    /// python3-torch).</summary>
    public const string DefaultPython = "/usr/bin/python3";

    /// <summary>The Python executable; null reads <c>PSG_PYTHON</c>, else <see cref="DefaultPython"/>.</summary>
    public string? Python { get; init; }

    /// <summary>PyTorch's intra-op thread count (<c>torch.set_num_threads</c>); null leaves PyTorch's
    /// default.</summary>
    public int? Threads { get; init; }

    /// <summary>
    /// The architecture name the script builds (see <c>tools/pytorch_reference/models.py</c>) in place of the problem's
    /// own (<see cref="Zoo.GradientCase.Architecture"/>); null keeps the problem's.
    /// </summary>
    public string? Architecture { get; init; }

    /// <summary>Longest a script run may take before it is stopped and reported as failed.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>Keep the exchange folder (under the system temp directory) for inspection instead of deleting
    /// it.</summary>
    public bool KeepExchangeFolder { get; init; }

    /// <summary>The Python executable these options resolve to.</summary>
    public string ResolvePython()
    {
        if (!string.IsNullOrWhiteSpace(Python)) return Python;
        var configured = Environment.GetEnvironmentVariable(PythonVariable);
        return string.IsNullOrWhiteSpace(configured) ? DefaultPython : configured.Trim();
    }
}
