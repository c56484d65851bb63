using TorchSharp;
using TorchSharp.Modules;
using PerSampleGrads.Cases;
using PerSampleGrads.Engines;
using PerSampleGrads.Engines.Clipping;
using PerSampleGrads.Engines.Hooks;
using PerSampleGrads.Engines.Hooks.Rules;
using PerSampleGrads.Oracle;
using PerSampleGrads.Zoo;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace PerSampleGrads.Tests;

/// <summary>
/// Modules whose <c>forward</c> is not <c>Module&lt;Tensor, Tensor&gt;</c> (<see cref="ModuleSignatures"/>): the
/// engines hook every argument and output slot, the rerun fallback re-runs them per sample with all their arguments,
/// and the clipping method refuses them.
/// </summary>
[Trait("Category", "Equivalence")]
public sealed class SignatureTests
{
    public SignatureTests() => TestSettings.RequireTorch();

    private static Module<Tensor, Tensor> Attention(AttentionOptions options) =>
        Seeded.Build(11, () => (Module<Tensor, Tensor>)new AttentionClassifier(10, 8, 5, options, 3));

    private static (Tensor Ids, Tensor Targets) Batch(long n)
    {
        using var generator = Seeded.Generator(5);
        var ids = randint(1, 10, [n, 5], generator: generator);
        ids[0, 3] = tensor(0L);
        return (ids, randint(0, 3, [n], generator: generator));
    }

    // The rule table without MultiheadAttention's rule, so that the fallback takes it.
    private static IReadOnlyDictionary<Type, PerSampleRule> WithoutAttentionRule() =>
        HookRules.Default.Where(p => p.Key != typeof(MultiheadAttention)).ToDictionary(p => p.Key, p => p.Value);

    [Theory]
    [InlineData(false, false, false, false)]
    [InlineData(true, true, false, false)]
    [InlineData(false, false, true, false)]
    [InlineData(false, true, false, true)]
    public void The_hook_engine_reruns_an_attention_layer_per_sample_with_all_its_arguments(bool keyPadding,
        bool causal, bool useWeights, bool oneTrained)
    {
        using var model = Attention(new AttentionOptions(KeyPadding: keyPadding, Causal: causal,
            UseWeights: useWeights));
        model.to(ScalarType.Float64);
        // Fine-tuning one tensor of the layer: the fallback re-runs it for that parameter alone.
        foreach (var (name, parameter) in model.named_parameters())
            if (oneTrained && name.StartsWith("attention.", StringComparison.Ordinal)
                && name != "attention.in_proj_weight")
                parameter.requires_grad = false;
        var (ids, targets) = Batch(4);
        using var snapshot = new ModelSnapshot(model, ids);
        var loss = LossFunction.CrossEntropy();

        using var expected = new PerSampleGradientOracle().Compute(model, ids, targets, loss);
        using var actual = new HookEngine(rules: WithoutAttentionRule()).Compute(model, ids, targets, loss);

        GradientAssert.Agree(actual, expected, ScalarType.Float64);
        Assert.Empty(snapshot.Differences());
    }

    [Fact]
    public void An_output_slot_that_does_not_reach_the_loss_leaves_the_others_right()
    {
        // The weights are asked for but not used: only the first output slot gets a gradient.
        using var model = Seeded.Build(11, () => (Module<Tensor, Tensor>)new UnusedWeights());
        model.to(ScalarType.Float64);
        var (ids, targets) = Batch(3);
        var loss = LossFunction.CrossEntropy();

        using var expected = new PerSampleGradientOracle().Compute(model, ids, targets, loss);
        using var actual = new HookEngine(rules: WithoutAttentionRule()).Compute(model, ids, targets, loss);

        GradientAssert.Agree(actual, expected, ScalarType.Float64);
    }

    [Fact]
    public void The_clipping_method_refuses_a_module_of_another_signature_before_computing()
    {
        using var model = Attention(new AttentionOptions());
        var (ids, targets) = Batch(3);
        using var snapshot = new ModelSnapshot(model, ids);

        var error = Assert.Throws<PerSampleGradientsException>(() => new ClippingMethod()
            .Compute(model, ids, targets, LossFunction.CrossEntropy()));

        Assert.Equal(Problem.UnsupportedLayers, error.Problem);
        Assert.Contains("'attention' (MultiheadAttention)", error.Message, StringComparison.Ordinal);
        Assert.Empty(snapshot.Differences());
    }

    // The clipping method's refusals, which CaseRefusals leaves out of its catalogue-wide tests.
    [Theory]
    [InlineData("transformer-encoder-relu-B3-ce-mean")]
    [InlineData("transformer-decoder-relu-B3-ce-mean")]
    [InlineData("bag-sum-rows-B4-ce-mean")]
    [InlineData("attention-h2-B4-ce-mean")]
    [InlineData("zoo-transformer-B4-ce-mean")]
    [InlineData("zoo-lstm-B4-ce-mean")]
    public void Refused_catalogue_cases_are_refused_with_a_reason_and_leave_the_model_unchanged(string caseId)
    {
        Assert.True(CaseRefusals.Clipping(caseId));
        using var problem = CaseCatalogue.Get(caseId).Create(ScalarType.Float32);
        using var snapshot = new ModelSnapshot(problem.Model, problem.Inputs);
        var error = Assert.Throws<PerSampleGradientsException>(() =>
            new ClippingMethod().Compute(problem.Model, problem.Inputs, problem.Targets, problem.Loss).Dispose());
        Assert.True(error.Problem is Problem.UnsupportedLayers or Problem.BatchLayout, error.Message);
        Assert.Empty(snapshot.Differences());
    }

    [Fact]
    public void A_module_whose_signature_has_no_entry_is_refused_by_name()
    {
        using var model = Seeded.Build(11, () => (Module<Tensor, Tensor>)new TwoArguments());
        var error = Assert.Throws<PerSampleGradientsException>(() => new HookEngine()
            .Compute(model, randn(3, 4), zeros(3, ScalarType.Int64), LossFunction.CrossEntropy()));

        Assert.Equal(Problem.UnsupportedLayers, error.Problem);
        Assert.Contains("'pair' (Pair:", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Every_signature_names_its_slots_and_finds_modules_by_class()
    {
        foreach (var (type, signature) in ModuleSignatures.Default)
        {
            Assert.Equal(type, signature.ModuleType);
            Assert.NotEmpty(signature.Arguments);
            Assert.NotEmpty(signature.Outputs);
        }
        using var linear = Linear(2, 2);
        Assert.Same(ModuleSignatures.TensorToTensor, ModuleSignatures.Find(linear));
        using var attention = MultiheadAttention(4, 2);
        Assert.Equal(["output", "weights"], ModuleSignatures.Find(attention)!.Outputs);
        using var pair = new Pair();
        Assert.Null(ModuleSignatures.Find(pair));
    }

    // Attention whose weights are computed and dropped.
    private sealed class UnusedWeights : Module<Tensor, Tensor>
    {
        private readonly Embedding embedding = Embedding(10, 8);
        private readonly MultiheadAttention attention = MultiheadAttention(8, 2);
        private readonly Linear head = Linear(8, 3);

        public UnusedWeights() : base(nameof(UnusedWeights)) => RegisterComponents();

        public override Tensor forward(Tensor ids)
        {
            var x = embedding.call(ids).transpose(0, 1);
            var (output, _) = attention.call(x, x, x, null, true, null);
            return head.call(output.mean([0]));
        }
    }

    // A trainable module of a signature the table does not list.
    private sealed class Pair : Module<Tensor, Tensor, Tensor>
    {
        private readonly Parameter scale = Parameter(ones(4));

        public Pair() : base(nameof(Pair)) => RegisterComponents();

        public override Tensor forward(Tensor a, Tensor b) => a * scale + b;
    }

    private sealed class TwoArguments : Module<Tensor, Tensor>
    {
        private readonly Pair pair = new();
        private readonly Linear head = Linear(4, 2);

        public TwoArguments() : base(nameof(TwoArguments)) => RegisterComponents();

        public override Tensor forward(Tensor x) => head.call(pair.call(x, x));
    }
}
