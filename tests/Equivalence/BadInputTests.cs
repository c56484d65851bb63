using TorchSharp;
using PerSampleGrads.Cases;
using PerSampleGrads.Engines;
using PerSampleGrads.Engines.Clipping;
using PerSampleGrads.Engines.Functional;
using PerSampleGrads.Engines.Hooks;
using PerSampleGrads.Oracle;
using PerSampleGrads.Zoo;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace PerSampleGrads.Tests;

/// <summary>
/// Every method answers bad input with <see cref="PerSampleGradientsException"/> naming the problem, and leaves the
/// model as it was (no hooks: a plain forward afterwards gives the same output).
/// </summary>
[Trait("Category", "Oracle")]
[Trait("Category", "Equivalence")]
public sealed class BadInputTests
{
    public BadInputTests() => TestSettings.RequireTorch();

    public static TheoryData<string> Methods => new("oracle", "hooks", "functional", "clipping");

    private static IPerSampleGradientMethod Method(string name) => name switch
    {
        "oracle" => new PerSampleGradientOracle(),
        "hooks" => new HookEngine(),
        "functional" => new FunctionalEngine(),
        "clipping" => new ClippingAsMethod(new ClippingOptions()),
        _ => throw new ArgumentException(name),
    };

    // The clipping method behind the per-sample interface, for refusals only: a result would be a test failure.
    private sealed class ClippingAsMethod(ClippingOptions options) : IPerSampleGradientMethod
    {
        public string Name => "clipping";

        public PerSampleGradients Compute(Module<Tensor, Tensor> model, Tensor inputs, Tensor targets,
            LossFunction loss)
        {
            using var result = new ClippingMethod(options).Compute(model, inputs, targets, loss);
            throw new InvalidOperationException("The clipping method computed a result instead of refusing the input.");
        }
    }

    private static Module<Tensor, Tensor> SmallModel() => Seeded.Build(1,
        () => (Module<Tensor, Tensor>)Sequential(Linear(4, 3)));

    private static void Expect(string method, Problem problem, Module<Tensor, Tensor> model, Tensor x, Tensor y,
        string mentions, LossFunction? loss = null)
    {
        using var snapshot = new ModelSnapshot(model, x.shape[0] > 0 && x.isfinite().all().item<bool>() ? x
            : zeros([1, .. x.shape[1..]], dtype: x.dtype));
        var error = Assert.Throws<PerSampleGradientsException>(()
            => Method(method).Compute(model, x, y, loss ?? LossFunction.CrossEntropy()));
        Assert.Equal(problem, error.Problem);
        Assert.Contains(mentions, error.Message, StringComparison.Ordinal);
        Assert.Empty(snapshot.Differences());
    }

    [Theory, MemberData(nameof(Methods))]
    public void An_empty_batch_is_refused(string method) =>
        Expect(method, Problem.EmptyBatch, SmallModel(), zeros(0, 4), zeros(0, ScalarType.Int64), "empty");

    [Theory, MemberData(nameof(Methods))]
    public void Inputs_and_targets_with_different_batch_sizes_are_refused(string method) =>
        Expect(method, Problem.BatchSizeMismatch, SmallModel(), randn(3, 4), zeros(2, ScalarType.Int64), "3 samples");

    [Theory, MemberData(nameof(Methods))]
    public void NaN_inputs_are_refused_naming_the_sample(string method)
    {
        var x = randn(3, 4);
        x[1, 2] = float.NaN;
        Expect(method, Problem.NonFiniteInput, SmallModel(), x, zeros(3, ScalarType.Int64), "sample 1");
    }

    [Theory, MemberData(nameof(Methods))]
    public void BatchNorm_in_training_mode_is_refused_naming_the_module_and_the_fix(string method)
    {
        var model = Seeded.Build(1, () => (Module<Tensor, Tensor>)Sequential(("conv", Conv2d(3, 4, 3)),
            ("norm", BatchNorm2d(4)), ("flat", Flatten()), ("head", Linear(16, 2))));
        model.train();
        Expect(method, Problem.BatchNormInTraining, model, randn(2, 3, 4, 4), zeros(2, ScalarType.Int64),
            "'norm' (BatchNorm2d)");
        var message = Assert.Throws<PerSampleGradientsException>(() => Method(method)
            .Compute(model, randn(2, 3, 4, 4), zeros(2, ScalarType.Int64), LossFunction.CrossEntropy())).Message;
        Assert.Contains("model.eval()", message, StringComparison.Ordinal);
        Assert.Contains("BatchNormConversion.ToGroupNorm", message, StringComparison.Ordinal);
    }

    [Theory, MemberData(nameof(Methods))]
    public void BatchNorm_without_running_statistics_is_refused_even_in_eval_mode(string method)
    {
        var model = Seeded.Build(1, () => (Module<Tensor, Tensor>)Sequential(("conv", Conv2d(3, 4, 3)),
            ("norm", BatchNorm2d(4, track_running_stats: false)), ("flat", Flatten()), ("head", Linear(16, 2))));
        model.eval();
        Expect(method, Problem.BatchNormInTraining, model, randn(2, 3, 4, 4), zeros(2, ScalarType.Int64),
            "track_running_stats");
    }

    [Theory, MemberData(nameof(Methods))]
    public void Dropout_in_training_mode_is_refused(string method)
    {
        var model = Seeded.Build(1, () => (Module<Tensor, Tensor>)Sequential(("drop", Dropout(0.5)),
            ("head", Linear(4, 3))));
        model.train();
        Expect(method, Problem.RandomnessInTraining, model, randn(2, 4), zeros(2, ScalarType.Int64), "eval");
    }

    [Theory]
    [InlineData("hooks", false)]
    [InlineData("hooks", true)]
    [InlineData("functional", false)]
    [InlineData("functional", true)]
    public void A_Transformer_layer_with_dropout_in_training_mode_is_refused(string method, bool decoder)
    {
        var model = Seeded.Build(1, () => (Module<Tensor, Tensor>)new TransformerClassifier(10, 8, 2, 12, decoder,
            Activations.ReLU, 3, dropout: 0.5));
        model.train();
        using var snapshot = new ModelSnapshot(model, ones(2, 5, dtype: ScalarType.Int64));
        var error = Assert.Throws<PerSampleGradientsException>(() => Method(method).Compute(model,
            randint(1, 10, [4, 5]), zeros(4, ScalarType.Int64), LossFunction.CrossEntropy()));
        Assert.Equal(Problem.RandomnessInTraining, error.Problem);
        Assert.Contains(decoder ? "'decoder' (TransformerDecoderLayer)" : "'encoder' (TransformerEncoderLayer)",
            error.Message, StringComparison.Ordinal);
        Assert.Empty(snapshot.Differences());
    }

    [Theory, MemberData(nameof(Methods))]
    public void Class_targets_out_of_range_are_refused(string method) =>
        Expect(method, Problem.InvalidTargets, SmallModel(), randn(2, 4), tensor(new long[] { 0, 7 }), "[0, 2]");

    [Theory, MemberData(nameof(Methods))]
    public void A_class_target_equal_to_the_number_of_classes_is_refused(string method) =>
        Expect(method, Problem.InvalidTargets, SmallModel(), randn(2, 4), tensor(new long[] { 0, 3 }), "[0, 2]");

    public static TheoryData<string, PaddingModes> EnginesAndPaddingModes
    {
        get
        {
            var data = new TheoryData<string, PaddingModes>();
            foreach (var method in new[] { "hooks", "functional", "clipping" })
                foreach (var mode in new[] { PaddingModes.Reflect, PaddingModes.Replicate, PaddingModes.Circular })
                    data.Add(method, mode);
            return data;
        }
    }

    [Theory, MemberData(nameof(EnginesAndPaddingModes))]
    public void Same_padding_in_another_mode_with_different_amounts_per_axis_is_refused(string method,
        PaddingModes mode)
    {
        // TorchSharp 0.107 pads such a layer's axes with each other's amounts: (0, 1) and (1, 1) here, so a 6x7 input
        // comes out 7x6, which no rule follows.
        var model = Seeded.Build(1, () => (Module<Tensor, Tensor>)Sequential(
            ("conv", Conv2d(2, 3, (2, 3), Padding.Same, padding_mode: mode)), ("flat", Flatten()),
            ("head", Linear(3 * 6 * 7, 2))));
        Expect(method, Problem.UnsupportedLayers, model, randn(2, 2, 6, 7), zeros(2, ScalarType.Int64),
            "'conv' pads 'same'");
    }

    [Theory, MemberData(nameof(Methods))]
    public void Class_targets_with_a_dimension_too_many_are_refused_naming_the_shapes(string method) =>
        Expect(method, Problem.InvalidTargets, SmallModel(), randn(2, 4), zeros([2, 1], ScalarType.Int64),
            "needs outputs [N, C, ...] and targets [N, ...]");

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    public void A_custom_loss_needs_a_name(string name) =>
        Assert.Throws<ArgumentException>(() => LossFunction.PerSample(name, (output, _) => output.sum(1)));

    [Theory, MemberData(nameof(Methods))]
    public void A_custom_loss_that_returns_more_than_one_value_per_sample_is_refused(string method) =>
        Expect(method, Problem.InvalidTargets, SmallModel(), randn(2, 4), randn(2, 3), "must return per-sample losses",
            LossFunction.PerSample("unreduced", (output, target) => (output - target).square()));

    [Fact]
    public void A_custom_loss_needs_a_function() =>
        Assert.Throws<ArgumentNullException>(() => LossFunction.PerSample("custom", null!));

    [Theory, MemberData(nameof(Methods))]
    public void A_model_with_nothing_trainable_is_refused(string method)
    {
        var model = SmallModel();
        foreach (var p in model.parameters()) p.requires_grad_(false);
        Expect(method, Problem.NoTrainableParameters, model, randn(2, 4), zeros(2, ScalarType.Int64), "requires_grad");
    }

    [Theory]
    [InlineData("hooks")]
    [InlineData("functional")]
    [InlineData("clipping")]
    public void With_the_fallback_refused_unsupported_trainable_layers_are_all_listed_before_any_computation(string
        method)
    {
        var model = Seeded.Build(1, () => (Module<Tensor, Tensor>)Sequential(
            ("custom", new GainShiftTanh(3)), ("linear", Linear(3, 4)), ("again", new GainShiftTanh(4)),
                ("head", Linear(4, 2))));
        model.eval();
        var refusing = method == "hooks"
            ? (IPerSampleGradientMethod)new HookEngine(new HookEngineOptions
                { UnsupportedLayers = UnsupportedLayerPolicy.Refuse })
            : new FunctionalEngine(new FunctionalEngineOptions { UnsupportedLayers = UnsupportedLayerPolicy.Refuse });
        using var snapshot = new ModelSnapshot(model, randn(2, 3));
        var error = Assert.Throws<PerSampleGradientsException>(()
            => refusing.Compute(model, randn(2, 3), zeros(2, ScalarType.Int64), LossFunction.CrossEntropy()));
        Assert.Equal(Problem.UnsupportedLayers, error.Problem);
        Assert.Contains("'custom' (GainShiftTanh: gain, shift); 'again' (GainShiftTanh: gain, shift)", error.Message,
            StringComparison.Ordinal);
        Assert.Contains("PerSampleRerun", error.Message, StringComparison.Ordinal);
        Assert.Empty(snapshot.Differences());
    }

    [Theory]
    [InlineData("hooks", "max_norm")]
    [InlineData("functional", "max_norm")]
    [InlineData("hooks", "scale_grad_by_freq")]
    [InlineData("functional", "scale_grad_by_freq")]
    [InlineData("clipping", "max_norm")]
    [InlineData("clipping", "scale_grad_by_freq")]
    public void Embedding_options_without_a_per_sample_meaning_are_refused_and_the_table_is_left_as_it_was(string
        method, string option)
    {
        var model = Seeded.Build(1, () => (Module<Tensor, Tensor>)Sequential(
            ("embedding", option == "max_norm" ? Embedding(10, 4, max_norm: 0.5)
                : Embedding(10, 4, scale_grad_by_freq: true)),
            ("flat", Flatten()), ("head", Linear(12, 2))));
        var tokens = tensor(new long[] { 1, 2, 3, 4, 5, 6 }).reshape(2, 3);
        // No probe forward here: a max_norm embedding rewrites its own table on every forward.
        var before = model.parameters().Select(p => p.detach().clone()).ToList();
        var error = Assert.Throws<PerSampleGradientsException>(()
            => Method(method).Compute(model, tokens, zeros(2, ScalarType.Int64), LossFunction.CrossEntropy()));
        Assert.Equal(Problem.UnsupportedLayers, error.Problem);
        Assert.Contains(option, error.Message, StringComparison.Ordinal);
        Assert.All(model.parameters().Zip(before), pair =>
            Assert.True(pair.First.equal(pair.Second).all().item<bool>()));
    }

    [Theory, MemberData(nameof(Methods))]
    public void A_null_model_inputs_targets_or_loss_is_named_not_dereferenced(string method)
    {
        var model = SmallModel();
        var x = randn(2, 4);
        var y = zeros(2, ScalarType.Int64);
        var loss = LossFunction.CrossEntropy();
        var m = Method(method);
        Assert.Equal("model", Assert.Throws<ArgumentNullException>(() => m.Compute(null!, x, y, loss)).ParamName);
        Assert.Equal("inputs", Assert.Throws<ArgumentNullException>(() => m.Compute(model, null!, y, loss)).ParamName);
        Assert.Equal("targets", Assert.Throws<ArgumentNullException>(() => m.Compute(model, x, null!, loss)).ParamName);
        Assert.Equal("loss", Assert.Throws<ArgumentNullException>(() => m.Compute(model, x, y, null!)).ParamName);
    }

    [Theory, MemberData(nameof(Methods))]
    public void Integer_targets_for_a_regression_loss_are_refused_naming_the_fix(string method) =>
        Expect(method, Problem.InvalidTargets, SmallModel(), randn(2, 4), zeros(new long[] { 2, 3 }, ScalarType.Int64),
            "floating-point targets", LossFunction.MeanSquaredError());

    [Fact]
    public void A_factory_that_builds_one_state_entry_more_or_less_is_refused_by_name()
    {
        // The model's Linear has no bias, the factory's has one: exactly one state entry differs.
        var model = Seeded.Build(1, () => (Module<Tensor, Tensor>)Sequential(Linear(4, 3, hasBias: false)));
        using var snapshot = new ModelSnapshot(model, randn(2, 4));
        var error = Assert.Throws<PerSampleGradientsException>(() => new PerSampleGradientOracle(new OracleOptions
            { ComputeDType = ScalarType.Float64, ModelFactory = SmallModel }).Compute(model, randn(2, 4),
            zeros(2, ScalarType.Int64), LossFunction.CrossEntropy()));
        Assert.Equal(Problem.ModelCopyUnavailable, error.Problem);
        Assert.Contains("0.bias", error.Message, StringComparison.Ordinal);
        Assert.Empty(snapshot.Differences());
        // The refused copy is disposed: refusing again and again leaves no tensor behind.
        using var x = randn(2, 4);
        using var y = zeros(2, ScalarType.Int64);
        var oracle = new PerSampleGradientOracle(new OracleOptions
            { ComputeDType = ScalarType.Float64, ModelFactory = SmallModel });
        Assert.Equal(0, TensorLeaks.Growth(() => Assert.Throws<PerSampleGradientsException>(() =>
            oracle.Compute(model, x, y, LossFunction.CrossEntropy())), repeats: 5, warmUp: 2));
    }

    [Fact]
    public void Float64_oracle_without_a_factory_explains_why_it_needs_one()
    {
        var model = SmallModel();
        using var snapshot = new ModelSnapshot(model, randn(2, 4));
        var error = Assert.Throws<PerSampleGradientsException>(() =>
            new PerSampleGradientOracle(new OracleOptions { ComputeDType = ScalarType.Float64 }).Compute(model,
                randn(2, 4), zeros(2, ScalarType.Int64), LossFunction.CrossEntropy()));
        Assert.Equal(Problem.ModelCopyUnavailable, error.Problem);
        Assert.Contains("factory", error.Message, StringComparison.Ordinal);
        Assert.Empty(snapshot.Differences());
    }

    [Theory, MemberData(nameof(Methods))]
    public void Asking_for_CUDA_without_CUDA_fails_clearly(string method)
    {
        Assert.SkipWhen(cuda.is_available(), "CUDA is available here");
        IPerSampleGradientMethod m = method switch
        {
            "oracle" => new PerSampleGradientOracle(new OracleOptions
                { Device = new Device(DeviceType.CUDA, 0), ModelFactory = SmallModel }),
            "hooks" => new HookEngine(new HookEngineOptions { Device = new Device(DeviceType.CUDA, 0) }),
            "clipping" => new ClippingAsMethod(new ClippingOptions { Device = new Device(DeviceType.CUDA, 0) }),
            _ => new FunctionalEngine(new FunctionalEngineOptions { Device = new Device(DeviceType.CUDA, 0) }),
        };
        var error = Assert.Throws<PerSampleGradientsException>(()
            => m.Compute(SmallModel(), randn(2, 4), zeros(2, ScalarType.Int64), LossFunction.CrossEntropy()));
        Assert.Equal(Problem.CudaUnavailable, error.Problem);
    }
}
