namespace PerSampleGrads.Engines;

/// <summary>What an engine does with a module that owns trainable parameters and has no entry in its table.</summary>
public enum UnsupportedLayerPolicy
{
    /// <summary>
    /// Exact per-sample gradients by re-running that module alone on each sample (forward and backward of the module
    /// only, N times), with the gradient the whole batch's backward delivered at its output. The module's whole subtree
    /// is handled this way. Cost: about N small forward and backward passes of that module (README, "Fallback").
    /// </summary>
    PerSampleRerun,

    /// <summary>Refuse such models, listing every such module, before anything is computed.</summary>
    Refuse,
}
