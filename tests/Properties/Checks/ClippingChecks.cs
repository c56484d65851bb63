using PerSampleGrads.Testing;
using PerSampleGrads.Testing.Checks;
using PerSampleGrads.Cases;
using PerSampleGrads.Engines.Clipping;
using PerSampleGrads.Oracle;
using PerSampleGrads.Testing.Specs;
using PerSampleGrads.Zoo;
using static TorchSharp.torch;

namespace PerSampleGrads.Tests.Checks;

/// <summary>
/// A clipping method under test, as a factory from options (so that the planted-bug test can hand in methods with a
/// buggy rule table or buggy steps).
/// </summary>
public delegate ClippingMethod ClippingFactory(ClippingOptions options);

/// <summary>
/// The bodies of the clipping method's properties, one static method each, over one generated case. Tolerances come
/// from <see cref="Checking.TolerancePolicy"/> only (float64 for relations that hold exactly).
/// </summary>
public static class ClippingChecks
{
    private const ScalarType Exact = ScalarType.Float64;

    /// <summary>The method as shipped.</summary>
    public static ClippingFactory Shipped { get; } = options => new ClippingMethod(options);

    /// <summary>
    /// (c1) Norms and clipped sums, computed in <paramref name="dtype"/>, agree with the definition applied to the
    /// float64 oracle, with a bound that clips about half the samples.
    /// </summary>
    public static void MatchesTheDefinition(ClippingFactory method, CaseSpec spec, ScalarType dtype)
    {
        var gradientCase = spec.ToGradientCase();
        using var reference = gradientCase.Create(Exact);
        if (dtype == ScalarType.Float32 && PlatformArithmetic.Float32ConvolutionExcuse(reference.Model) is not null)
            FsCheck.Fluent.Prop.Discard<bool>();
        using var oracle = reference.Run(new PerSampleGradientOracle());
        double bound = ClippingAssert.MedianBound(oracle);
        using var expected = ClippedGradients.FromPerSampleGradients(oracle, bound);
        using var problem = gradientCase.Create(dtype);
        // A model whose plain float32 training step this machine computes wrong judges no method: discarded.
        ClippedGradients actual;
        try
        {
            actual = Run(method, problem, bound);
        }
        catch (PerSampleGradientsException)
            when (PlatformArithmetic.ExcuseForFailure(gradientCase, dtype, null, oracle) is not null)
        {
            FsCheck.Fluent.Prop.Discard<bool>();
            return;
        }
        using (actual)
        {
            var comparison = Checking.ClippingComparison.Compare(actual, expected,
                Checking.TolerancePolicy.ToleranceFor(dtype));
            if (!comparison.Passed
                && PlatformArithmetic.ExcuseForFailure(gradientCase, dtype, null, oracle) is not null)
                FsCheck.Fluent.Prop.Discard<bool>();
            ClippingAssert.Passed(comparison);
        }
    }

    /// <summary>(c2) With C = infinity nothing is clipped: the clipped sum is the batch gradient of <c>sum_i
    /// L_i</c>.</summary>
    public static void InfiniteBoundGivesThePlainSumGradient(ClippingFactory method, CaseSpec spec)
    {
        using var problem = spec.ToGradientCase().Create(Exact);
        using var result = Run(method, problem, double.PositiveInfinity);
        using var sums = Checking.ClippingComparison.SumsOf(result);
        using var batch = GradientChecks.BatchGradientOfTheSummedLoss(problem);
        GradientAssert.AgreeAsSums(sums, batch, Exact, Checking.ClippingComparison.ClippedMagnitude(result));
    }

    /// <summary>(c3) Permuting the batch permutes the norms (total and per parameter) and leaves the clipped
    /// sums.</summary>
    public static void PermutingTheBatchPermutesTheNorms(ClippingFactory method, CaseSpec spec)
    {
        using var scope = NewDisposeScope();
        using var problem = spec.ToGradientCase().Create(Exact);
        long n = problem.Inputs.shape[0];
        using var generator = Seeded.Generator(spec.Seed);
        var permutation = randperm(n, generator: generator);
        if (n > 1 && permutation.equal(arange(n)).all().item<bool>()) permutation = permutation.flip(0);
        double bound = BoundOf(method, problem);
        using var original = Run(method, problem, bound);
        using var permuted = method(new ClippingOptions { ClipBound = bound })
            .Compute(problem.Model, problem.Inputs.index_select(0, permutation), problem.Targets.index_select(0,
                permutation), problem.Loss);
        using var expectedNorms = Reindexed(original, permutation, "norms reindexed");
        using var actualNorms = Checking.ClippingComparison.NormsOf(permuted);
        GradientAssert.Agree(actualNorms, expectedNorms, Exact);
        using var expectedSums = Checking.ClippingComparison.SumsOf(original);
        using var actualSums = Checking.ClippingComparison.SumsOf(permuted);
        GradientAssert.AgreeAsSums(actualSums, expectedSums, Exact,
            Checking.ClippingComparison.ClippedMagnitude(original));
    }

    /// <summary>
    /// (c4) Appending a copy of sample i appends its norms and adds its clipped gradient (the method on the batch of
    /// that sample alone) to the clipped sum; the other samples' norms are unchanged.
    /// </summary>
    public static void DuplicatingASampleAddsItsClippedGradient(ClippingFactory method, CaseSpec spec)
    {
        using var scope = NewDisposeScope();
        using var problem = spec.ToGradientCase().Create(Exact);
        long n = problem.Inputs.shape[0], i = spec.Seed % n;
        var withCopy = cat([arange(n), tensor(new[] { i })]);
        var alone = tensor(new[] { i });
        double bound = BoundOf(method, problem);
        ClippedGradients On(Tensor index) => method(new ClippingOptions { ClipBound = bound })
            .Compute(problem.Model, problem.Inputs.index_select(0, index), problem.Targets.index_select(0, index),
                problem.Loss);
        using var original = Run(method, problem, bound);
        using var duplicated = On(withCopy);
        using var single = On(alone);
        using var expectedNorms = Reindexed(original, withCopy, $"norms with sample {i} appended");
        using var actualNorms = Checking.ClippingComparison.NormsOf(duplicated);
        GradientAssert.Agree(actualNorms, expectedNorms, Exact);
        var expectedSums = original.Names.Select(name => (name, (original[name] + single[name]).unsqueeze(0))).ToList();
        using var expected = new PerSampleGradients($"clipped sum + sample {i}'s clipped gradient", 1, expectedSums);
        using var actual = Checking.ClippingComparison.SumsOf(duplicated);
        GradientAssert.AgreeAsSums(actual, expected, Exact,
            Checking.ClippingComparison.ClippedMagnitude(duplicated));
    }

    /// <summary>(c5) The per-parameter norms combine into the total: <c>|g_i| = sqrt(sum_p |g_{i,p}|^2)</c>.</summary>
    public static void PerParameterNormsCombineIntoTheTotal(ClippingFactory method, CaseSpec spec)
    {
        using var scope = NewDisposeScope();
        using var problem = spec.ToGradientCase().Create(Exact);
        using var result = Run(method, problem, BoundOf(method, problem));
        var combined = stack(result.Names.Select(n => result.ParameterNorms(n).square()).ToArray()).sum(dim: 0).sqrt();
        using var expected = new PerSampleGradients("sqrt(sum_p |g_p|^2)", result.BatchSize, [("total norm",
            combined)]);
        using var actual = new PerSampleGradients($"{result.Method} total norm", result.BatchSize,
            [("total norm", result.Norms.alias())]);
        GradientAssert.Agree(actual, expected, Exact);
    }

    private static ClippedGradients Run(ClippingFactory method, GradientProblem problem, double bound) =>
        method(new ClippingOptions { ClipBound = bound }).Compute(problem.Model, problem.Inputs, problem.Targets,
            problem.Loss);

    // A bound that clips about half the samples, from the shipped method's own norms (C = infinity).
    private static double BoundOf(ClippingFactory method, GradientProblem problem)
    {
        using var unclipped = Run(Shipped, problem, double.PositiveInfinity);
        using var scope = NewDisposeScope();
        double median = unclipped.Norms.median().item<double>();
        return median > 0 ? median : 1.0;
    }

    private static PerSampleGradients Reindexed(ClippedGradients result, Tensor index, string method)
    {
        using var scope = NewDisposeScope();
        using var norms = Checking.ClippingComparison.NormsOf(result);
        var entries = norms.Entries.Select(e => (e.Name, e.Gradient.index_select(0, index))).ToList();
        return new PerSampleGradients(method, index.shape[0], entries);
    }
}
