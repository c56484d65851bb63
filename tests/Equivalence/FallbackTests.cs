using System.Globalization;
using TorchSharp;
using TorchSharp.Modules;
using PerSampleGrads.Benchmarking;
using PerSampleGrads.Cases;
using PerSampleGrads.Engines;
using PerSampleGrads.Engines.Functional;
using PerSampleGrads.Engines.Hooks;
using PerSampleGrads.Engines.Hooks.Rules;
using PerSampleGrads.Zoo;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace PerSampleGrads.Tests;

/// <summary>
/// The per-sample rerun fallback (<see cref="UnsupportedLayerPolicy.PerSampleRerun"/>): never taken where a rule
/// exists, exact where it is taken (the catalogue's <c>custom-*-fallback</c> cases check it against the oracle), and
/// refusing modules whose output for one sample depends on the others.
/// </summary>
[Trait("Category", "Equivalence")]
public sealed class FallbackTests
{
    public FallbackTests() => TestSettings.RequireTorch();

    [Fact]
    public void The_hook_engine_takes_the_rule_for_a_layer_it_has_one_for_even_beside_and_inside_a_fallback_module()
    {
        using var problem = CaseCatalogue.Get("custom-scaled-linear-fallback-B4-ce-mean").Create(ScalarType.Float64);
        var ruleCalls = new List<string>();
        var rules = new Dictionary<Type, PerSampleRule>(HookRules.Default)
        {
            [typeof(Linear)] = (call, sink) => { ruleCalls.Add(call.Path); LinearRule.Compute(call, sink); },
        };
        using var grads = problem.Run(new HookEngine(rules: rules));
        // Model: 0 Linear, 1 Tanh, 2 ScaledLinear (its child Linear is re-run with it), 3 Flatten, 4 head Linear.
        Assert.Equal(["0", "4"], ruleCalls);
        GradientAssert.Agree(grads, OracleCache.Float64(CaseCatalogue.Get(problem.Id)), ScalarType.Float64);
    }

    [Fact]
    public void The_functional_engine_takes_the_batched_forward_for_a_layer_it_has_one_for()
    {
        using var problem = CaseCatalogue.Get("custom-scaled-linear-fallback-B4-ce-mean").Create(ScalarType.Float64);
        var forwardCalls = new List<string>();
        var forwards = new Dictionary<Type, BatchedForward>(FunctionalRules.Default)
        {
            [typeof(Linear)] = call => { forwardCalls.Add(call.Path); return
                Engines.Functional.Layers.LinearForward.Forward(call); },
        };
        using var grads = problem.Run(new FunctionalEngine(forwards: forwards));
        Assert.Equal(["0", "4"], forwardCalls);
        GradientAssert.Agree(grads, OracleCache.Float64(CaseCatalogue.Get(problem.Id)), ScalarType.Float64);
    }

    // The sample-separation probe sees the mixing before the fallback runs, in both engines.
    [Theory]
    [InlineData("hooks")]
    [InlineData("functional")]
    public void The_fallback_refuses_a_module_that_mixes_the_samples_of_a_batch(string engine)
    {
        using var model = Seeded.Build(1, () => (Module<Tensor, Tensor>)Sequential(("mixing", new BatchCentring(4)),
            ("head", Linear(4, 2))));
        using var snapshot = new ModelSnapshot(model, randn(3, 4));
        IPerSampleGradientMethod method = engine == "hooks" ? new HookEngine() : new FunctionalEngine();
        var error = Assert.Throws<PerSampleGradientsException>(() =>
            method.Compute(model, randn(3, 4), zeros(3, ScalarType.Int64), LossFunction.CrossEntropy()));
        Assert.Equal(Problem.SampleMixing, error.Problem);
        Assert.Contains("'mixing' (BatchCentring)", error.Message, StringComparison.Ordinal);
        Assert.Empty(snapshot.Differences());
    }

    // The check's bound is relative to the output's scale (outputs near 1000 here): a module whose sample-0 output
    // alone differs from its batch output by a tenth of the tolerance is a valid module's rounding; by ten times it,
    // the module mixes the samples.
    [Theory]
    [InlineData(0.1, false)]
    [InlineData(10.0, true)]
    public void The_one_sample_check_bounds_the_gap_relative_to_the_outputs_scale(double tolerances, bool refused)
    {
        double relative = Checking.TolerancePolicy.ToleranceFor(ScalarType.Float64).Relative;
        using var module = new BatchLeak(tolerances * relative);
        using var input = tensor(new[] { 1000.0, -1000.0 }).reshape(2, 1);
        using var batch = module.forward(input);
        var check = () => Maths.PerSampleRerun.CheckOneSample(module, "leak", input, batch.shape, batch);
        if (!refused)
        {
            check();
            return;
        }
        var error = Assert.Throws<PerSampleGradientsException>(check);
        Assert.Contains("'leak' (BatchLeak)", error.Message, StringComparison.Ordinal);
    }

    // y = x + leak * (mean over the batch): for the batch [1000, -1000], sample 0's output is 1000 in the batch and
    // 1000 (1 + leak) alone.
    private sealed class BatchLeak(double leak) : Module<Tensor, Tensor>(nameof(BatchLeak))
    {
        public override Tensor forward(Tensor input) => input + leak * input.mean([0L], keepdim: true);
    }

    // y = (x - mean over the batch) * gain: each sample's output depends on the others.
    private sealed class BatchCentring : Module<Tensor, Tensor>
    {
        private readonly Parameter gain;

        public BatchCentring(long features) : base(nameof(BatchCentring))
        {
            gain = Parameter(ones(features));
            RegisterComponents();
        }

        public override Tensor forward(Tensor input) => (input - input.mean([0L], keepdim: true)) * gain;
    }
}

/// <summary>
/// The fallback's cost (nightly, <c>Category=Timing</c>): the small CNN with its Conv2d and GroupNorm layers taken by
/// the fallback (tables without them) against the engines with their rules, and a native Transformer layer (the hook
/// engine's fallback against the functional engine's recomposition), as ratios to plain backward, in the test
/// output. The fallback's gradients must equal the rules'; no time is asserted.
/// </summary>
[Trait("Category", "Timing")]
public sealed class FallbackCostTests
{
    public FallbackCostTests() => TestSettings.RequireTorch();

    [Fact]
    public void The_fallback_gives_the_rules_gradients_and_its_cost_is_recorded()
    {
        const long n = 32;
        using var model = ModelZoo.SmallCnn.Build(1);
        using var inputs = Seeded.Build(2, () => randn([n, .. ModelZoo.SmallCnn.InputShape]));
        using var targets = Seeded.Build(3, () => randint(0, 10, [n]));
        var loss = LossFunction.CrossEntropy();
        Type[] forced = [typeof(Conv2d), typeof(GroupNorm)];
        var hookRules = HookRules.Default.Where(e => !forced.Contains(e.Key)).ToDictionary(e => e.Key, e => e.Value);
        var forwards = FunctionalRules.Default.Where(e => !forced.Contains(e.Key)).ToDictionary(e => e.Key,
            e => e.Value);
        var methods = new (string Name, IPerSampleGradientMethod Method)[]
        {
            ("hooks", new HookEngine()), ("hooks-fallback", new HookEngine(rules: hookRules)),
            ("functional", new FunctionalEngine()), ("functional-fallback", new FunctionalEngine(forwards: forwards)),
        };
        using (var rules = new HookEngine().Compute(model, inputs, targets, loss))
            foreach (var (_, method) in methods.Skip(1))
            {
                using var other = method.Compute(model, inputs, targets, loss);
                GradientAssert.Agree(other, rules, ScalarType.Float32);
            }

        var contenders = new List<BenchContender> { PlainBackward(model, inputs, targets, loss) };
        contenders.AddRange(methods.Select(m => new BenchContender(m.Name, () =>
        {
            using var result = m.Method.Compute(model, inputs, targets, loss);
        })));
        Report("small-cnn", n, BenchmarkRunner.Measure(contenders, CPU, warmUp: 1, repeats: 7, measureMemory: false));
    }

    // TorchSharp's native TransformerEncoderLayer (no managed children): the hook engine's rule and the functional
    // engine's forward recompose it; the hook engine's fallback re-runs it per sample (its cost recorded beside them).
    // The zoo transformer's sizes: vocabulary 50, width 16, 2 heads, feed-forward 32, 12 tokens, 5 classes.
    [Fact]
    public void A_native_Transformer_layer_through_the_hook_rule_the_hook_fallback_and_the_functional_recomposition()
    {
        const long n = 32;
        using var model = Seeded.Build(1, () => (Module<Tensor, Tensor>)new TransformerClassifier(50, 16, 2, 32,
            decoderLayer: false, Activations.ReLU, 5));
        using var inputs = Seeded.Build(2, () => randint(1, 50, [n, 12]));
        using var targets = Seeded.Build(3, () => randint(0, 5, [n]));
        var loss = LossFunction.CrossEntropy();
        var withoutRule = HookRules.Default.Where(e => e.Key != typeof(TransformerEncoderLayer))
            .ToDictionary(e => e.Key, e => e.Value);
        using (var hooks = new HookEngine().Compute(model, inputs, targets, loss))
        using (var fallback = new HookEngine(rules: withoutRule).Compute(model, inputs, targets, loss))
        using (var functional = new FunctionalEngine().Compute(model, inputs, targets, loss))
        {
            GradientAssert.Agree(fallback, hooks, ScalarType.Float32);
            GradientAssert.Agree(functional, hooks, ScalarType.Float32);
        }
        var contenders = new List<BenchContender>
        {
            PlainBackward(model, inputs, targets, loss),
            new("hooks", () => new HookEngine().Compute(model, inputs, targets, loss).Dispose()),
            new("hooks-fallback", () => new HookEngine(rules: withoutRule).Compute(model, inputs, targets, loss)
                .Dispose()),
            new("functional", () => new FunctionalEngine().Compute(model, inputs, targets, loss).Dispose()),
        };
        Report("native-transformer", n, BenchmarkRunner.Measure(contenders, CPU, warmUp: 1, repeats: 7,
            measureMemory: false));
    }

    // One batched forward and backward of the declared loss: the denominator of every ratio.
    private static BenchContender PlainBackward(Module<Tensor, Tensor> model, Tensor inputs, Tensor targets,
        LossFunction loss) => new("plain", () =>
    {
        using var scope = NewDisposeScope();
        model.zero_grad();
        loss.BatchLoss(model.call(inputs), targets).backward();
        model.zero_grad();
    });

    private static void Report(string model, long n, IReadOnlyList<BenchTiming> timings)
    {
        double plain = timings[0].Median;
        foreach (var t in timings)
            TestContext.Current.TestOutputHelper?.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{model} N={n} threads={get_num_threads()}: {t.Name,-20} median {t.Median,8:0.0} ms  " +
                    $"x{t.Median / plain:0.00} plain backward"));
    }
}
