namespace PerSampleGrads.Interop;

/// <summary>What the PyTorch side ran with.</summary>
/// <param name="PythonPath">The Python executable used (<c>PSG_PYTHON</c>, else <c>/usr/bin/python3</c>).</param>
/// <param name="Python">Python's version, e.g. <c>3.11.2</c>.</param>
/// <param name="Torch">PyTorch's version string, e.g. <c>1.13.0a0</c> (Debian 12's 1.13.1 reports that).</param>
/// <param name="Numpy">numpy's version.</param>
/// <param name="VmapApi">Where vmap and grad came from (<c>torch.func</c> or <c>functorch x.y</c>); null when this
/// PyTorch has neither.</param>
/// <param name="HasExpandedWeights">Whether <c>torch.nn.utils._per_sample_grad.call_for_per_sample_grads</c>
/// exists.</param>
/// <param name="DefaultThreads">PyTorch's <c>torch.get_num_threads()</c> before any <c>--threads</c> setting.</param>
public sealed record PyTorchVersions(string PythonPath, string Python, string Torch, string Numpy, string? VmapApi,
    bool HasExpandedWeights, int DefaultThreads)
{
    /// <summary>One line for reports: <c>PyTorch 1.13.0a0 (functorch 1.13.0a0), numpy 1.24.2, Python
    /// 3.11.2</c>.</summary>
    public override string ToString() =>
        $"PyTorch {Torch} ({VmapApi ?? "no vmap"}{(HasExpandedWeights ? ", ExpandedWeights" : "")}), numpy {Numpy}, " +
            $"Python {Python} at {PythonPath}";
}
