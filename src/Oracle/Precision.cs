using static TorchSharp.torch;

namespace PerSampleGrads;

/// <summary>What a method does with TF32 (10-bit-mantissa tensor-core arithmetic for float32 on NVIDIA GPUs).</summary>
public enum Tf32Mode
{
    /// <summary>Leave cuBLAS's and cuDNN's TF32 switches as the caller set them.</summary>
    KeepCallerSetting,
    /// <summary>Turn TF32 off in cuBLAS and cuDNN for the computation, then restore the caller's setting.</summary>
    ForceOff,
    /// <summary>Turn TF32 on in cuBLAS and cuDNN for the computation (what cuDNN does by default), then
    /// restore.</summary>
    ForceOn,
}

/// <summary>Sets TF32 for a computation and restores the caller's switches on dispose. No effect on CPU
/// arithmetic.</summary>
public sealed class Tf32Scope : IDisposable
{
    private readonly bool _matmul;
    private readonly bool _cudnn;
    private readonly bool _changed;

    /// <summary>Applies <paramref name="mode"/>.</summary>
    public Tf32Scope(Tf32Mode mode)
    {
        _matmul = backends.cuda.matmul.allow_tf32;
        _cudnn = backends.cudnn.allow_tf32;
        if (mode == Tf32Mode.KeepCallerSetting) return;
        bool on = mode == Tf32Mode.ForceOn;
        backends.cuda.matmul.allow_tf32 = on;
        backends.cudnn.allow_tf32 = on;
        _changed = true;
    }

    /// <summary>Restores the caller's switches.</summary>
    public void Dispose()
    {
        if (!_changed) return;
        backends.cuda.matmul.allow_tf32 = _matmul;
        backends.cudnn.allow_tf32 = _cudnn;
    }
}
