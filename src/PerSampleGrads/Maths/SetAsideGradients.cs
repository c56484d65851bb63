using static TorchSharp.torch;

namespace PerSampleGrads.Maths;

/// <summary>Sets the trainable parameters' <c>.grad</c> aside for a backward and puts the caller's back.</summary>
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
