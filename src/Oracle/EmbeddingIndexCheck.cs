using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PerSampleGrads;

/// <summary>
/// Checks every index an <see cref="Embedding"/> receives before the layer reads it (a forward pre-hook), so an id of
/// -1 or beyond the table is a <see cref="Problem.InvalidIds"/> naming the layer, never a native error or, in a
/// batched forward, a silent wrap to the last row.
/// </summary>
internal sealed class EmbeddingIndexCheck : IDisposable
{
    private readonly List<Action> _removers = [];

    public static EmbeddingIndexCheck Register(nn.Module model, string method)
    {
        var check = new EmbeddingIndexCheck();
        foreach (var named in ModelInspection.AllModules(model))
        {
            if (named.Module is not Embedding embedding) continue;
            var path = named.Display;
            var handle = embedding.register_forward_pre_hook((layer, ids) =>
            {
                Validate((Embedding)layer, ids, path, method);
                return ids;
            });
            check._removers.Add(handle.remove);
        }
        return check;
    }

    public static void Validate(Embedding embedding, Tensor ids, string path, string method)
    {
        if (ids.numel() == 0) return;
        if (is_floating_point(ids.dtype) || ids.dtype == ScalarType.Bool)
            throw new PerSampleGradientsException(Problem.InvalidIds,
                $"Embedding '{path}' received {ids.dtype} indices while {method} computed: give it integer ids " +
                "(Int64 or Int32).");
        long rows = embedding.weight!.shape[0];
        using var scope = NewDisposeScope();
        long min = ids.min().item<long>(), max = ids.max().item<long>();
        if (min >= 0 && max < rows) return;
        long bad = min < 0 ? min : max;
        throw new PerSampleGradientsException(Problem.InvalidIds,
            $"Embedding '{path}' received id {bad}, outside its table of {rows} rows (valid: 0 to {rows - 1}), while " +
            $"{method} computed: fix the ids (negative ids do not count from the end here) or enlarge the table.");
    }

    public void Dispose()
    {
        foreach (var remove in _removers) remove();
        _removers.Clear();
    }
}
