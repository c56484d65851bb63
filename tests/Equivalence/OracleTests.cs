using TorchSharp;
using PerSampleGrads.Cases;
using PerSampleGrads.Oracle;
using PerSampleGrads.Checking;
using PerSampleGrads.Zoo;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace PerSampleGrads.Tests;

/// <summary>The oracle against closed-form truth, the batch gradient, itself in float32, and bad input.</summary>
[Trait("Category", "Oracle")]
public sealed class OracleTests
{
    private static readonly PerSampleGradientOracle Oracle = new();

    [Fact]
    public void A_tensor_held_by_two_modules_is_reported_under_both_names_with_the_hook_engines_gradients()
    {
        TestSettings.RequireTorch();
        // ids -> Embedding(7, 4) -> tanh -> Linear(4 -> 7) holding the embedding's table -> flatten -> head.
        using var model = Seeded.Build(4, () =>
        {
            var embed = Embedding(7, 4);
            var project = Linear(4, 7, hasBias: false);
            project.weight = embed.weight!;
            return (Module<Tensor, Tensor>)Sequential(("embed", embed), ("act", Tanh()), ("project", project),
                ("flat", Flatten()), ("head", Linear(21, 3)));
        });
        using var ids = Seeded.Build(5, () => randint(1, 7, [4, 3]));
        using var y = tensor(new long[] { 0, 2, 1, 1 });
        using var oracle = Oracle.Compute(model, ids, y, LossFunction.CrossEntropy());
        using var hooks = new Engines.Hooks.HookEngine().Compute(model, ids, y, LossFunction.CrossEntropy());
        Assert.Equal(model.named_parameters().Select(p => p.name), oracle.Names);
        GradientAssert.Agree(oracle, hooks, ScalarType.Float32);
    }

    [Fact]
    public void The_batch_loss_is_the_sum_or_the_mean_of_the_per_sample_losses_as_declared()
    {
        TestSettings.RequireTorch();
        using var output = Seeded.Build(1, () => randn(5, 3, dtype: ScalarType.Float64));
        using var targets = tensor(new long[] { 0, 2, 1, 1, 0 });
        using var values = Seeded.Build(2, () => randn(5, 3, dtype: ScalarType.Float64));
        foreach (var (reduction, reduce) in new (LossReduction, Func<Tensor, Tensor>)[]
            { (LossReduction.Sum, t => t.sum()), (LossReduction.Mean, t => t.mean()) })
        {
            // A built-in loss and a custom one (whose reduction the loss function applies itself).
            foreach (var (loss, target) in new[] { (LossFunction.CrossEntropy(reduction), targets),
                (Cases.CaseCatalogue.SoftMargin(reduction), values) })
            {
                using var perSample = loss.PerSampleLosses(output, target);
                using var batch = loss.BatchLoss(output, target);
                Assert.Equal(reduce(perSample).item<double>(), batch.item<double>(), 12);
            }
        }
    }

    public OracleTests() => TestSettings.RequireTorch();

    [Theory]
    [InlineData(LossReduction.Sum)]
    [InlineData(LossReduction.Mean)]
    public void Linear_regression_gradients_equal_the_analytic_formula(LossReduction reduction)
    {
        using var scope = NewDisposeScope();
        var model = Seeded.Build(3, () => Linear(4, 3)).to(ScalarType.Float64);
        using var generator = Seeded.Generator(5);
        var x = randn([6, 4], ScalarType.Float64, generator: generator);
        var y = randn([6, 3], ScalarType.Float64, generator: generator);
        using var result = Oracle.Compute(model, x, y, LossFunction.MeanSquaredError(reduction));

        // L_i = c * sum_k r_ik^2 with r = W x_i + b - y_i, c = 1 (sum) or 1/K (mean over the sample's K outputs).
        double c = reduction == LossReduction.Sum ? 1.0 : 1.0 / 3;
        var residual = x.matmul(((Tensor)model.weight).detach().t()) + ((Tensor)model.bias!).detach() - y;
        var weight = 2 * c * residual.unsqueeze(2) * x.unsqueeze(1);
        var bias = 2 * c * residual;
        AssertClose(result["weight"], weight, 1e-12);
        AssertClose(result["bias"], bias, 1e-12);
    }

    [Theory]
    [InlineData(LossReduction.Sum)]
    [InlineData(LossReduction.Mean)]
    public void Logistic_regression_gradients_equal_the_analytic_formula(LossReduction reduction)
    {
        using var scope = NewDisposeScope();
        var model = Seeded.Build(4, () => Linear(5, 4)).to(ScalarType.Float64);
        using var generator = Seeded.Generator(6);
        var x = randn([7, 5], ScalarType.Float64, generator: generator);
        var y = randint(0, 4, [7], generator: generator);
        using var result = Oracle.Compute(model, x, y, LossFunction.CrossEntropy(reduction));

        // dL_i/dz = softmax(z_i) - onehot(y_i), whatever the reduction (one term per sample).
        var logits = x.matmul(((Tensor)model.weight).detach().t()) + ((Tensor)model.bias!).detach();
        var delta = functional.softmax(logits, 1) - functional.one_hot(y, 4).to(ScalarType.Float64);
        AssertClose(result["weight"], delta.unsqueeze(2) * x.unsqueeze(1), 1e-12);
        AssertClose(result["bias"], delta, 1e-12);
    }

    public static TheoryData<string> ZooModels => new(ModelZoo.All.Select(m => m.Name));

    [Theory]
    [MemberData(nameof(ZooModels))]
    public void Per_sample_gradients_sum_to_the_batch_gradient_of_the_sum_reduced_loss(string name)
    {
        var zoo = ModelZoo.Get(name);
        using var problem = CaseCatalogue.FromZoo(zoo, zoo == ModelZoo.ResNet18GroupNorm ? 2 : 5,
            LossFunction.CrossEntropy(LossReduction.Sum))
            .Create(ScalarType.Float64, TestSettings.Device);
        using var perSample = problem.Run(Oracle);

        using var scope = NewDisposeScope();
        var parameters = problem.Model.parameters().Where(p => p.requires_grad).Cast<Tensor>().ToList();
        autograd.backward([problem.Loss.BatchLoss(problem.Model.call(problem.Inputs), problem.Targets)],
            inputs: parameters);
        using var summed = new PerSampleGradients("sum over samples", 1,
            perSample.Entries.Select(e => (e.Name, e.Gradient.sum(dim: 0, keepdim: true))));
        using var batch = new PerSampleGradients("batch gradient", 1, problem.Model.named_parameters()
            .Where(p => p.parameter.requires_grad).Select(p => (p.name, p.parameter.grad!.unsqueeze(0))));
        GradientAssert.Agree(summed, batch, TolerancePolicy.ToleranceFor(ScalarType.Float64));
    }

    [Fact]
    public void Float32_oracle_agrees_with_float64_oracle_and_leaves_the_model_unchanged()
    {
        using var problem = CaseCatalogue.FromZoo(ModelZoo.SmallCnn, 4).Create(ScalarType.Float32, TestSettings.Device);
        // A .grad the caller has must survive, as must every flag and mode.
        using (var scope = NewDisposeScope())
        {
            var first = problem.Model.parameters().First();
            first.grad = full_like(first, 0.25);
        }
        using var snapshot = new ModelSnapshot(problem.Model, problem.Inputs);
        using var float32 = problem.Run(Oracle);
        using var float64 = problem.Run(new PerSampleGradientOracle(new OracleOptions
            { ComputeDType = ScalarType.Float64, ModelFactory = problem.Factory }));

        Assert.Equal(ScalarType.Float32, float32.Entries.First().Gradient.dtype);
        Assert.Equal(ScalarType.Float64, float64.Entries.First().Gradient.dtype);
        GradientAssert.Agree(float32, float64, TolerancePolicy.ToleranceFor(ScalarType.Float32));
        Assert.Empty(snapshot.Differences());
    }

    [Fact]
    public void Frozen_parameters_are_excluded_and_unused_parameters_get_zeros()
    {
        using var problem = CaseCatalogue.Get("unused-branch-B3-ce-mean").Create(ScalarType.Float64,
            TestSettings.Device);
        problem.Model.named_parameters().Single(p => p.name == "used.bias").parameter.requires_grad_(false);
        using var result = problem.Run(Oracle);

        Assert.Equal(["used.weight", "unused.weight", "unused.bias"], result.Names);
        using var scope = NewDisposeScope();
        Assert.Equal(0.0, result["unused.weight"].abs().max().item<double>());
        Assert.True(result["used.weight"].abs().max().item<double>() > 0);
    }

    [Fact]
    public void Progress_is_reported_once_per_sample()
    {
        using var problem = CaseCatalogue.FromZoo(ModelZoo.Mlp, 5).Create(ScalarType.Float32, TestSettings.Device);
        var seen = new List<(long, long)>();
        using var result = problem.Run(new PerSampleGradientOracle(new OracleOptions
            { Progress = (done, total) => seen.Add((done, total)) }));
        Assert.Equal(Enumerable.Range(1, 5).Select(i => ((long)i, 5L)), seen);
    }

    [Fact]
    public void Memory_stays_flat_over_a_thousand_oracle_calls()
    {
        using var problem = CaseCatalogue.FromZoo(ModelZoo.Mlp, 2).Create(ScalarType.Float32, TestSettings.Device);
        long growth = TensorLeaks.Growth(() =>
        {
            using var result = problem.Run(Oracle);
        }, repeats: 1000);
        Assert.Equal(0, growth);
    }

    private static void AssertClose(Tensor actual, Tensor expected, double relative)
    {
        Assert.Equal(expected.shape, actual.shape);
        double error = (actual - expected).abs().max().item<double>() / expected.abs().max().item<double>();
        Assert.True(error <= relative, $"relative error {error:e3} > {relative:e0}");
    }
}

/// <summary>When TorchSharp's native library cannot load, the message is one line naming the cause and the
/// fix.</summary>
[Trait("Category", "Oracle")]
public sealed class TorchRuntimeTests
{
    [Fact]
    public void A_missing_GLIBCXX_version_is_named_with_the_setup_script()
    {
        // What .NET raises on Debian 12 without the setup: the dlopen error inside a type initialiser.
        var failure = new TypeInitializationException("TorchSharp.torch", new DllNotFoundException(
            "Unable to load shared library 'LibTorchSharp': /lib/x86_64-linux-gnu/libstdc++.so.6: version " +
                "`GLIBCXX_3.4.32' not found (required by libLibTorchSharp.so)"));
        var line = TorchRuntime.Describe(failure);
        Assert.DoesNotContain('\n', line);
        Assert.Contains("GLIBCXX_3.4.32", line, StringComparison.Ordinal);
        Assert.Contains("scripts/setup.sh", line, StringComparison.Ordinal);
    }

    [Fact]
    public void Other_load_failures_name_the_loader_message_in_one_line()
    {
        var failure = new TypeInitializationException("TorchSharp.torch",
            new DllNotFoundException("libtorch_cpu.so: cannot open shared object file\nmore detail"));
        var line = TorchRuntime.Describe(failure);
        Assert.DoesNotContain('\n', line);
        Assert.Contains("libtorch_cpu.so: cannot open shared object file", line, StringComparison.Ordinal);
    }

    [Fact]
    public void TorchSharp_loads_here() => Assert.Null(TorchRuntime.Problem);
}
