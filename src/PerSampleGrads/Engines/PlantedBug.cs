namespace PerSampleGrads.Engines;

/// <summary>
/// Realistic engine bugs that the test suite plants one at a time to prove it can fail (Category=Mutation). Internal:
/// reachable from the test projects only, never from the public API. Rule-level bugs (a convolution rule that
/// forgets dilation, ...) are planted by handing an engine a different rule table; these are the ones that live in
/// the engines' own wiring.
/// </summary>
internal enum PlantedBug
{
    None,
    /// <summary>Hooks: differentiate the declared (mean) batch loss and forget to rescale by N.</summary>
    MeanNotRescaled,
    /// <summary>Hooks: a module called twice keeps only its last call's gradient.</summary>
    SharedModuleOverwritten,
    /// <summary>Functional: samples 0 and 1 use the same parameter copy.</summary>
    SharedParameterCopy,
    /// <summary>Hooks: a tied parameter gets only the first module's share of its gradient.</summary>
    TiedParameterCountedOnce,
    /// <summary>Hooks: every layer's input is taken to hold the samples in dimension 0, whatever the probe
    /// found.</summary>
    BatchDimensionAssumedZero,
    /// <summary>Either engine: the audit reports agreement without comparing.</summary>
    AuditNeverCompares,
    /// <summary>Either engine: the caller's grad mode is kept, so under no_grad every gradient comes out
    /// zero.</summary>
    GradModeIgnored,
}
