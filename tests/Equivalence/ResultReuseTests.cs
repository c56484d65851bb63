using PerSampleGrads.Cases;
using PerSampleGrads.Engines;
using PerSampleGrads.Engines.Functional;
using PerSampleGrads.Engines.Hooks;
using PerSampleGrads.Zoo;
using static TorchSharp.torch;

namespace PerSampleGrads.Tests;

/// <summary>
/// Both engines writing into a caller's earlier result: the same answer as fresh memory, the same object back, and
/// clear refusals of a result that does not fit, was disposed, or is being written.
/// </summary>
[Trait("Category", "Equivalence")]
public sealed class ResultReuseTests
{
    public ResultReuseTests() => TestSettings.RequireTorch();

    public static TheoryData<string, string> EnginesAndCases
    {
        get
        {
            var data = new TheoryData<string, string>();
            // ResNet-18 is left to the bit-for-bit test below: three engines on it would double this class's time.
            foreach (var engine in new[] { "hooks", "functional", "functional-chunk-2" })
                foreach (var c in CaseCatalogue.All.Where(c => !c.Id.Contains("resnet", StringComparison.Ordinal)))
                    data.Add(engine, c.Id);
            return data;
        }
    }

    private static Func<PerSampleGradients?, PerSampleGradients> Engine(string name, GradientProblem problem)
        => name switch
    {
        "hooks" => into => new HookEngine().Compute(problem.Model, problem.Inputs, problem.Targets, problem.Loss, into),
        "functional" => into => new FunctionalEngine().Compute(problem.Model, problem.Inputs, problem.Targets,
            problem.Loss, into),
        _ => into => new FunctionalEngine(new FunctionalEngineOptions { ChunkSize = 2 })
            .Compute(problem.Model, problem.Inputs, problem.Targets, problem.Loss, into),
    };

    [Theory]
    [MemberData(nameof(EnginesAndCases))]
    public void A_result_written_into_memory_filled_with_NaN_agrees_with_the_oracle_and_is_the_same_object(string
        engine, string caseId)
    {
        var gradientCase = CaseCatalogue.Get(caseId);
        using var problem = gradientCase.Create(ScalarType.Float64, TestSettings.Device);
        var compute = Engine(engine, problem);
        using var buffer = compute(null);
        using (no_grad()) foreach (var (_, g) in buffer.Entries) g.fill_(double.NaN);

        var reused = compute(buffer);

        Assert.Same(buffer, reused);
        GradientAssert.Agree(reused, OracleCache.Float64(gradientCase), ScalarType.Float64);
    }

    [Fact]
    public void The_hook_engine_writing_in_place_gives_bit_for_bit_its_fresh_result_on_resnet18()
    {
        using var problem = CaseCatalogue.FromZoo(ModelZoo.ResNet18GroupNorm, 3).Create(ScalarType.Float32,
            TestSettings.Device);
        using var fresh = problem.Run(new HookEngine());
        using var buffer = problem.Run(new HookEngine());
        // NaN first: a layer whose in-place write were skipped would otherwise keep the fresh values (a mutation that
        // dropped the convolution rule's in-place product survived this test without it).
        using (no_grad()) foreach (var (_, g) in buffer.Entries) g.fill_(float.NaN);
        new HookEngine().Compute(problem.Model, problem.Inputs, problem.Targets, problem.Loss, buffer);
        GradientAssert.Identical(buffer, fresh);
    }

    // A Linear layer's per-sample gradients written in place (from 1 MiB: here 2 x 500 x 600 float32 values, 2.4 MB);
    // the zoo models' Linear layers stay below it, so no other test reaches that branch.
    [Fact]
    public void The_hook_engine_writing_in_place_agrees_with_its_fresh_result_on_a_wide_linear_layer()
    {
        using var model = Zoo.Seeded.Build(5, () =>
            (nn.Module<Tensor, Tensor>)nn.Sequential(nn.Linear(600, 500), nn.ReLU(), nn.Linear(500, 3)));
        using var inputs = Zoo.Seeded.Build(6, () => randn(2, 600));
        using var targets = Zoo.Seeded.Build(7, () => randint(0, 3, [2]));
        var loss = LossFunction.CrossEntropy();
        using var fresh = new HookEngine().Compute(model, inputs, targets, loss);
        using var buffer = new HookEngine().Compute(model, inputs, targets, loss);
        using (no_grad()) foreach (var (_, g) in buffer.Entries) g.fill_(float.NaN);
        new HookEngine().Compute(model, inputs, targets, loss, buffer);
        GradientAssert.Agree(buffer, fresh, ScalarType.Float32);
    }

    [Theory]
    [InlineData(1L, 5L)]
    [InlineData(1L, 2L)]
    [InlineData(1L, 1L)]
    [InlineData(3L, 4L)]
    [InlineData(3L, 2L)]
    [InlineData(3L, 1L)]
    public void The_in_place_products_write_the_batched_products_into_memory_filled_with_NaN(long groups,
        long positions)
    {
        using var scope = NewDisposeScope();
        using var generator = Zoo.Seeded.Generator(3);
        long n = 4, o = 6, ck = 9;
        var g = randn([n, o, positions], dtype: ScalarType.Float64, generator: generator);
        var columns = randn([n, ck, positions], dtype: ScalarType.Float64, generator: generator);
        var destination = full([n, o, ck / groups], double.NaN, dtype: ScalarType.Float64);
        Maths.PerSampleContractions.GroupedColumnsProductInto(g, columns, groups, destination);
        var expected = Maths.PerSampleContractions.GroupedColumnsProduct(g, columns, groups);
        Assert.True(Close(destination, expected), "grouped in-place product differs from the batched one");

        var a = g.transpose(1, 2);
        var b = randn([n, positions, 5], dtype: ScalarType.Float64, generator: generator);
        var outer = full([n, o, 5], double.NaN, dtype: ScalarType.Float64);
        Maths.PerSampleContractions.SumOfOuterProductsInto(a, b, outer);
        Assert.True(Close(outer, Maths.PerSampleContractions.SumOfOuterProducts(a, b)),
            "in-place outer products differ from the batched ones");
        // One output (a Linear layer with one output unit): one row per sample, still summed over the positions.
        var single = a.narrow(2, 0, 1);
        var row = full([n, 1, 5], double.NaN, dtype: ScalarType.Float64);
        Maths.PerSampleContractions.SumOfOuterProductsInto(single, b, row);
        Assert.True(Close(row, Maths.PerSampleContractions.SumOfOuterProducts(single, b)),
            "in-place outer products with one output differ from the batched ones");
    }

    // Within the float64 policy, relative to the largest expected value (NaN never passes).
    private static bool Close(Tensor actual, Tensor expected)
    {
        double scale = expected.abs().max().item<double>();
        double error = (actual - expected).abs().max().item<double>();
        return error <= Checking.TolerancePolicy.ToleranceFor(ScalarType.Float64).Relative * scale;
    }

    [Fact]
    public void A_disposed_result_is_refused()
    {
        using var problem = CaseCatalogue.FromZoo(ModelZoo.Mlp, 3).Create(ScalarType.Float32, TestSettings.Device);
        var buffer = problem.Run(new HookEngine());
        buffer.Dispose();
        var error = Assert.Throws<PerSampleGradientsException>(() =>
            new HookEngine().Compute(problem.Model, problem.Inputs, problem.Targets, problem.Loss, buffer));
        Assert.Equal(Problem.ResultBufferDisposed, error.Problem);
    }

    [Theory]
    [InlineData("hooks")]
    [InlineData("functional")]
    public void A_result_of_another_batch_size_or_model_is_refused_with_every_mismatch_named(string engine)
    {
        using var problem = CaseCatalogue.FromZoo(ModelZoo.Mlp, 3).Create(ScalarType.Float32, TestSettings.Device);
        using var smaller = CaseCatalogue.FromZoo(ModelZoo.Mlp, 2).Create(ScalarType.Float32, TestSettings.Device);
        using var other = CaseCatalogue.FromZoo(ModelZoo.SmallCnn, 3).Create(ScalarType.Float32, TestSettings.Device);
        using var ofTwo = smaller.Run(new HookEngine());
        using var ofOther = other.Run(new HookEngine());
        var compute = Engine(engine, problem);

        var wrongSize = Assert.Throws<PerSampleGradientsException>(() => compute(ofTwo));
        Assert.Equal(Problem.ResultBufferMismatch, wrongSize.Problem);
        Assert.Contains("'0.weight' is [2, 64, 20], the call needs [3, 64, 20]", wrongSize.Message,
            StringComparison.Ordinal);
        Assert.Contains("'4.bias'", wrongSize.Message, StringComparison.Ordinal);
        var wrongModel = Assert.Throws<PerSampleGradientsException>(() => compute(ofOther));
        Assert.Equal(Problem.ResultBufferMismatch, wrongModel.Problem);
        using var float64 = CaseCatalogue.FromZoo(ModelZoo.Mlp, 3).Create(ScalarType.Float64, TestSettings.Device);
        using var ofFloat64 = float64.Run(new HookEngine());
        Assert.Equal(Problem.ResultBufferMismatch, Assert.Throws<PerSampleGradientsException>(()
            => compute(ofFloat64)).Problem);
    }

    [Fact]
    public void A_result_being_written_by_a_call_that_has_not_returned_is_refused_and_stays_usable()
    {
        using var problem = CaseCatalogue.FromZoo(ModelZoo.Mlp, 3).Create(ScalarType.Float64, TestSettings.Device);
        using var buffer = problem.Run(new HookEngine());
        PerSampleGradientsException? inner = null;
        // A loss that, while the outer call writes the buffer, asks for a second call into the same buffer.
        var reentrant = LossFunction.PerSample("reentrant", (output, target) =>
        {
            inner ??= Assert.Throws<PerSampleGradientsException>(() =>
                new HookEngine().Compute(problem.Model, problem.Inputs, problem.Targets, problem.Loss, buffer));
            return problem.Loss.PerSampleLosses(output, target);
        }, LossReduction.Mean, TargetKind.ClassIndices);

        new HookEngine().Compute(problem.Model, problem.Inputs, problem.Targets, reentrant, buffer);

        Assert.Equal(Problem.ResultBufferInUse, inner?.Problem);
        new HookEngine().Compute(problem.Model, problem.Inputs, problem.Targets, problem.Loss, buffer);
        GradientAssert.Agree(buffer, OracleCache.Float64(CaseCatalogue.FromZoo(ModelZoo.Mlp, 3)), ScalarType.Float64);
    }
}
