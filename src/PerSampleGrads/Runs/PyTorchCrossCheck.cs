using PerSampleGrads.Interop;
using PerSampleGrads.Checking;

namespace PerSampleGrads.Runs;

/// <summary>
/// One row of the cross-check against PyTorch: a method of either framework, compared with our float64 oracle and
/// with PyTorch's float64 loop.
/// </summary>
/// <param name="Method">Method name (<c>hooks</c>, <c>pytorch-vmap</c>, ...).</param>
/// <param name="Framework"><c>PerSampleGrads</c> or <c>PyTorch</c>.</param>
/// <param name="VersusOracle">Against our float64 oracle (null for our own engines: the main table has it).</param>
/// <param name="VersusPyTorchLoop">Against PyTorch's float64 loop (null for that loop itself).</param>
/// <param name="Unsupported">PyTorch's reason when the method cannot handle the model.</param>
public sealed record CrossCheckRow(string Method, string Framework, GradientComparison? VersusOracle,
    GradientComparison? VersusPyTorchLoop, string? Unsupported)
{
    /// <summary>Ran, and every comparison it has is within tolerance.</summary>
    public bool Passed => Unsupported is null && (VersusOracle?.Passed ?? true) && (VersusPyTorchLoop?.Passed ?? true);
}

/// <summary>PyTorch's own per-sample gradients on the same weights and batch, side by side with ours.</summary>
/// <param name="Versions">What PyTorch ran with.</param>
/// <param name="Threads">PyTorch's thread count.</param>
/// <param name="Rows">Every method of both frameworks.</param>
public sealed record PyTorchCrossCheck(PyTorchVersions Versions, int Threads, IReadOnlyList<CrossCheckRow> Rows)
{
    /// <summary>Every method that ran agrees with both references (an unsupported PyTorch method is reported, not
    /// failed).</summary>
    public bool Passed => Rows.Where(r => r.Unsupported is null).All(r => r.Passed);

    /// <summary>
    /// Compares PyTorch's methods with our float64 oracle and PyTorch's loop, and our <paramref name="engines"/> with
    /// PyTorch's loop. The loop is float64 (policy 1e-10 against our oracle); the others use
    /// <paramref name="tolerance"/>, the run's.
    /// </summary>
    public static PyTorchCrossCheck Compare(PyTorchReferenceResult pytorch, PerSampleGradients oracle,
        IReadOnlyList<PerSampleGradients> engines, Tolerance tolerance)
    {
        var rows = new List<CrossCheckRow>();
        var exact = TolerancePolicy.ToleranceFor(TorchSharp.torch.ScalarType.Float64);
        var loop = pytorch.Methods.Single(m => m.Method == PyTorchReference.LoopFloat64).Gradients!;
        foreach (var method in pytorch.Methods)
        {
            if (method.Gradients is null)
            {
                rows.Add(new CrossCheckRow(method.Method, "PyTorch", null, null, method.UnsupportedReason));
                continue;
            }
            bool isLoop = method.Method == PyTorchReference.LoopFloat64;
            rows.Add(new CrossCheckRow(method.Method, "PyTorch",
                GradientComparison.Compare(method.Gradients, oracle, isLoop ? exact : tolerance),
                isLoop ? null : GradientComparison.Compare(method.Gradients, loop, tolerance), null));
        }
        foreach (var engine in engines)
            rows.Add(new CrossCheckRow(engine.Method, "PerSampleGrads", null,
                GradientComparison.Compare(engine, loop, tolerance), null));
        return new PyTorchCrossCheck(pytorch.Versions, pytorch.Threads, rows);
    }
}
