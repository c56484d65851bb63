using static TorchSharp.torch;

namespace PerSampleGrads.Zoo;

/// <summary>Deterministic construction without disturbing the caller's global random state.</summary>
public static class Seeded
{
    /// <summary>
    /// Runs <paramref name="build"/> with the global generator seeded by <paramref name="seed"/> (TorchSharp's layer
    /// constructors draw their initial values from it), then restores the caller's generator state.
    /// </summary>
    public static T Build<T>(long seed, Func<T> build)
    {
        using var saved = random.get_rng_state();
        try
        {
            random.manual_seed(seed);
            return build();
        }
        finally
        {
            random.set_rng_state(saved);
        }
    }

    /// <summary>
    /// Gives every GroupNorm PyTorch's initial affine values (weight 1, bias 0). TorchSharp 0.107's GroupNorm
    /// allocates its weight and bias with <c>torch.empty</c> and never initialises them: without this, a fresh
    /// GroupNorm holds whatever the memory held (NaN included). TorchVision's ResNet initialises its own.
    /// </summary>
    public static void InitializeGroupNorms(nn.Module model)
    {
        using var _ = no_grad();
        foreach (var named in ModelInspection.AllModules(model))
        {
            if (named.Module is not TorchSharp.Modules.GroupNorm { affine: true } norm) continue;
            norm.weight.fill_(1.0);
            norm.bias?.zero_();
        }
    }

    /// <summary>A CPU generator for batches: inputs depend only on the seed.</summary>
    public static Generator Generator(long seed) => new Generator((ulong)seed, CPU);
}
