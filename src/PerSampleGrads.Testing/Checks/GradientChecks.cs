using TorchSharp;
using PerSampleGrads.Cases;
using PerSampleGrads.Oracle;
using PerSampleGrads.Testing.Specs;
using PerSampleGrads.Checking;
using PerSampleGrads.Zoo;
using static TorchSharp.torch;

namespace PerSampleGrads.Testing.Checks;

/// <summary>
/// The bodies of the properties, one static method each: they take the engine(s) to check as factories (so the
/// planted-bug test can hand in mutants) and one generated case, and throw with every mismatching parameter listed when
/// the property does not hold. Tolerances come from <see cref="Checking.TolerancePolicy"/> only: float64 for the
/// relations that hold exactly in real arithmetic, the computation's own dtype for the comparison with the float64
/// oracle. Every check runs on <c>device</c> (the CPU when null).
/// </summary>
public static class GradientChecks
{
    private const ScalarType Exact = ScalarType.Float64;

    /// <summary>
    /// (1) The engine, computing in <paramref name="dtype"/>, agrees with the float64 oracle within the policy's
    /// tolerance for <paramref name="dtype"/>.
    /// </summary>
    public static void MatchesOracle(Func<IPerSampleGradientMethod> engine, CaseSpec spec, ScalarType dtype,
        Tolerance? tolerance = null, Device? device = null)
    {
        var gradientCase = spec.ToGradientCase();
        using var problem = gradientCase.Create(dtype, device);
        if (dtype == ScalarType.Float32 && PlatformArithmetic.Float32ConvolutionExcuse(problem.Model) is not null)
            FsCheck.Fluent.Prop.Discard<bool>();
        using var expected = problem.Run(Float64Oracle(problem));
        tolerance ??= TolerancePolicy.ToleranceFor(dtype);
        // A model whose plain float32 training step this machine computes wrong judges no method: discarded. (Such
        // a machine can also make a batch look mixed to an engine's sample-separation probe.)
        PerSampleGradients actual;
        try
        {
            actual = problem.Run(engine());
        }
        catch (PerSampleGradientsException)
            when (PlatformArithmetic.ExcuseForFailure(gradientCase, dtype, device, expected) is not null)
        {
            FsCheck.Fluent.Prop.Discard<bool>();
            return;
        }
        using (actual)
        {
            var comparison = GradientComparison.Compare(actual, expected, tolerance);
            if (!comparison.Passed
                && PlatformArithmetic.ExcuseForFailure(gradientCase, dtype, device, expected) is not null)
                FsCheck.Fluent.Prop.Discard<bool>();
            GradientAssert.Passed(comparison);
        }
    }

    /// <summary>
    /// (1b) An audited engine attaches a passing audit of the samples it chose, in range and distinct, whose error is
    /// the error of those rows against the oracle.
    /// </summary>
    public static void SelfAuditAgreesWithTheOracle(Func<IPerSampleGradientMethod> audited, CaseSpec spec,
        Device? device = null)
    {
        using var problem = spec.ToGradientCase().Create(Exact, device);
        using var actual = problem.Run(audited());
        var audit = actual.Audit ?? throw new Xunit.Sdk.XunitException("the audited engine attached no audit");
        Assert.True(audit.Passed, audit.Description);
        Assert.Equal(Math.Min(2, spec.BatchSize), audit.Samples.Count);
        Assert.Equal(audit.Samples.Count, audit.Samples.Distinct().Count());
        Assert.All(audit.Samples, s => Assert.InRange(s, 0, spec.BatchSize - 1));
        using var expected = problem.Run(new PerSampleGradientOracle());
        var rows = tensor(audit.Samples.ToArray(), device: problem.Inputs.device);
        using var chosen = Map(actual, "audited rows", g => g.index_select(0, rows));
        using var truth = Map(expected, "oracle rows", g => g.index_select(0, rows));
        var tolerance = TolerancePolicy.ToleranceFor(Exact);
        var comparison = GradientComparison.Compare(chosen, truth, tolerance);
        // Two oracle runs may differ in the last bit (a view of the batch and a copy of its rows are aligned
        // differently): the audit's figure must match the full comparison's up to rounding, far below the bound.
        Assert.InRange(Math.Abs(comparison.MaxRelativeError - audit.MaxRelativeError), 0, 1e-3 * tolerance.Relative);
    }

    /// <summary>
    /// (2) The per-sample gradients sum to the batch gradient of <c>sum_i L_i</c>: the gradient of the summed loss, or
    /// N times the gradient of the mean loss (the declared batch loss is <c>(1/N) sum_i L_i</c>, see
    /// <see cref="LossFunction"/>).
    /// </summary>
    public static void SumsToTheBatchGradient(Func<IPerSampleGradientMethod> engine, CaseSpec spec,
        Device? device = null)
    {
        using var problem = spec.ToGradientCase().Create(Exact, device);
        using var perSample = problem.Run(engine());
        using var summed = Map(perSample, "sum over samples", g => g.sum(dim: 0, keepdim: true));
        using var batch = BatchGradientOfTheSummedLoss(problem);
        using var unclipped = ClippedGradients.FromPerSampleGradients(perSample, double.PositiveInfinity);
        GradientAssert.AgreeAsSums(summed, batch, Exact, ClippingComparison.ClippedMagnitude(unclipped));
    }

    /// <summary>(3) Running the engine on a permuted batch permutes its per-sample gradients.</summary>
    public static void PermutationPermutesTheGradients(Func<IPerSampleGradientMethod> engine, CaseSpec spec,
        Device? device = null)
    {
        using var scope = NewDisposeScope();
        using var problem = spec.ToGradientCase().Create(Exact, device);
        long n = problem.Inputs.shape[0];
        using var generator = Seeded.Generator(spec.Seed);
        var permutation = randperm(n, generator: generator);
        // A permutation that moves nothing checks nothing: reverse the batch instead.
        if (n > 1 && permutation.equal(arange(n)).all().item<bool>()) permutation = permutation.flip(0);
        Reindexed(engine, problem, permutation.to(problem.Inputs.device), "permuted batch");
    }

    /// <summary>
    /// (4) Appending a copy of sample i gives the copy sample i's gradient and leaves every other sample's gradient as
    /// it was (i = seed mod N).
    /// </summary>
    public static void DuplicatingASampleDuplicatesItsGradient(Func<IPerSampleGradientMethod> engine, CaseSpec spec,
        Device? device = null)
    {
        using var scope = NewDisposeScope();
        using var problem = spec.ToGradientCase().Create(Exact, device);
        long n = problem.Inputs.shape[0];
        var withCopy = cat([arange(n), tensor(new[] { spec.Seed % n })]);
        Reindexed(engine, problem, withCopy.to(problem.Inputs.device), $"sample {spec.Seed % n} duplicated");
    }

    /// <summary>
    /// (5) The documented relation between the reductions (<see cref="LossFunction"/>): the per-sample gradients with
    /// <c>Mean</c> and <c>Sum</c> are identical for a custom per-sample loss; for the built-in losses with D target
    /// elements per sample (D = 1 for CE and NLL with one class index per sample; positions for class targets per
    /// position; output elements for MSE and L1), mean = sum / D exactly.
    /// </summary>
    public static void MeanAndSumFollowTheDocumentedRelation(Func<IPerSampleGradientMethod> engine, CaseSpec spec,
        Device? device = null)
    {
        using var scope = NewDisposeScope();
        using var problem = spec.ToGradientCase().Create(Exact, device);
        var loss = problem.Loss;
        using var sum = engine().Compute(problem.Model, problem.Inputs, problem.Targets,
            loss.WithReduction(LossReduction.Sum));
        using var mean = engine().Compute(problem.Model, problem.Inputs, problem.Targets,
            loss.WithReduction(LossReduction.Mean));
        long elementsPerSample = loss.IsCustom ? 1 : problem.Targets[0].numel();
        using var scaled = Map(mean, $"{mean.Method} with mean x {elementsPerSample}", g => g * elementsPerSample);
        GradientAssert.Agree(scaled, sum, Exact);
    }

    /// <summary>(6) The functional engine in chunks of 1 and of about N/2 gives its unchunked result.</summary>
    public static void ChunkedRunsGiveTheUnchunkedResult(Func<int?, IPerSampleGradientMethod> functional, CaseSpec spec)
    {
        using var problem = spec.ToGradientCase().Create(Exact);
        using var whole = problem.Run(functional(null));
        long n = problem.Inputs.shape[0];
        foreach (var chunk in new[] { 1, (int)(n + 1) / 2 }.Distinct())
        {
            using var chunked = problem.Run(functional(chunk));
            GradientAssert.Agree(chunked, whole, Exact);
        }
    }

    /// <summary>(7) The hook engine and the functional engine agree (both float64).</summary>
    public static void HooksAgreeWithFunctional(Func<IPerSampleGradientMethod> hooks,
        Func<IPerSampleGradientMethod> functional, CaseSpec spec)
    {
        using var problem = spec.ToGradientCase().Create(Exact);
        using var fromHooks = problem.Run(hooks());
        using var fromFunctional = problem.Run(functional());
        GradientAssert.Agree(fromHooks, fromFunctional, Exact);
    }

    /// <summary>
    /// A faulty configuration raises <see cref="PerSampleGradientsException"/> with the documented
    /// <see cref="Problem"/>: not another exception, and never a result.
    /// </summary>
    public static void InvalidConfigurationIsRefused(Func<IPerSampleGradientMethod> engine, InvalidCaseSpec spec,
        Device? device = null)
    {
        // The batch comes from the valid case (a fault layer keeps every shape): building it runs the model once, which
        // BatchNorm in training mode would refuse for a single sample.
        using var batch = spec.Valid.ToGradientCase().Create(Exact, device);
        using var model = spec.Architecture.Build(spec.Valid.Seed);
        model.to(Exact);
        if (device is not null) model.to(device);
        using var scope = NewDisposeScope();
        var (inputs, targets) = spec.Fault == Fault.EmptyBatch
            ? (batch.Inputs.narrow(0, 0, 0), batch.Targets.narrow(0, 0, 0))
            : (batch.Inputs, batch.Targets);
        var error = Assert.Throws<PerSampleGradientsException>(
            () => engine().Compute(model, inputs, targets, batch.Loss).Dispose());
        Assert.Equal(spec.Expected, error.Problem);
    }

    /// <summary>
    /// The float64 oracle on a float64 copy of <paramref name="problem"/>'s own model and batch. The reference comes
    /// from the very model the method is run on, not from a second build: a model built while another test thread
    /// draws from the global random generator gets other initial values, and only one build is sure to be the same
    /// model.
    /// </summary>
    public static IPerSampleGradientMethod Float64Oracle(GradientProblem problem) => new PerSampleGradientOracle(
        new OracleOptions { ComputeDType = ScalarType.Float64, ModelFactory = problem.Factory });

    // Runs the engine on the batch reindexed by `index` and compares with its gradients on the batch, reindexed alike.
    private static void Reindexed(Func<IPerSampleGradientMethod> engine, GradientProblem problem, Tensor index,
        string what)
    {
        using var original = problem.Run(engine());
        using var expected = Map(original, $"{original.Method} reindexed", g => g.index_select(0, index));
        using var actual = engine().Compute(problem.Model, problem.Inputs.index_select(0, index),
            problem.Targets.index_select(0, index), problem.Loss);
        using var labelled = Map(actual, $"{actual.Method} on the {what}", g => g.clone());
        GradientAssert.Agree(labelled, expected, Exact);
    }

    /// <summary>The gradient of <c>sum_i L_i</c> for the whole batch with one ordinary backward, as a result with
    /// N = 1.</summary>
    public static PerSampleGradients BatchGradientOfTheSummedLoss(GradientProblem problem)
    {
        using var scope = NewDisposeScope();
        var trainable = ModelInspection.TrainableParameters(problem.Model);
        var parameters = trainable.Select(p => (Tensor)p.Parameter).ToArray();
        long n = problem.Inputs.shape[0];
        var batchLoss = problem.Loss.BatchLoss(problem.Model.call(problem.Inputs), problem.Targets);
        var summed = problem.Loss.Reduction == LossReduction.Mean ? batchLoss * n : batchLoss;
        autograd.backward([summed], inputs: parameters);
        // Read every name before clearing any: a tied tensor is listed under several names and has one .grad.
        var gradients = trainable.Select(p =>
        {
            using var grad = p.Parameter.grad;
            var value = grad is null ? zeros_like(p.Parameter) : grad.detach().clone();
            return (p.Name, value.unsqueeze(0));
        }).ToList();
        foreach (var p in parameters) p.grad = null;
        return new PerSampleGradients("batch gradient of sum_i L_i", 1, gradients);
    }

    private static PerSampleGradients Map(PerSampleGradients source, string method, Func<Tensor, Tensor> map)
    {
        using var scope = NewDisposeScope();
        var mapped = source.Entries.Select(e => (e.Name, map(e.Gradient))).ToList();
        return new PerSampleGradients(method, mapped[0].Item2.shape[0], mapped);
    }
}
