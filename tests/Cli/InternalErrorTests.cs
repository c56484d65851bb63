using System.Runtime.InteropServices;
using PerSampleGrads.Cli;
using PerSampleGrads.Cli.Runtime;
using PerSampleGrads.Interop;

namespace PerSampleGrads.Tests.Cli;

/// <summary>
/// Which exit code and line each kind of exception reaching <c>Main</c> gets. An unexpected exception cannot be
/// provoked from the command line without a bug, so this checks the mapping itself.
/// </summary>
[Trait("Category", "Cli")]
public sealed class InternalErrorTests
{
    [Fact]
    public void An_unexpected_exception_is_an_internal_error_with_its_own_exit_code_and_one_line()
    {
        var (code, line) = Failure.Describe(new NullReferenceException("Object reference not set to an instance of "
            + "an object."));
        Assert.Equal(ExitCodes.InternalError, code);
        Assert.NotEqual(ExitCodes.BadUsage, code);
        Assert.StartsWith("internal error (NullReferenceException)", line);
        Assert.Contains("bug in psg", line);
        Assert.DoesNotContain("\n", line);
    }

    [Fact]
    public void Libtorch_out_of_memory_is_an_environment_failure_that_names_the_fix()
    {
        var (code, line) = Failure.Describe(new ExternalException(
            "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: you tried to "
                + "allocate 4000000000000 bytes.\nException raised from ..."));
        Assert.Equal(ExitCodes.BadUsage, code);
        Assert.StartsWith("out of memory", line);
        Assert.Contains("--batch-size", line);
        Assert.DoesNotContain("\n", line);
    }

    [Theory]
    [MemberData(nameof(EnvironmentFailures))]
    public void Input_and_environment_failures_exit_with_code_2_and_their_message(Exception failure)
    {
        var (code, line) = Failure.Describe(failure);
        Assert.Equal(ExitCodes.BadUsage, code);
        Assert.Equal(failure.Message, line);
    }

    public static TheoryData<Exception> EnvironmentFailures =>
    [
        new PerSampleGradientsException(Problem.EmptyBatch, "The batch is empty."),
        new PyTorchReferenceException(PyTorchReferenceFailure.PythonUnavailable, "No Python."),
        new IOException("No space left on device."),
        new UnauthorizedAccessException("Access to the path is denied."),
    ];
}
