using TorchSharp;
using System.Runtime.CompilerServices;
using static TorchSharp.torch;

namespace PerSampleGrads;

/// <summary>
/// What every method holds while it computes on a caller's model: exclusive use of that model (calls on one model
/// from several threads run one after another; different models run in parallel), gradient recording switched on
/// whatever grad mode the caller is in (<c>no_grad</c>, <c>set_grad_enabled(false)</c>, <c>inference_mode</c>), and
/// a check of every embedding index before the layer reads it.
/// </summary>
/// <remarks>
/// Per-sample gradients are gradients: a caller's grad mode describes the caller's own computations and does not
/// turn the result into zeros. Tensors created in inference mode cannot enter autograd, so inputs and targets are
/// copied when the caller is in inference mode (<see cref="Admit"/>).
/// </remarks>
public sealed class ModelAccess : IDisposable
{
    private static readonly ConditionalWeakTable<nn.Module, object> Locks = new();

    private readonly object _lock;
    private readonly IDisposable _inference;
    private readonly IDisposable _grad;
    private readonly EmbeddingIndexCheck _indices;
    private readonly Dictionary<nn.Module, (int Pre, int Post)> _userHooks = new(ReferenceEqualityComparer.Instance);

    private ModelAccess(nn.Module model, string method)
    {
        CallerInInferenceMode = is_inference_mode_enabled();
        CallerGradEnabled = is_grad_enabled();
        _lock = Locks.GetValue(model, _ => new object());
        Monitor.Enter(_lock);
        try
        {
            foreach (var named in ModelInspection.AllModules(model))
                if (ModelInspection.ForwardHookCounts(named.Module) is { } counts && counts.Pre + counts.Post > 0)
                    _userHooks[named.Module] = counts;
            _inference = inference_mode(false);
            _grad = enable_grad();
            _indices = EmbeddingIndexCheck.Register(model, method);
        }
        catch
        {
            Monitor.Exit(_lock);
            throw;
        }
    }

    /// <summary>Whether the caller had gradient recording on.</summary>
    public bool CallerGradEnabled { get; }

    /// <summary>Whether the caller was in inference mode.</summary>
    public bool CallerInInferenceMode { get; }

    /// <summary>Forward pre-hooks and forward hooks the caller had registered on <paramref name="module"/> when the
    /// method began.</summary>
    public (int Pre, int Post) UserHooks(nn.Module module) => _userHooks.GetValueOrDefault(module);

    /// <summary>Takes exclusive use of <paramref name="model"/> (waiting for another thread's call to end).</summary>
    public static ModelAccess Enter(nn.Module model, string method)
    {
        ArgumentNullException.ThrowIfNull(model);
        return new ModelAccess(model, method);
    }

    /// <summary>The tensor itself, or a copy autograd accepts when it was created in inference mode.</summary>
    public Tensor Admit(Tensor t) => CallerInInferenceMode ? t.clone() : t;

    /// <summary>Runs the model's own code, turning any failure that is not already a
    /// <see cref="PerSampleGradientsException"/> into one that names the method and the cause.</summary>
    public static T Guard<T>(string method, Func<T> run)
    {
        try
        {
            return run();
        }
        catch (PerSampleGradientsException)
        {
            throw;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new PerSampleGradientsException(Problem.ModelFailed,
                $"The model's forward, the loss or the backward failed while {method} computed per-sample gradients: " +
                $"{FirstLine(e.Message)} Run the model once on the same batch by itself to find the cause.", e);
        }
    }

    /// <summary>Runs the model's own code as <see cref="Guard{T}"/> does, for code that returns nothing.</summary>
    public static void Guard(string method, Action run) => Guard(method, () =>
    {
        run();
        return true;
    });

    /// <summary>Releases the model and restores the caller's grad and inference modes.</summary>
    public void Dispose()
    {
        _indices.Dispose();
        _grad.Dispose();
        _inference.Dispose();
        Monitor.Exit(_lock);
    }

    private static string FirstLine(string message)
    {
        var line = message.Split('\n', 2)[0].Trim();
        return line.EndsWith('.') ? line : line + ".";
    }
}
