using static TorchSharp.torch;

namespace PerSampleGrads.Interop;

/// <summary>One PyTorch method's timing.</summary>
/// <param name="Method">
/// <see cref="PyTorchReference.BatchBackward"/> (the plain training step: one forward and backward of the batch loss,
/// no per-sample gradients), <see cref="PyTorchReference.Vmap"/>, <see cref="PyTorchReference.ExpandedWeights"/> or
/// <see cref="PyTorchReference.Loop"/> (N single-sample backwards, in the run's dtype).
/// </param>
/// <param name="MedianSeconds">Median wall time of one full computation over the batch, in seconds; null when
/// unsupported.</param>
/// <param name="Seconds">Every timed repeat, in seconds (empty when unsupported).</param>
/// <param name="UnsupportedReason">PyTorch's reason when the method cannot handle the model.</param>
public sealed record PyTorchTiming(string Method, double? MedianSeconds, IReadOnlyList<double> Seconds,
    string? UnsupportedReason);

/// <summary>PyTorch's timings for one model and batch: the peers a <c>bench --peers pytorch</c> reports.</summary>
/// <param name="Problem">Problem id (for a zoo model: <c>zoo-resnet18-gn-B32-ce-mean</c>).</param>
/// <param name="Versions">Versions of Python, PyTorch and numpy.</param>
/// <param name="Threads"><c>torch.get_num_threads()</c> while timing.</param>
/// <param name="DType">Element type of the run.</param>
/// <param name="BatchSize">N.</param>
/// <param name="Repeats">Timed repeats per method.</param>
/// <param name="WarmUp">Untimed runs before them (plus one untimed run that checks support).</param>
/// <param name="Methods">One timing per method.</param>
public sealed record PyTorchTimings(string Problem, PyTorchVersions Versions, int Threads, ScalarType DType,
    long BatchSize,
    int Repeats, int WarmUp, IReadOnlyList<PyTorchTiming> Methods)
{
    /// <summary>The timing of <paramref name="method"/>.</summary>
    public PyTorchTiming this[string method] => Methods.FirstOrDefault(m => m.Method == method)
        ?? throw new KeyNotFoundException($"No PyTorch timing '{method}'; timed: " +
            $"{string.Join(", ", Methods.Select(m => m.Method))}.");
}
