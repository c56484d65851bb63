using TorchSharp;
using TorchSharp.Modules;
using PerSampleGrads.Engines;
using PerSampleGrads.Engines.Functional;
using PerSampleGrads.Engines.Hooks;
using PerSampleGrads.Engines.Hooks.Rules;
using PerSampleGrads.Oracle;
using PerSampleGrads.Zoo;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace PerSampleGrads.Tests;

/// <summary>
/// No silent wrong answer on everyday model patterns: each method returns the oracle's per-sample gradients or
/// raises <see cref="PerSampleGradientsException"/> naming the problem, in float32 and float64, and leaves the model
/// as it was.
/// </summary>
[Trait("Category", "Equivalence")]
public sealed class RealWorldPatternTests
{
    public RealWorldPatternTests() => TestSettings.RequireTorch();

    public static TheoryData<string> Methods => new("oracle", "hooks", "functional");

    public static TheoryData<string> Engines => new("hooks", "functional");

    internal static IPerSampleGradientMethod Method(string name, EngineOptions? options = null) => name switch
    {
        "oracle" => new PerSampleGradientOracle(),
        "hooks" => new HookEngine(options is null ? null : new HookEngineOptions
            { AuditSamples = options.AuditSamples }),
        "functional" => new FunctionalEngine(
            options is null ? null : new FunctionalEngineOptions { AuditSamples = options.AuditSamples }),
        _ => throw new ArgumentException(name),
    };

    private static readonly LossFunction Loss = LossFunction.CrossEntropy();

    private static (Tensor Inputs, Tensor Targets) Features(long n, long width, ScalarType dtype, int seed = 3)
    {
        using var generator = new Generator((ulong)seed);
        return (randn([n, width], generator: generator).to(dtype), randint(0, 3, [n], generator: generator));
    }

    private static (Tensor Inputs, Tensor Targets) Tokens(long n, long length, long vocabulary, int seed = 4)
    {
        using var generator = new Generator((ulong)seed);
        return (randint(0, vocabulary, [n, length], generator: generator), randint(0, 3, [n], generator: generator));
    }

    // The method agrees with the oracle in the model's dtype, the oracle's per-sample gradients add up to the batch
    // gradient of the summed loss under every name, and the model is left as it was.
    private static void AgreesWithTheDefinition(string method, Module<Tensor, Tensor> model, Tensor x, Tensor y)
    {
        foreach (var dtype in TestSettings.DTypes)
        {
            model.to(dtype);
            var input = is_floating_point(x.dtype) ? x.to(dtype) : x;
            using var snapshot = new ModelSnapshot(model, input);
            using var truth = new PerSampleGradientOracle().Compute(model, input, y, Loss);
            using var result = Method(method).Compute(model, input, y, Loss);
            GradientAssert.Agree(result, truth, dtype);
            Assert.Empty(snapshot.Differences());
            using var batch = BatchGradients(model, input, y);
            foreach (var (name, gradient) in truth.Entries)
            {
                using var scope = NewDisposeScope();
                Assert.True(gradient.sum(dim: 0, keepdim: true).allclose(batch[name], rtol: 1e-4, atol: 1e-6),
                    $"{name}: the oracle's per-sample gradients do not add up to the batch gradient");
            }
        }
    }

    // The gradient of the sum-reduced batch loss, [1, ...] under every name.
    private static PerSampleGradients BatchGradients(Module<Tensor, Tensor> model, Tensor x, Tensor y)
    {
        var parameters = ModelInspection.TrainableParameters(model);
        foreach (var (_, p) in parameters) p.grad = null;
        Loss.WithReduction(LossReduction.Sum).BatchLoss(model.call(x), y).backward();
        var result = new PerSampleGradients("batch", 1,
            parameters.Select(p => (p.Name, p.Parameter.grad!.clone().unsqueeze(0))));
        foreach (var (_, p) in parameters) p.grad = null;
        return result;
    }

    // Refused in every dtype with the problem named, and the model left as it was.
    private static void Refused(string method, Problem problem, Module<Tensor, Tensor> model, Tensor x, Tensor y,
        string mentions, Tensor? validInput = null)
    {
        foreach (var dtype in TestSettings.DTypes)
        {
            model.to(dtype);
            Tensor InDType(Tensor t) => is_floating_point(t.dtype) ? t.to(dtype) : t;
            using var snapshot = new ModelSnapshot(model, InDType(validInput ?? x));
            var error = Assert.Throws<PerSampleGradientsException>(
                () => Method(method).Compute(model, InDType(x), y, Loss));
            Assert.Equal(problem, error.Problem);
            Assert.Contains(mentions, error.Message, StringComparison.Ordinal);
            Assert.Empty(snapshot.Differences());
        }
    }

    public static TheoryData<string, string> GradModes
    {
        get
        {
            var data = new TheoryData<string, string>();
            foreach (var method in new[] { "oracle", "hooks", "functional" })
                foreach (var mode in new[] { "no_grad", "set_grad_enabled(false)", "inference_mode" })
                    data.Add(method, mode);
            return data;
        }
    }

    [Theory, MemberData(nameof(GradModes))]
    public void The_callers_grad_mode_does_not_change_the_gradients(string method, string mode)
    {
        using var model = ModelZoo.SmallCnn.Build(1);
        var (x, y) = ModelZoo.SmallCnn.MakeBatch(4, 5);
        using var expected = Method(method).Compute(model, x, y, Loss);
        Assert.Contains(expected.Entries, e => e.Gradient.abs().max().ToDouble() > 0);
        PerSampleGradients actual;
        using (mode switch
        {
            "no_grad" => no_grad(),
            "set_grad_enabled(false)" => set_grad_enabled(false),
            _ => inference_mode(),
        })
        {
            var (xi, yi) = mode == "inference_mode" ? (x.clone(), y.clone()) : (x, y);
            actual = Method(method).Compute(model, xi, yi, Loss);
            Assert.False(is_grad_enabled(), "the caller's grad mode must be restored");
        }
        using (actual) GradientAssert.Agree(actual, expected, ScalarType.Float32);
    }

    [Theory, MemberData(nameof(Methods))]
    public void A_parameter_tied_to_two_modules_gets_the_sum_of_its_uses_under_both_names(string method)
    {
        using var model = PatternModels.TiedEmbeddingClassifier();
        var (x, y) = Tokens(5, 3, 7);
        AgreesWithTheDefinition(method, model, x, y);
        using var result = Method(method).Compute(model, x, y, Loss);
        Assert.True(result["embedding.weight"].equal(result["head.weight"]).all().item<bool>());
    }

    // A reused result holds the tied tensor under both names, one memory: written once, and not zeroed afterwards as
    // a name nothing wrote.
    [Theory]
    [InlineData("hooks")]
    [InlineData("functional")]
    public void A_result_reused_for_a_model_with_tied_weights_equals_a_fresh_one(string method)
    {
        using var model = PatternModels.TiedEmbeddingClassifier();
        var (x, y) = Tokens(5, 3, 7);
        Func<PerSampleGradients?, PerSampleGradients> compute = method == "hooks"
            ? into => new HookEngine().Compute(model, x, y, Loss, into)
            : into => new FunctionalEngine().Compute(model, x, y, Loss, into);
        using var fresh = compute(null);
        using var buffer = compute(null);
        using (no_grad()) foreach (var (_, g) in buffer.Entries) g.fill_(float.NaN);

        var reused = compute(buffer);

        Assert.Same(buffer, reused);
        GradientAssert.Agree(reused, fresh, ScalarType.Float32);
    }

    [Theory, MemberData(nameof(Methods))]
    public void One_module_under_two_parents_accumulates_both_calls(string method)
    {
        using var model = PatternModels.ModuleUnderTwoParents();
        var (x, y) = Features(6, 5, ScalarType.Float32);
        AgreesWithTheDefinition(method, model, x, y);
    }

    [Theory]
    [InlineData("hooks", 5L)]
    [InlineData("functional", 5L)]
    [InlineData("hooks", 3L)]
    [InlineData("functional", 3L)]
    [InlineData("oracle", 3L)]
    public void Sequence_first_layers_are_computed_even_when_the_sequence_is_as_long_as_the_batch(string method,
        long length)
    {
        using var model = PatternModels.SequenceFirst();
        using var generator = new Generator(6);
        var x = randn([3, length, 4], generator: generator);
        var y = randint(0, 3, [3], generator: generator);
        AgreesWithTheDefinition(method, model, x, y);
    }

    [Theory]
    [InlineData("hooks", true)]
    [InlineData("functional", true)]
    [InlineData("hooks", false)]
    [InlineData("functional", false)]
    [InlineData("oracle", true)]
    public void An_embedding_of_ids_shared_by_every_sample_gets_each_samples_share(string method, bool unitBatch)
    {
        using var model = PatternModels.PositionEmbeddings(vocabulary: 9, length: 4, unitBatch);
        var (x, y) = Tokens(4, 4, 9);
        AgreesWithTheDefinition(method, model, x, y);
    }

    // Without a bias, the one bypassed parameter is the whole use the engine missed.
    [Theory]
    [InlineData("hooks", true, true)]
    [InlineData("functional", true, true)]
    [InlineData("hooks", false, true)]
    [InlineData("functional", false, true)]
    [InlineData("hooks", true, false)]
    [InlineData("functional", false, false)]
    public void A_child_called_with_forward_is_refused(string method, bool always, bool bias)
    {
        using var model = PatternModels.ChildCalledWithForward(always, bias);
        var (x, y) = Features(4, 4, ScalarType.Float32);
        Refused(method, Problem.LayerBypassesHooks, model, x, y, "'first.weight'");
    }

    [Fact]
    public void The_oracle_computes_a_child_called_with_forward()
    {
        using var model = PatternModels.ChildCalledWithForward(always: false);
        var (x, y) = Features(4, 4, ScalarType.Float32);
        using var truth = new PerSampleGradientOracle().Compute(model, x, y, Loss);
        using var batch = BatchGradients(model, x, y);
        Assert.True(truth["first.weight"].sum(dim: 0, keepdim: true).allclose(batch["first.weight"], rtol: 1e-4,
            atol: 1e-6));
    }

    [Theory, MemberData(nameof(Engines))]
    public void A_user_hook_that_changes_a_layers_output_is_refused(string method)
    {
        using var model = Seeded.Build(17, () => (Module<Tensor, Tensor>)Sequential(("first", Linear(4, 4)),
            ("act", Tanh()), ("head", Linear(4, 3))));
        var first = (Linear)model.named_children().First().module;
        var handle = first.register_forward_hook((_, _, output) => output * 2);
        try
        {
            var (x, y) = Features(4, 4, ScalarType.Float32);
            Refused(method, Problem.UserHooks, model, x, y, "'first'");
            using var doubled = no_grad();
            var probe = x.to(first.weight!.dtype);
            Assert.True(first.call(probe).allclose(first.forward(probe) * 2),
                "the caller's hook must still be in place");
        }
        finally
        {
            handle.remove();
        }
    }

    [Fact]
    public void A_user_hook_that_only_observes_is_kept_by_the_hook_engine_and_refused_by_the_functional_one()
    {
        using var model = Seeded.Build(18, () => (Module<Tensor, Tensor>)Sequential(("first", Linear(4, 4)),
            ("act", Tanh()), ("head", Linear(4, 3))));
        var first = (Linear)model.named_children().First().module;
        var seen = new List<long>();
        var handle = first.register_forward_hook((_, input, _) =>
        {
            seen.Add(input.shape[0]);
            return null!;
        });
        try
        {
            var (x, y) = Features(4, 4, ScalarType.Float32);
            AgreesWithTheDefinition("hooks", model, x, y);
            Assert.DoesNotContain(0L, seen);
            model.to(ScalarType.Float32);
            Refused("functional", Problem.UserHooks, model, x, y, "'first'");
        }
        finally
        {
            handle.remove();
        }
    }

    [Theory]
    [InlineData("hooks", false, "'second'")]
    [InlineData("functional", false, "'second'")]
    [InlineData("hooks", true, "model's output")]
    [InlineData("functional", true, "model's output")]
    public void Sample_mixing_outside_batch_norm_is_refused(string method, bool afterLastLayer, string mentions)
    {
        using var model = PatternModels.BatchCentring(afterLastLayer);
        var (x, y) = Features(5, 4, ScalarType.Float32);
        Refused(method, Problem.SampleMixing, model, x, y, mentions);
    }

    [Fact]
    public void A_mixing_refusal_names_this_machines_float32_convolution_defect_where_there_is_one()
    {
        using var model = PatternModels.BatchCentring(false);
        var (x, y) = Features(5, 4, ScalarType.Float32);
        var error = Assert.Throws<PerSampleGradientsException>(() => Method("hooks").Compute(model, x, y, Loss));
        Assert.Equal(Problem.SampleMixing, error.Problem);
        if (PerSampleGrads.Engines.Probing.Float32Kernels.ConvolutionDefect is { } defect)
            Assert.Contains(defect, error.Message, StringComparison.Ordinal);
        else Assert.DoesNotContain("Note: this machine", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_oracle_computes_a_model_that_mixes_samples_by_its_definition()
    {
        using var model = PatternModels.BatchCentring(afterLastLayer: false);
        var (x, y) = Features(5, 4, ScalarType.Float32);
        using var truth = new PerSampleGradientOracle().Compute(model, x, y, Loss);
        // A batch of one centres to zero, so the first layer never matters for a sample's own loss.
        Assert.Equal(0, truth["first.weight"].abs().max().ToDouble());
    }

    [Theory]
    [InlineData("oracle", -1L)]
    [InlineData("hooks", -1L)]
    [InlineData("functional", -1L)]
    [InlineData("oracle", 7L)]
    [InlineData("hooks", 7L)]
    [InlineData("functional", 7L)]
    public void Invalid_embedding_ids_are_refused(string method, long id)
    {
        using var model = PatternModels.TiedEmbeddingClassifier(vocabulary: 7);
        var (x, y) = Tokens(4, 3, 7);
        var invalid = x.clone();
        invalid[2, 1] = tensor(id);
        Refused(method, Problem.InvalidIds, model, invalid, y, $"id {id}", validInput: x);
    }

    [Fact]
    public void The_functional_engine_checks_the_targets_of_every_chunk()
    {
        using var model = Seeded.Build(19, () => (Module<Tensor, Tensor>)Sequential(Linear(4, 3)));
        var (x, y) = Features(6, 4, ScalarType.Float32);
        y[5] = tensor(3L);
        var engine = new FunctionalEngine(new FunctionalEngineOptions { ChunkSize = 2 });
        var error = Assert.Throws<PerSampleGradientsException>(() => engine.Compute(model, x, y, Loss));
        Assert.Equal(Problem.InvalidTargets, error.Problem);
    }

    [Fact]
    public void One_model_used_from_several_threads_gives_every_caller_the_right_result()
    {
        using var model = ModelZoo.SmallCnn.Build(1);
        var (x, y) = ModelZoo.SmallCnn.MakeBatch(4, 7);
        using var expected = new PerSampleGradientOracle().Compute(model, x, y, Loss);
        var failures = new System.Collections.Concurrent.ConcurrentBag<string>();
        var threads = new[] { "oracle", "hooks", "functional", "hooks", "functional", "oracle" }.Select(name =>
            new Thread(() =>
            {
                for (int i = 0; i < 3; i++)
                {
                    using var scope = NewDisposeScope();
                    using var result = Method(name).Compute(model, x, y, Loss);
                    var comparison = Checking.GradientComparison.Compare(result, expected,
                        Checking.TolerancePolicy.ToleranceFor(ScalarType.Float32));
                    if (!comparison.Passed) failures.Add($"{name}: {comparison.Describe()}");
                }
            })).ToList();
        foreach (var thread in threads) thread.Start();
        foreach (var thread in threads) thread.Join();
        Assert.Empty(failures);
        using var after = new HookEngine().Compute(model, x, y, Loss);
        GradientAssert.Agree(after, expected, ScalarType.Float32);
    }

    [Theory, MemberData(nameof(Engines))]
    public void The_audit_attaches_the_oracles_verdict_on_chosen_samples(string method)
    {
        using var model = ModelZoo.SmallCnn.Build(1);
        var (x, y) = ModelZoo.SmallCnn.MakeBatch(6, 8);
        using var result = Method(method, new EngineOptions { AuditSamples = 2 }).Compute(model, x, y, Loss);
        Assert.NotNull(result.Audit);
        Assert.True(result.Audit.Passed);
        Assert.Equal(2, result.Audit.Samples.Count);
        Assert.All(result.Audit.Samples, s => Assert.InRange(s, 0, 5));
    }

    [Fact]
    public void The_audit_refuses_a_result_that_disagrees_with_the_oracle()
    {
        using var model = ModelZoo.SmallCnn.Build(1);
        var (x, y) = ModelZoo.SmallCnn.MakeBatch(4, 9);
        var rules = new Dictionary<Type, PerSampleRule>(HookRules.Default)
        {
            [typeof(Linear)] = (call, sink) => LinearRule.Compute(call with
                { OutputGradient = call.OutputGradient * 1.5 }, sink),
        };
        var engine = new HookEngine(new HookEngineOptions { AuditSamples = 1 }, rules);
        var error = Assert.Throws<PerSampleGradientsException>(() => engine.Compute(model, x, y, Loss));
        Assert.Equal(Problem.AuditFailed, error.Problem);
    }

    public static TheoryData<string, Problem> ClippingRefusals => new()
    {
        { "tied", Problem.UnsupportedLayers },
        { "sequence-first", Problem.BatchLayout },
        { "shared ids", Problem.BatchLayout },
        { "forward() child", Problem.LayerBypassesHooks },
        { "mixing", Problem.SampleMixing },
    };

    [Theory, MemberData(nameof(ClippingRefusals))]
    public void The_clipping_method_refuses_patterns_its_per_module_norms_cannot_attribute(string pattern,
        Problem problem)
    {
        var (model, x, y) = pattern switch
        {
            "tied" => (PatternModels.TiedEmbeddingClassifier(), Tokens(4, 3, 7).Inputs, Tokens(4, 3, 7).Targets),
            "sequence-first" => (PatternModels.SequenceFirst(), randn(3, 4, 4), randint(0, 3, [3])),
            "shared ids" => (PatternModels.PositionEmbeddings(9, 4, unitBatch: true), Tokens(4, 4, 9).Inputs,
                Tokens(4, 4, 9).Targets),
            "forward() child" => (PatternModels.ChildCalledWithForward(always: true), Features(4, 4,
                ScalarType.Float32).Inputs, Features(4, 4, ScalarType.Float32).Targets),
            _ => (PatternModels.BatchCentring(afterLastLayer: false), Features(5, 4, ScalarType.Float32).Inputs,
                Features(5, 4, ScalarType.Float32).Targets),
        };
        using (model)
        {
            using var snapshot = new ModelSnapshot(model, x);
            var method = new Engines.Clipping.ClippingMethod(new Engines.Clipping.ClippingOptions { ClipBound = 1 });
            var error = Assert.Throws<PerSampleGradientsException>(() => method.Compute(model, x, y, Loss));
            Assert.Equal(problem, error.Problem);
            Assert.Empty(snapshot.Differences());
        }
    }
}
