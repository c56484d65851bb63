using TorchSharp.Modules;
using PerSampleGrads.Engines.Clipping;
using PerSampleGrads.Engines.Clipping.Rules;
using PerSampleGrads.Engines.Hooks;
using PerSampleGrads.Engines.Hooks.Rules;
using PerSampleGrads.Tests.Checks;
using static PerSampleGrads.Maths.PerSampleContractions;
using static TorchSharp.torch;

namespace PerSampleGrads.Tests.Mutation;

/// <summary>A clipping method with one planted bug, reached through the method's public seams only.</summary>
/// <param name="Name">Short name for the kill table.</param>
/// <param name="Bug">What is wrong, in words.</param>
/// <param name="Create">The mutated method.</param>
public sealed record ClippingMutant(string Name, string Bug, ClippingFactory Create)
{
    /// <inheritdoc/>
    public override string ToString() => Name;
}

/// <summary>
/// The clipping method's planted bugs: wrong steps (a <see cref="ClippingSteps"/> subclass handed to the method) and a
/// wrong norm rule (a rule table with one entry replaced).
/// </summary>
public static class ClippingMutants
{
    /// <summary>No bug: the control.</summary>
    public static ClippingMutant Control { get; } = new("none (control)", "the method as shipped",
        ClippingChecks.Shipped);

    /// <summary>The planted bugs.</summary>
    public static IReadOnlyList<ClippingMutant> All { get; } =
    [
        Steps("missing-square-root", "the total norm is the sum of squared norms, never square-rooted",
            new MissingSquareRoot()),
        Steps("norms-summed-across-layers", "the total norm adds the parameters' norms instead of their squares",
            new NormsSummed()),
        Steps("clip-factor-per-layer",
            "each parameter is clipped by its own norm, the factors multiplied into one weight", new PerLayerFactors()),
        new("second-backward-unweighted", "the second backward differentiates sum_i L_i without the clip factors",
            options => new ClippingMethod(options with { ClippedSum = ClippedSumRoute.SecondBackward },
                steps: new Unweighted())),
        new("linear-ghost-norm-diagonal-only", "the Linear ghost norm keeps only the l = m terms of the Gram product",
            options => new ClippingMethod(options with { Route = NormRoute.Ghost }, DiagonalOnlyLinearTable)),
    ];

    private static readonly Dictionary<Type, ClippingRule> DiagonalOnlyLinearTable = new(ClippingRules.Default)
    {
        [typeof(Linear)] = ClippingRules.Default[typeof(Linear)] with { Norms = DiagonalOnlyLinearNorm },
    };

    private static ClippingMutant Steps(string name, string bug, ClippingSteps steps) =>
        new(name, bug, options => new ClippingMethod(options, steps: steps));

    private sealed class MissingSquareRoot : ClippingSteps
    {
        public override Tensor TotalNorms(IReadOnlyList<(string Name, Tensor SquaredNorms)> perParameter) =>
            stack(perParameter.Select(p => p.SquaredNorms).ToArray()).sum(dim: 0);
    }

    private sealed class NormsSummed : ClippingSteps
    {
        public override Tensor TotalNorms(IReadOnlyList<(string Name, Tensor SquaredNorms)> perParameter) =>
            stack(perParameter.Select(p => p.SquaredNorms.sqrt()).ToArray()).sum(dim: 0);
    }

    private sealed class PerLayerFactors : ClippingSteps
    {
        public override Tensor LossWeights(Tensor totalNorms, IReadOnlyList<(string Name,
            Tensor SquaredNorms)> perParameter,
            double clipBound) =>
            stack(perParameter.Select(p => ClippedGradients.Factors(p.SquaredNorms.sqrt(),
                clipBound)).ToArray()).prod(dim: 0);
    }

    private sealed class Unweighted : ClippingSteps
    {
        public override Tensor LossWeights(Tensor totalNorms, IReadOnlyList<(string Name,
            Tensor SquaredNorms)> perParameter,
            double clipBound) => ones_like(totalNorms);
    }

    private static NormRoute DiagonalOnlyLinearNorm(LayerCall call, NormRoute route, ISquaredNormSink sink)
    {
        var g = FlattenPositions(call.OutputGradient);
        var x = FlattenPositions(call.Input);
        if (sink.Wants("weight")) sink.Add("weight", (g.square().sum(dim: 2) * x.square().sum(dim: 2)).sum(dim: 1));
        if (sink.Wants("bias")) sink.Add("bias", g.sum(dim: 1).square().sum(dim: 1));
        return NormRoute.Ghost;
    }
}
