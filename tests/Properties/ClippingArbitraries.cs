using FsCheck;
using PerSampleGrads.Testing;
using PerSampleGrads.Testing.Specs;

namespace PerSampleGrads.Tests;

/// <summary>
/// The generated cases for the clipping method: its claims, the layers of its rule table. It computes norms per module
/// on inputs with the samples in dimension 0, so it supports weight sharing (one module called twice) but refuses
/// tied tensors, sequence-first layers and shared inputs (tested as refusals in the Equivalence category); custom
/// modules have no clipping rule.
/// </summary>
public static class ClippingArbitraries
{
    /// <summary>What the clipping method claims.</summary>
    public static MethodClaims Claims { get; } = MethodClaims.Everything with
    {
        Layers = Engines.Clipping.Rules.ClippingRules.Default.Keys.ToHashSet(),
        RefusesCustomModules = true,
        Patterns = ModelPatterns.WeightSharing,
    };

    private static readonly CaseGenerators Generators = CaseGenerators.For(Claims);

    /// <summary>Valid cases within the clipping method's claims.</summary>
    public static Arbitrary<CaseSpec> Cases() => Generators.Cases();

    /// <summary>Valid float32 cases within the clipping method's claims.</summary>
    public static Arbitrary<Float32CaseSpec> Float32Cases() => Generators.Float32Cases();

    /// <summary>The case generator (sized).</summary>
    public static Gen<CaseSpec> CaseGenerator => Generators.CaseGenerator;

    /// <summary>The float32 case generator (sized).</summary>
    public static Gen<Float32CaseSpec> Float32CaseGenerator => Generators.Float32CaseGenerator;
}
