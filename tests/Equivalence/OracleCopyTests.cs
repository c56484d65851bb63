using TorchSharp;
using PerSampleGrads.Cases;
using PerSampleGrads.Zoo;
using PerSampleGrads.Oracle;
using PerSampleGrads.Checking;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace PerSampleGrads.Tests;

/// <summary>
/// The oracle's copy path (<see cref="ModelCopy"/>: a fresh instance from the factory, the original's values, modes
/// and flags loaded, converted to another dtype or moved to another device) for every loss and both reductions,
/// against the oracle computed without a copy on a model built in float64 from the same weights.
/// </summary>
[Trait("Category", "Oracle")]
public sealed class OracleCopyTests
{
    public OracleCopyTests() => TestSettings.RequireTorch();

    /// <summary>
    /// Linear, BatchNorm1d in eval mode (buffers the copy must carry), a frozen bias (a flag the copy must carry),
    /// Tanh and a head; NLL gets a LogSoftmax head.
    /// </summary>
    private static GradientCase Case(string loss, LossReduction reduction)
    {
        var function = loss switch
        {
            "ce" => LossFunction.CrossEntropy(reduction),
            "nll" => LossFunction.NegativeLogLikelihood(reduction),
            "mse" => LossFunction.MeanSquaredError(reduction),
            "l1" => LossFunction.L1(reduction),
            "custom" => CaseCatalogue.SoftMargin(reduction),
            _ => throw new ArgumentException(loss),
        };
        return new GradientCase($"copy-{loss}-{reduction}", "copy", () =>
        {
            var model = CaseModels.Build(13, () => loss == "nll"
                ? [Linear(6, 8), BatchNorm1d(8), Tanh(), Linear(8, 4), LogSoftmax(1)]
                : [Linear(6, 8), BatchNorm1d(8), Tanh(), Linear(8, 4)], [6]);
            model.named_parameters().Single(p => p.name == "0.bias").parameter.requires_grad_(false);
            return model;
        }, [6], function, 5);
    }

    public static TheoryData<string, LossReduction> LossesAndReductions
    {
        get
        {
            var data = new TheoryData<string, LossReduction>();
            foreach (var loss in new[] { "ce", "nll", "mse", "l1", "custom" })
                foreach (var reduction in new[] { LossReduction.Mean, LossReduction.Sum })
                    data.Add(loss, reduction);
            return data;
        }
    }

    private static PerSampleGradients WithoutCopy(GradientCase gradientCase)
    {
        using var problem = gradientCase.Create(ScalarType.Float64);
        return problem.Run(new PerSampleGradientOracle());
    }

    [Theory]
    [MemberData(nameof(LossesAndReductions))]
    public void A_float32_model_computed_in_float64_through_a_copy_equals_the_float64_model_without_copy(
        string loss, LossReduction reduction)
    {
        var gradientCase = Case(loss, reduction);
        using var expected = WithoutCopy(gradientCase);
        using var problem = gradientCase.Create(ScalarType.Float32);
        using var snapshot = new ModelSnapshot(problem.Model, problem.Inputs);
        using var copied = problem.Run(new PerSampleGradientOracle(
            new OracleOptions { ComputeDType = ScalarType.Float64, ModelFactory = problem.Factory }));
        Assert.Equal(ScalarType.Float64, copied.Entries.First().Gradient.dtype);
        Assert.DoesNotContain("0.bias", copied.Names);
        GradientAssert.Agree(copied, expected, ScalarType.Float64);
        Assert.Empty(snapshot.Differences());
    }

    [Fact]
    public void The_copy_carries_the_models_current_values_not_the_factorys()
    {
        // A model trained away from its initial values: the factory's fresh instance alone would give other
        // gradients (a copy that skipped loading the values survived every test built from factory weights).
        var gradientCase = Case("ce", LossReduction.Mean);
        using var problem = gradientCase.Create(ScalarType.Float32);
        using var exact = gradientCase.Create(ScalarType.Float64);
        using (no_grad())
        {
            var moved = problem.Model.named_parameters().Single(p => p.name == "3.weight").parameter.add_(0.5);
            exact.Model.named_parameters().Single(p => p.name == "3.weight").parameter
                .copy_(moved.to(ScalarType.Float64));
        }
        using var expected = exact.Run(new PerSampleGradientOracle());
        using var copied = problem.Run(new PerSampleGradientOracle(
            new OracleOptions { ComputeDType = ScalarType.Float64, ModelFactory = problem.Factory }));
        GradientAssert.Agree(copied, expected, ScalarType.Float64);
    }

    [Theory]
    [MemberData(nameof(LossesAndReductions))]
    public void A_float64_model_computed_in_float32_through_a_copy_agrees_within_the_float32_bound(
        string loss, LossReduction reduction)
    {
        var gradientCase = Case(loss, reduction);
        using var expected = WithoutCopy(gradientCase);
        using var problem = gradientCase.Create(ScalarType.Float64);
        using var copied = problem.Run(new PerSampleGradientOracle(
            new OracleOptions { ComputeDType = ScalarType.Float32, ModelFactory = problem.Factory }));
        Assert.Equal(ScalarType.Float32, copied.Entries.First().Gradient.dtype);
        GradientAssert.Agree(copied, expected, ScalarType.Float32);
    }

    [Theory]
    [MemberData(nameof(LossesAndReductions))]
    public void A_model_computed_on_another_device_through_a_copy_equals_the_model_without_copy(
        string loss, LossReduction reduction)
    {
        Assert.SkipUnless(cuda.is_available(), "No CUDA device: the device copy path needs a second device.");
        var gradientCase = Case(loss, reduction);
        using var expected = WithoutCopy(gradientCase);
        using var problem = gradientCase.Create(ScalarType.Float64);
        using var copied = problem.Run(new PerSampleGradientOracle(new OracleOptions
            { Device = new Device(DeviceType.CUDA, 0), ModelFactory = problem.Factory, Tf32 = Tf32Mode.ForceOff }));
        Assert.Equal(DeviceType.CUDA, copied.Entries.First().Gradient.device.type);
        GradientAssert.Agree(copied, expected, ScalarType.Float64);
    }

    [Fact]
    public void Token_inputs_stay_integer_through_a_float64_copy()
    {
        var gradientCase = CaseCatalogue.Get("embedding-pad0-B5-ce-mean");
        using var expected = WithoutCopy(gradientCase);
        using var problem = gradientCase.Create(ScalarType.Float32);
        using var copied = problem.Run(new PerSampleGradientOracle(
            new OracleOptions { ComputeDType = ScalarType.Float64, ModelFactory = problem.Factory }));
        GradientAssert.Agree(copied, expected, ScalarType.Float64);
    }

    [Fact]
    public void A_copy_takes_the_models_modes_and_frozen_flags_not_the_factorys()
    {
        // The factory builds BatchNorm in training mode with every parameter trainable; the caller put the model in
        // eval mode and froze the head's weight afterwards. A copy with the factory's modes would normalise one sample
        // by its own statistics (or refuse), one with its flags would report the frozen weight.
        Module<Tensor, Tensor> Factory() => Seeded.Build(13, () =>
            (Module<Tensor, Tensor>)Sequential(Linear(6, 8), BatchNorm1d(8), Tanh(), Linear(8, 4)));
        Module<Tensor, Tensor> Prepared(ScalarType dtype)
        {
            var model = Factory();
            // Running statistics away from 0 and 1 (drawn in float32, then converted), so that eval mode differs
            // from training mode.
            Seeded.Build(7, () =>
            {
                foreach (var norm in model.modules().OfType<TorchSharp.Modules.BatchNorm>())
                    Testing.Specs.NormLayers.RandomizeRunningStatistics(norm);
                return 0;
            });
            model.to(dtype);
            model.eval();
            model.named_parameters().Single(p => p.name == "3.weight").parameter.requires_grad_(false);
            return model;
        }
        using var inputs = Seeded.Build(2, () => randn(5, 6));
        using var targets = Seeded.Build(3, () => randint(0, 4, [5]));
        using var copied = CopiedAgreesWithoutCopy(Prepared, Factory, inputs, targets);
        Assert.DoesNotContain("3.weight", copied.Names);
    }

    [Fact]
    public void Parameters_the_caller_tied_after_the_factory_get_the_sum_over_the_copys_untied_tensors()
    {
        // ids -> Embedding(7, 4) -> tanh -> Linear(4 -> 7) -> flatten -> Linear: the caller ties the projection to
        // the embedding table; the factory's fresh instance does not, so the copy holds two tensors for one.
        Module<Tensor, Tensor> Factory() => Seeded.Build(5, () => (Module<Tensor, Tensor>)Sequential(
            ("embed", Embedding(7, 4)), ("act", Tanh()), ("project", Linear(4, 7, hasBias: false)),
            ("flat", Flatten()), ("head", Linear(21, 3))));
        Module<Tensor, Tensor> Tied(ScalarType dtype)
        {
            var model = Factory();
            model.to(dtype);
            var modules = model.named_children().ToDictionary(c => c.name, c => c.module);
            ((TorchSharp.Modules.Linear)modules["project"]).weight =
                ((TorchSharp.Modules.Embedding)modules["embed"]).weight!;
            return model;
        }
        using var ids = Seeded.Build(2, () => randint(1, 7, [4, 3]));
        using var targets = Seeded.Build(3, () => randint(0, 3, [4]));
        using var copied = CopiedAgreesWithoutCopy(Tied, Factory, ids, targets);
        Assert.Contains("embed.weight", copied.Names);
    }

    // The oracle on the float32 model through a float64 copy from the factory agrees with the oracle on the model
    // prepared in float64 directly (CE/mean); returns the copied result.
    private static PerSampleGradients CopiedAgreesWithoutCopy(Func<ScalarType, Module<Tensor, Tensor>> prepared,
        Func<Module<Tensor, Tensor>> factory, Tensor inputs, Tensor targets)
    {
        using var exact = prepared(ScalarType.Float64);
        using var exactInputs = is_floating_point(inputs) ? inputs.to(ScalarType.Float64) : inputs.alias();
        using var expected = new PerSampleGradientOracle().Compute(exact, exactInputs, targets,
            LossFunction.CrossEntropy());
        using var model = prepared(ScalarType.Float32);
        var copied = new PerSampleGradientOracle(new OracleOptions
            { ComputeDType = ScalarType.Float64, ModelFactory = factory }).Compute(model, inputs, targets,
            LossFunction.CrossEntropy());
        GradientAssert.Agree(copied, expected, ScalarType.Float64);
        return copied;
    }
}
