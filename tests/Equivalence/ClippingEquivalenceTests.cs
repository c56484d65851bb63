using TorchSharp;
using PerSampleGrads.Cases;
using PerSampleGrads.Engines.Clipping;
using PerSampleGrads.Zoo;
using static TorchSharp.torch;

namespace PerSampleGrads.Tests;

/// <summary>
/// The clipping method against the definition (<see cref="ClippedGradients.FromPerSampleGradients"/>) applied to the
/// float64 oracle, case by case over the catalogue and the zoo, with a bound that clips about half the samples.
/// </summary>
[Trait("Category", "Equivalence")]
[Trait("Engine", "Clipping")]
public sealed class ClippingEquivalenceTests
{
    public ClippingEquivalenceTests() => TestSettings.RequireTorch();

    // The cases the clipping method takes (CaseRefusals): its refusals are tested in SignatureTests.
    public static TheoryData<string, string> CasesAndDTypes =>
        EngineEquivalenceTests.CasesAndDTypesWhere(id => !CaseRefusals.Clipping(id));

    public static TheoryData<string> Cases =>
        new(CaseCatalogue.All.Where(c => !CaseRefusals.Clipping(c.Id) && TestSettings.Selects(c.Id))
            .Select(c => c.Id));

    [Theory]
    [MemberData(nameof(CasesAndDTypes))]
    public void Norms_and_clipped_sums_agree_with_the_definition_on_the_float64_oracle(string caseId, string dtypeName)
    {
        var dtype = ElementTypes.Parse(dtypeName);
        var gradientCase = CaseCatalogue.Get(caseId);
        var oracle = OracleCache.Float64(gradientCase);
        double bound = ClippingAssert.MedianBound(oracle);
        using var expected = ClippedGradients.FromPerSampleGradients(oracle, bound);
        using var problem = gradientCase.Create(dtype, TestSettings.Device);
        using var snapshot = new ModelSnapshot(problem.Model, problem.Inputs);

        using var actual = new ClippingMethod(new ClippingOptions { ClipBound = bound })
            .Compute(problem.Model, problem.Inputs, problem.Targets, problem.Loss);

        Assert.Equal(dtype, actual.Norms.dtype);
        var comparison = Checking.ClippingComparison.Compare(actual, expected,
            Checking.TolerancePolicy.ToleranceFor(dtype));
        EngineEquivalenceTests.SkipWhereTheMachineIsAtFault(comparison.Passed, gradientCase, dtype);
        ClippingAssert.Passed(comparison);
        Assert.Empty(snapshot.Differences());
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Every_norm_route_and_both_clipped_sum_routes_agree_in_float64(string caseId)
    {
        var gradientCase = CaseCatalogue.Get(caseId);
        var oracle = OracleCache.Float64(gradientCase);
        double bound = ClippingAssert.MedianBound(oracle);
        using var expected = ClippedGradients.FromPerSampleGradients(oracle, bound);
        using var problem = gradientCase.Create(ScalarType.Float64, TestSettings.Device);
        foreach (var (route, sum) in new[] { (NormRoute.Ghost, ClippedSumRoute.SecondBackward), (NormRoute.Materialise,
            ClippedSumRoute.BookKeeping) })
        {
            using var actual = new ClippingMethod(new ClippingOptions { ClipBound = bound, Route = route,
                ClippedSum = sum })
                .Compute(problem.Model, problem.Inputs, problem.Targets, problem.Loss);
            ClippingAssert.Agree(actual, expected, ScalarType.Float64);
        }
    }

    [Fact]
    public void The_cost_rule_picks_ghost_norms_for_resnet18s_inner_convolutions_and_materialises_its_stem()
    {
        using var problem = CaseCatalogue.FromZoo(ModelZoo.ResNet18GroupNorm, 2).Create(ScalarType.Float32,
            TestSettings.Device);
        using var result = new ClippingMethod().Compute(problem.Model, problem.Inputs, problem.Targets, problem.Loss);
        Assert.Equal("materialised", result.Routes["conv1"]);
        Assert.Equal("ghost", result.Routes["layer1.0.conv1"]);
        Assert.Equal("materialised", result.Routes["layer1.0.bn1"]);
    }

    [Fact]
    public void The_callers_gradients_are_kept_and_the_result_written_into_grad_drives_an_optimizer_step()
    {
        using var problem = CaseCatalogue.FromZoo(ModelZoo.Mlp, 4).Create(ScalarType.Float64, TestSettings.Device);
        var parameters = problem.Model.parameters().ToList();
        using (no_grad()) foreach (var p in parameters) p.grad = full_like(p, 3.0).DetachFromDisposeScope();

        using var result = new ClippingMethod(new ClippingOptions { ClipBound = 0.5, Average = true })
            .Compute(problem.Model, problem.Inputs, problem.Targets, problem.Loss);
        foreach (var p in parameters)
        {
            using var grad = p.grad!;
            Assert.True(grad.eq(3.0).all().item<bool>(), "the caller's .grad was changed");
        }

        var before = parameters.Select(p => p.detach().clone().DetachFromDisposeScope()).ToList();
        try
        {
            result.WriteGradients(problem.Model);
            using var optimizer = optim.SGD(problem.Model.parameters(), 0.1);
            optimizer.step();
            using var scope = NewDisposeScope();
            var names = problem.Model.named_parameters().Select(p => p.name).ToList();
            var steps = names.Zip(parameters, before).Select(t => (t.First,
                ((t.Third - t.Second.detach()) / 0.1).unsqueeze(0)));
            using var moved = new PerSampleGradients("optimizer step / learning rate", 1, steps.ToList());
            using var expected = Checking.ClippingComparison.SumsOf(result);
            GradientAssert.Agree(moved, expected, ScalarType.Float64);
        }
        finally
        {
            foreach (var t in before) t.Dispose();
        }
    }

    [Theory]
    [InlineData(0.0, 0.0)]
    [InlineData(-1.0, 0.0)]
    [InlineData(double.NaN, 0.0)]
    [InlineData(1.0, -0.5)]
    [InlineData(1.0, double.PositiveInfinity)]
    [InlineData(double.PositiveInfinity, 1.0)]
    public void Invalid_clipping_settings_are_refused(double bound, double sigma)
    {
        var error = Assert.Throws<PerSampleGradientsException>(() =>
            new ClippingMethod(new ClippingOptions { ClipBound = bound, NoiseMultiplier = sigma }));
        Assert.Equal(Problem.InvalidClipping, error.Problem);
    }

    [Fact]
    public void Memory_stays_flat_over_five_hundred_calls()
    {
        using var problem = CaseCatalogue.FromZoo(ModelZoo.SmallCnn, 2).Create(ScalarType.Float32, TestSettings.Device);
        var method = new ClippingMethod(new ClippingOptions { NoiseMultiplier = 1.0 });
        long growth = TensorLeaks.Growth(() =>
        {
            using var result = method.Compute(problem.Model, problem.Inputs, problem.Targets, problem.Loss);
        }, repeats: 500);
        Assert.Equal(0, growth);
    }
}
