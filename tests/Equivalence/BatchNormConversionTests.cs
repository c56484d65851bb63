using TorchSharp;
using TorchSharp.Modules;
using PerSampleGrads.Conversion;
using PerSampleGrads.Engines.Functional;
using PerSampleGrads.Engines.Hooks;
using PerSampleGrads.Oracle;
using PerSampleGrads.Checking;
using PerSampleGrads.Zoo;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace PerSampleGrads.Tests;

/// <summary>
/// <see cref="BatchNormConversion.ToGroupNorm"/>: every BatchNorm replaced where the forward reaches it, parameter
/// names and order kept, the changes listed, and a model that could not be trained with per-sample gradients now can.
/// </summary>
[Trait("Category", "Equivalence")]
public sealed class BatchNormConversionTests
{
    public BatchNormConversionTests() => TestSettings.RequireTorch();

    [Fact]
    public void A_BatchNorm_ResNet18_becomes_a_GroupNorm_ResNet18_that_both_engines_train_with_per_sample_gradients()
    {
        using var model = Seeded.Build(3, () => torchvision.models.resnet18(num_classes: 10));
        var namesBefore = model.named_parameters().Select(p => p.name).ToList();
        using var inputs = Seeded.Build(4, () => randn(2, 3, 16, 16));
        using var targets = tensor(new long[] { 1, 7 });
        var loss = LossFunction.CrossEntropy(LossReduction.Mean);
        model.train();
        var refused = Assert.Throws<PerSampleGradientsException>(()
            => new HookEngine().Compute(model, inputs, targets, loss));
        Assert.Equal(Problem.BatchNormInTraining, refused.Problem);

        var converted = BatchNormConversion.ToGroupNorm(model);

        Assert.Same(model, converted.Model);
        Assert.Equal(20, converted.Changes.Count);
        Assert.Contains(new ModuleChange("bn1", "BatchNorm2d(64)", "GroupNorm(32, 64)"), converted.Changes);
        Assert.Contains(new ModuleChange("layer4.0.downsample.1", "BatchNorm2d(512)", "GroupNorm(32, 512)"),
            converted.Changes);
        Assert.DoesNotContain(ModelInspection.AllModules(model), m => m.Module is BatchNorm);
        Assert.Empty(model.named_buffers());
        Assert.Equal(namesBefore, model.named_parameters().Select(p => p.name).ToList());
        Assert.All(ModelInspection.AllModules(model).Where(m => m.Module is GroupNorm),
            m => Assert.True(m.Module.training));
        Assert.Equal(20, ForwardCallsOfGroupNorms(model, inputs));

        using var truth = new PerSampleGradientOracle().Compute(model, inputs, targets, loss);
        var tolerance = TolerancePolicy.ToleranceFor(ScalarType.Float32);
        foreach (var engine in new IPerSampleGradientMethod[] { new HookEngine(), new FunctionalEngine() })
        {
            using var grads = engine.Compute(model, inputs, targets, loss);
            var comparison = GradientComparison.Compare(grads, truth, tolerance);
            Assert.True(comparison.Passed, comparison.Describe());
        }
    }

    [Fact]
    public void A_BatchNorm_in_a_Sequential_is_replaced_in_place_with_its_eps_affine_flag_and_mode()
    {
        using var model = Seeded.Build(1, () => Sequential(("conv", Conv1d(2, 6, 3)),
            ("norm", BatchNorm1d(6, eps: 1e-3)),
            ("plain", BatchNorm1d(6, affine: false)), ("relu", ReLU())));
        model.eval();

        var changes = BatchNormConversion.ToGroupNorm(model, channels => channels / 2).Changes;

        Assert.Equal(["norm: BatchNorm1d(6) -> GroupNorm(3, 6)", "plain: BatchNorm1d(6) -> GroupNorm(3, 6)"],
            changes.Select(c => c.ToString()));
        var norms = model.named_children().Select(c => c.module).OfType<GroupNorm>().ToList();
        Assert.Equal(2, norms.Count);
        Assert.Equal(1e-3, norms[0].eps);
        Assert.All(norms, n => Assert.False(n.training));
        Assert.Equal(["conv.weight", "conv.bias", "norm.weight", "norm.bias"],
            model.named_parameters().Select(p => p.name));
        Assert.Equal(1.0, norms[0].weight!.min().item<float>());
        Assert.Equal(0.0, norms[0].bias!.abs().max().item<float>());
        Assert.Equal(2, ForwardCallsOfGroupNorms(model, randn(3, 2, 8)));
    }

    [Fact]
    public void A_BatchNorm_held_in_a_field_typed_BatchNorm_is_refused_and_the_model_is_left_unchanged()
    {
        using var model = new TypedField();
        var error = Assert.Throws<ArgumentException>(() => BatchNormConversion.ToGroupNorm(model));
        Assert.Contains("'norm' (BatchNorm2d): field '_norm' of TypedField is typed BatchNorm2d", error.Message,
            StringComparison.Ordinal);
        Assert.Contains("unchanged", error.Message, StringComparison.Ordinal);
        Assert.IsType<BatchNorm2d>(model.named_children().Single(c => c.name == "norm").module);
        Assert.IsType<BatchNorm2d>(model.named_children().Single(c => c.name == "other").module);
    }

    [Theory]
    [InlineData(64, 32)]
    [InlineData(48, 24)]
    [InlineData(6, 6)]
    [InlineData(37, 1)]
    public void The_default_group_count_is_the_largest_divisor_up_to_32(long channels, long groups) =>
        Assert.Equal(groups, BatchNormConversion.DefaultGroups(channels));

    [Fact]
    public void A_group_count_that_does_not_divide_the_channels_is_refused()
    {
        using var model = Sequential(("norm", BatchNorm2d(6)));
        var error = Assert.Throws<ArgumentException>(() => BatchNormConversion.ToGroupNorm(model, _ => 4));
        Assert.Contains("does not divide", error.Message, StringComparison.Ordinal);
        Assert.IsType<BatchNorm2d>(model[0]);
    }

    // How many GroupNorm calls one forward makes: proves that the forward reaches the replacements.
    private static int ForwardCallsOfGroupNorms(nn.Module<Tensor, Tensor> model, Tensor inputs)
    {
        int calls = 0;
        var handles = ModelInspection.AllModules(model).Select(m => m.Module).OfType<GroupNorm>()
            .Select(norm => norm.register_forward_hook((_, _, _) => { calls++; return null!; })).ToList();
        try
        {
            using var _ = no_grad();
            using var scope = NewDisposeScope();
            model.call(inputs);
        }
        finally
        {
            foreach (var handle in handles) handle.remove();
        }
        return calls;
    }

    private sealed class TypedField : Module<Tensor, Tensor>
    {
        private readonly BatchNorm2d _norm = BatchNorm2d(4);
        private readonly Module<Tensor, Tensor> _other = BatchNorm2d(4);

        public TypedField() : base(nameof(TypedField))
        {
            register_module("norm", _norm);
            register_module("other", _other);
        }

        public override Tensor forward(Tensor input) => _other.call(_norm.call(input));
    }
}
