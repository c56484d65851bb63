using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PerSampleGrads;

/// <summary>
/// What differentially private SGD needs of a batch's per-sample gradients <c>g_i</c> (each the gradient of sample i's
/// own loss <c>L_i</c>, see <see cref="LossFunction"/>), given a clipping bound C: each sample's gradient norm
/// <c>|g_i|</c> (L2 over every trainable parameter, and per parameter), the clip factors
/// <c>f_i = min(1, C / |g_i|)</c> (1 where <c>|g_i| = 0</c>), and per parameter the clipped sum
/// <c>sum_i f_i g_i</c>, optionally plus Gaussian noise and divided by N.
/// </summary>
/// <remarks>Norms are in the loss's units per parameter unit, like the gradients. The result owns its
/// tensors.</remarks>
public sealed class ClippedGradients : IDisposable
{
    private readonly Dictionary<string, (Tensor Norms, Tensor Gradient)> _byName = new(StringComparer.Ordinal);
    private readonly List<string> _names = [];

    /// <summary>Takes ownership of the tensors (detaching them from any dispose scope).</summary>
    /// <param name="method">What computed it.</param>
    /// <param name="clipBound">C.</param>
    /// <param name="norms">Each sample's total gradient norm, <c>[N]</c>.</param>
    /// <param name="clipFactors">Each sample's weight in the clipped sum, <c>[N]</c>.</param>
    /// <param name="parameters">Per trainable parameter: its per-sample norms <c>[N]</c> and its clipped sum
    /// (parameter shape).</param>
    /// <param name="routes">How each layer's norms were computed (path to route), for reports; may be empty.</param>
    /// <param name="phaseMilliseconds">Wall time of each phase of the computation, when measured.</param>
    public ClippedGradients(string method, double clipBound, Tensor norms, Tensor clipFactors,
        IEnumerable<(string Name, Tensor Norms, Tensor Gradient)> parameters,
        IReadOnlyDictionary<string, string>? routes = null,
        IReadOnlyDictionary<string, double>? phaseMilliseconds = null)
    {
        PhaseMilliseconds = phaseMilliseconds ?? new Dictionary<string, double>();
        Method = method;
        ClipBound = clipBound;
        Norms = norms.DetachFromDisposeScope();
        ClipFactors = clipFactors.DetachFromDisposeScope();
        BatchSize = norms.shape[0];
        foreach (var (name, parameterNorms, gradient) in parameters)
        {
            _names.Add(name);
            _byName.Add(name, (parameterNorms.DetachFromDisposeScope(), gradient.DetachFromDisposeScope()));
        }
        Routes = routes ?? new Dictionary<string, string>();
    }

    /// <summary>What computed it (<c>clipping</c>, <c>oracle</c>, ...).</summary>
    public string Method { get; }

    /// <summary>C, the clipping bound.</summary>
    public double ClipBound { get; }

    /// <summary>N, the number of samples.</summary>
    public long BatchSize { get; }

    /// <summary>Each sample's gradient norm over every trainable parameter, <c>[N]</c>.</summary>
    public Tensor Norms { get; }

    /// <summary>Each sample's factor <c>min(1, C / |g_i|)</c> in the clipped sum, <c>[N]</c>.</summary>
    public Tensor ClipFactors { get; }

    /// <summary>Qualified parameter names in <c>named_parameters()</c> order.</summary>
    public IReadOnlyList<string> Names => _names;

    /// <summary>How each layer's norms were computed (layer path to route); empty for the definition.</summary>
    public IReadOnlyDictionary<string, string> Routes { get; }

    /// <summary>Milliseconds per phase of the computation, in order, when the method measured them; else
    /// empty.</summary>
    public IReadOnlyDictionary<string, double> PhaseMilliseconds { get; }

    /// <summary>Each sample's gradient norm for one parameter, <c>[N]</c>.</summary>
    public Tensor ParameterNorms(string name) => Get(name).Norms;

    /// <summary>The clipped sum (with noise and averaging, when asked) of one parameter, in its shape.</summary>
    public Tensor this[string name] => Get(name).Gradient;

    /// <summary>
    /// Replaces the <c>.grad</c> of every trainable parameter of <paramref name="model"/> (the model this result was
    /// computed for) with a copy of its clipped sum, ready for a TorchSharp optimizer's <c>step()</c>.
    /// </summary>
    public void WriteGradients(nn.Module model)
    {
        var trainable = ModelInspection.TrainableParameters(model);
        var names = trainable.Select(p => p.Name).ToList();
        if (!names.SequenceEqual(_names))
            throw new ArgumentException($"The model's trainable parameters [{string.Join(", ", names)}] are not the " +
                $"ones this result holds [{string.Join(", ", _names)}].", nameof(model));
        using (no_grad())
        {
            foreach (var (name, p) in trainable)
            {
                using var old = p.grad;
                p.grad = _byName[name].Gradient.detach().clone().DetachFromDisposeScope();
            }
        }
    }

    /// <summary>
    /// The definition: norms, clip factors and clipped sums computed from materialised per-sample gradients (the
    /// oracle's, say), in their element type, without noise and without averaging.
    /// </summary>
    public static ClippedGradients FromPerSampleGradients(PerSampleGradients perSample, double clipBound)
    {
        using var scope = NewDisposeScope();
        long n = perSample.BatchSize;
        var squared = perSample.Entries
            .Select(e => (e.Name, Squared: e.Gradient.reshape(n, -1).square().sum(dim: 1), e.Gradient))
            .ToList();
        var norms = stack(squared.Select(s => s.Squared).ToArray()).sum(dim: 0).sqrt();
        var factors = Factors(norms, clipBound);
        var parameters = squared.Select(s =>
        {
            var shape = Enumerable.Repeat(1L, (int)s.Gradient.dim()).ToArray();
            shape[0] = n;
            return (s.Name, s.Squared.sqrt(), (s.Gradient * factors.reshape(shape)).sum(dim: 0));
        }).ToList();
        return new ClippedGradients(perSample.Method, clipBound, norms, factors, parameters);
    }

    /// <summary><c>min(1, C / norm)</c> element-wise, 1 where the norm is 0 (C / 0 is infinite), for C up to
    /// infinity.</summary>
    public static Tensor Factors(Tensor norms, double clipBound) =>
        double.IsPositiveInfinity(clipBound) ? ones_like(norms) : norms.reciprocal().mul(clipBound).clamp_max(1.0);

    private (Tensor Norms, Tensor Gradient) Get(string name) => _byName.TryGetValue(name, out var entry)
        ? entry
        : throw new KeyNotFoundException($"No clipped gradient for '{name}'. Known: {string.Join(", ", _names)}.");

    /// <summary>Releases every tensor.</summary>
    public void Dispose()
    {
        Norms.Dispose();
        ClipFactors.Dispose();
        foreach (var (norms, gradient) in _byName.Values)
        {
            norms.Dispose();
            gradient.Dispose();
        }
        _byName.Clear();
        _names.Clear();
    }
}
