using PerSampleGrads.Interop;
using Xunit;

namespace PerSampleGrads.Tests;

/// <summary>
/// Gate for tests that need PyTorch. Without Python, torch or numpy they fail with the install hint; only the
/// explicit opt-out <c>PSG_SKIP_PYTORCH=1</c> turns them into skipped tests (never silent passes).
/// </summary>
public static class PyTorchRequirement
{
    /// <summary>The opt-out variable.</summary>
    public const string SkipVariable = "PSG_SKIP_PYTORCH";

    private static readonly Lazy<PyTorchVersions> Probed = new(() => PyTorchReference.Probe());

    /// <summary>
    /// PyTorch's versions (probed once per process). Skips the test when <c>PSG_SKIP_PYTORCH=1</c>; fails it with the
    /// install hint when PyTorch is unavailable.
    /// </summary>
    public static PyTorchVersions Require()
    {
        TestSettings.RequireTorch();
        if (Environment.GetEnvironmentVariable(SkipVariable)?.Trim() == "1")
            Assert.Skip($"{SkipVariable}=1: the PyTorch cross-check is skipped.");
        try
        {
            return Probed.Value;
        }
        catch (PyTorchReferenceException e) when (e.Failure == PyTorchReferenceFailure.PythonUnavailable)
        {
            Assert.Fail($"{e.Message} To run the tests without the PyTorch cross-check, set {SkipVariable}=1 (they " +
                $"are then reported as skipped).");
            throw;
        }
    }
}
