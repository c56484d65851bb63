using static TorchSharp.torch;

namespace PerSampleGrads;

/// <summary>
/// Sets the parameters' <c>.grad</c> aside for the backwards of a computation (<c>backward()</c> accumulates into
/// <c>.grad</c>; <c>autograd.grad</c>, which would not, aborts the process on any error) and puts the caller's back,
/// dropping what the computation left there.
/// </summary>
internal sealed class SetAsideGradients : IDisposable
{
    private readonly List<(Tensor Parameter, Tensor? Saved)> _saved = [];

    public SetAsideGradients(IEnumerable<Tensor> parameters)
    {
        foreach (var p in parameters)
        {
            _saved.Add((p, p.grad));
            p.grad = null;
        }
    }

    public void Dispose()
    {
        foreach (var (p, saved) in _saved)
        {
            using var mine = p.grad;
            p.grad = saved;
            saved?.Dispose();
        }
        _saved.Clear();
    }
}
