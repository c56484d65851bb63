using TorchSharp;
using PerSampleGrads.Cases;
using PerSampleGrads.Checking;
using PerSampleGrads.Testing.Checks;
using PerSampleGrads.Engines.Functional;
using PerSampleGrads.Engines.Functional.Layers;
using PerSampleGrads.Engines.Hooks;
using PerSampleGrads.Oracle;
using PerSampleGrads.Zoo;
using static TorchSharp.torch;

namespace PerSampleGrads.Tests;

/// <summary>
/// What every engine must satisfy, checked case by case against the float64 oracle: one catalogue for all engines.
/// </summary>
[Trait("Category", "Equivalence")]
public abstract class EngineEquivalenceTests
{
    protected EngineEquivalenceTests() => TestSettings.RequireTorch();

    /// <summary>The engine under test.</summary>
    protected abstract IPerSampleGradientMethod CreateEngine();

    /// <summary>A failed float32 comparison on a case this machine computes wrong in plain float32 is skipped, with
    /// the measured error (<see cref="PlatformArithmetic"/>).</summary>
    internal static void SkipWhereTheMachineIsAtFault(bool passed, GradientCase gradientCase, ScalarType dtype)
    {
        if (!passed && PlatformArithmetic.ExcuseForFailure(gradientCase, dtype, TestSettings.Device,
            OracleCache.Float64(gradientCase)) is { } excuse)
            Assert.Skip(excuse);
    }

    public static TheoryData<string, string> CasesAndDTypes => CasesAndDTypesWhere(_ => true);

    /// <summary>The cases whose id <paramref name="taken"/> accepts (and <see cref="TestSettings.Selects"/>), in every
    /// dtype.</summary>
    public static TheoryData<string, string> CasesAndDTypesWhere(Func<string, bool> taken)
    {
        var data = new TheoryData<string, string>();
        foreach (var c in CaseCatalogue.All.Where(c => taken(c.Id) && TestSettings.Selects(c.Id)))
            foreach (var dtype in TestSettings.DTypes)
                data.Add(c.Id, ElementTypes.Name(dtype));
        return data;
    }

    [Theory]
    [MemberData(nameof(CasesAndDTypes))]
    public void Agrees_with_the_float64_oracle_and_leaves_the_model_unchanged(string caseId, string dtypeName)
    {
        var dtype = ElementTypes.Parse(dtypeName);
        var gradientCase = CaseCatalogue.Get(caseId);
        var expected = OracleCache.Float64(gradientCase);
        using var problem = gradientCase.Create(dtype, TestSettings.Device);
        using var snapshot = new ModelSnapshot(problem.Model, problem.Inputs);

        using var actual = problem.Run(CreateEngine());

        Assert.Equal(dtype, actual.Entries.First().Gradient.dtype);
        var comparison = GradientComparison.Compare(actual, expected, TolerancePolicy.ToleranceFor(dtype));
        SkipWhereTheMachineIsAtFault(comparison.Passed, gradientCase, dtype);
        GradientAssert.Passed(comparison);
        Assert.Empty(snapshot.Differences());
    }

    // The recurrent layers' libtorch modules are kept between calls: a call after a training step changed the
    // weights of the same model must use the new ones.
    [Theory]
    [InlineData("lstm-l2-h0-final-B3-ce-sum")]
    [InlineData("gru-l2-bi-h0-B3-ce-mean")]
    [InlineData("rnn-relu-nobias-B3-ce-sum")]
    public void A_call_after_the_weights_changed_uses_the_new_weights(string caseId)
    {
        using var problem = CaseCatalogue.Get(caseId).Create(ScalarType.Float64, TestSettings.Device);
        var engine = CreateEngine();
        using (problem.Run(engine)) { }
        using (no_grad())
            foreach (var parameter in problem.Model.parameters()) parameter.mul_(1.2).add_(0.05);
        using var expected = problem.Run(new PerSampleGradientOracle());
        using var actual = problem.Run(engine);
        GradientAssert.Agree(actual, expected, ScalarType.Float64);
    }

    // The LSTM: both engines run libtorch layers of their own, kept between calls.
    [Theory]
    [InlineData("small-cnn", 1000)]
    [InlineData("lstm", 200)]
    public void Memory_stays_flat_over_many_calls(string model, int calls)
    {
        using var problem = CaseCatalogue.FromZoo(ModelZoo.Get(model), 2).Create(ScalarType.Float32,
            TestSettings.Device);
        var engine = CreateEngine();
        long growth = TensorLeaks.Growth(() =>
        {
            using var result = problem.Run(engine);
        }, repeats: calls);
        Assert.Equal(0, growth);
    }

    [Fact]
    public void A_model_left_with_hooks_removed_after_a_failing_call_behaves_as_before()
    {
        // The loss throws inside the computation, after the hooks are in place.
        using var problem = CaseCatalogue.FromZoo(ModelZoo.SmallCnn, 3).Create(ScalarType.Float32, TestSettings.Device);
        using var snapshot = new ModelSnapshot(problem.Model, problem.Inputs);
        var failing = LossFunction.PerSample("throws", (_, _)
            => throw new InvalidOperationException("planted failure"));
        var error = Assert.Throws<PerSampleGradientsException>(
            () => CreateEngine().Compute(problem.Model, problem.Inputs, problem.Targets, failing));
        Assert.Equal(Problem.ModelFailed, error.Problem);
        Assert.Equal("planted failure", error.InnerException?.Message);
        Assert.Empty(snapshot.Differences());
    }
}

[Trait("Engine", "Hooks")]
public sealed class HookEngineEquivalenceTests : EngineEquivalenceTests
{
    protected override IPerSampleGradientMethod CreateEngine() => new HookEngine();
}

[Trait("Engine", "Functional")]
public sealed class FunctionalEngineEquivalenceTests : EngineEquivalenceTests
{
    protected override IPerSampleGradientMethod CreateEngine() => new FunctionalEngine();

    public static TheoryData<string> LayerCases => new(CaseCatalogue.Layers.Select(c => c.Id));

    [Theory]
    [MemberData(nameof(CasesAndDTypes))]
    public void Agrees_with_the_hook_engine(string caseId, string dtypeName)
    {
        var dtype = ElementTypes.Parse(dtypeName);
        using var problem = CaseCatalogue.Get(caseId).Create(dtype, TestSettings.Device);
        using var functional = problem.Run(new FunctionalEngine());
        using var hooks = problem.Run(new HookEngine());
        var comparison = GradientComparison.Compare(functional, hooks, TolerancePolicy.ToleranceFor(dtype));
        SkipWhereTheMachineIsAtFault(comparison.Passed, CaseCatalogue.Get(caseId), dtype);
        GradientAssert.Passed(comparison);
    }

    [Theory]
    [MemberData(nameof(LayerCases))]
    public void Chunked_runs_give_the_unchunked_result(string caseId)
    {
        using var problem = CaseCatalogue.Get(caseId).Create(ScalarType.Float64, TestSettings.Device);
        using var whole = problem.Run(new FunctionalEngine());
        foreach (var chunk in new[] { 1, 2, 3 })
        {
            using var chunked = problem.Run(new FunctionalEngine(new FunctionalEngineOptions { ChunkSize = chunk }));
            GradientAssert.Agree(chunked, whole, ScalarType.Float64);
        }
    }

    // Every route gives the same gradients, so only this pins the measured choice (a wrong one costs up to 25x).
    [Fact]
    public void Auto_takes_the_measured_convolution_route_and_a_requested_one_as_asked()
    {
        long threshold = ConvolutionForward.CpuGroupedMinPositions;
        Assert.Equal(ConvolutionStrategy.SharedValueUnfold,
            ConvolutionForward.Choose(ConvolutionStrategy.Auto, CPU, threshold - 1));
        Assert.Equal(ConvolutionStrategy.GroupedConvolution,
            ConvolutionForward.Choose(ConvolutionStrategy.Auto, CPU, threshold));
        Assert.Equal(ConvolutionStrategy.UnfoldMatmul,
            ConvolutionForward.Choose(ConvolutionStrategy.UnfoldMatmul, CPU, threshold));
    }

    [Theory]
    [InlineData(ConvolutionStrategy.GroupedConvolution)]
    [InlineData(ConvolutionStrategy.UnfoldMatmul)]
    [InlineData(ConvolutionStrategy.SharedValueUnfold)]
    public void Every_convolution_route_agrees_with_the_oracle_on_every_convolution_case(ConvolutionStrategy strategy)
    {
        foreach (var gradientCase in CaseCatalogue.All.Where(c => c.Id.StartsWith("conv", StringComparison.Ordinal)
            || c.Id.Contains("cnn", StringComparison.Ordinal)))
        {
            using var problem = gradientCase.Create(ScalarType.Float64, TestSettings.Device);
            using var actual = problem.Run(new FunctionalEngine(new FunctionalEngineOptions
                { Convolution = strategy }));
            GradientAssert.Agree(actual, OracleCache.Float64(gradientCase), ScalarType.Float64);
        }
    }

    [Fact]
    public void A_chunk_size_below_one_is_refused()
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(()
            => new FunctionalEngine(new FunctionalEngineOptions { ChunkSize = 0 }));
        Assert.Contains("at least 1", error.Message, StringComparison.Ordinal);
    }
}
