using TorchSharp;
using PerSampleGrads.Checking;
using PerSampleGrads.Maths;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace PerSampleGrads.Tests;

/// <summary>
/// The managed recurrence (<see cref="RecurrentUnroll"/>) against TorchSharp's native LSTM, GRU and RNN and their
/// cells, in float64, for every option the rules claim; and what <see cref="RecurrentInspection"/> reads and refuses.
/// </summary>
[Trait("Category", "Equivalence")]
public sealed class RecurrentUnrollTests
{
    public RecurrentUnrollTests() => TestSettings.RequireTorch();

    public static TheoryData<string, ScalarType> Layers => new(RecurrentLayers.Keys.SelectMany(k =>
        new[] { (k, ScalarType.Float64), (k, ScalarType.Float32) }));

    // Every option: kind, layers, directions, batch-first, bias.
    private static readonly Dictionary<string, Func<nn.Module>> RecurrentLayers = new()
    {
        ["lstm"] = () => LSTM(3, 4),
        ["lstm-l2-bi-batchfirst"] = () => LSTM(3, 4, numLayers: 2, bidirectional: true, batchFirst: true),
        ["lstm-nobias-l2"] = () => LSTM(3, 4, numLayers: 2, bias: false),
        ["gru"] = () => GRU(3, 4),
        ["gru-l2-bi"] = () => GRU(3, 4, numLayers: 2, bidirectional: true),
        ["gru-nobias-batchfirst"] = () => GRU(3, 4, bias: false, batchFirst: true),
        ["rnn-tanh-bi"] = () => RNN(3, 4, bidirectional: true),
        ["rnn-relu-l2"] = () => RNN(3, 4, numLayers: 2, nonLinearity: NonLinearities.ReLU),
        ["rnn-relu-nobias-batchfirst"] = () =>
            RNN(3, 4, nonLinearity: NonLinearities.ReLU, bias: false, batchFirst: true),
        ["lstmcell"] = () => LSTMCell(3, 4),
        ["lstmcell-nobias"] = () => LSTMCell(3, 4, bias: false),
        ["grucell"] = () => GRUCell(3, 4),
        ["rnncell-tanh"] = () => RNNCell(3, 4),
        ["rnncell-relu-nobias"] = () => RNNCell(3, 4, nonLinearity: NonLinearities.ReLU, bias: false),
    };

    [Theory]
    [MemberData(nameof(Layers))]
    public void The_managed_recurrence_reproduces_the_native_layer(string name, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        using var module = RecurrentLayers[name]().to(dtype);
        var layout = RecurrentInspection.Inspect(module, name);
        using var generator = new Generator(5, CPU);
        const long batch = 5, steps = 6;
        long[] inputShape = layout.IsCell ? [batch, 3] : layout.BatchFirst ? [batch, steps, 3] : [steps, batch, 3];
        long[] stateShape = layout.IsCell ? [batch, 4] : [layout.Layers * layout.Directions, batch, 4];
        var x = randn(inputShape, dtype, generator: generator);
        var h0 = randn(stateShape, dtype, generator: generator);
        var c0 = randn(stateShape, dtype, generator: generator);
        // With autograd on, as the engines run it: libtorch 2.10's float32 LSTM without autograd (its CPU inference
        // path) differs by up to 0.3 (RecurrentInspection).
        Tensor[] native = module switch
        {
            TorchSharp.Modules.LSTM lstm => lstm.call(x, (h0, c0)) is var (o, h, c) ? [o, h, c] : [],
            TorchSharp.Modules.GRU gru => gru.call(x, h0) is var (o, h) ? [o, h] : [],
            TorchSharp.Modules.RNN rnn => rnn.call(x, h0) is var (o, h) ? [o, h] : [],
            TorchSharp.Modules.LSTMCell cell => cell.call(x, (h0, c0)) is var (h, c) ? [h, c] : [],
            TorchSharp.Modules.GRUCell cell => [cell.call(x, h0)],
            TorchSharp.Modules.RNNCell cell => [cell.call(x, h0)],
            _ => throw new InvalidOperationException(name),
        };
        var managed = RecurrentUnroll.Run(layout, x, h0, layout.HasCellState ? c0 : null,
            new SharedRecurrentWeights(layout, module));
        Tensor[] expected = layout.IsCell ? [managed.FinalHidden, .. Cell(managed)]
            : [managed.Output, managed.FinalHidden, .. Cell(managed)];
        Assert.Equal(native.Length, expected.Length);
        var tolerance = TolerancePolicy.ToleranceFor(dtype).Relative;
        foreach (var (actual, wanted) in native.Zip(expected))
        {
            Assert.Equal(actual.shape, wanted.shape);
            double error = ((actual - wanted).abs().max() / wanted.abs().max()).to(ScalarType.Float64).item<double>();
            Assert.True(error <= tolerance, $"{name}: relative error {error:E2} above {tolerance:E0}");
        }
    }

    // Per-sample weight gradients from the recomputed recurrence against one native backward per sample, for random
    // gradients at every output (h0 and c0 given), in float64.
    [Theory]
    [MemberData(nameof(LayerNames))]
    public void Per_sample_gradients_from_the_recurrence_equal_one_native_backward_per_sample(string name)
    {
        using var scope = NewDisposeScope();
        using var module = RecurrentLayers[name]().to(ScalarType.Float64);
        var layout = RecurrentInspection.Inspect(module, name);
        using var generator = new Generator(9, CPU);
        const long batch = 3, steps = 5;
        long[] inputShape = layout.IsCell ? [batch, 3] : layout.BatchFirst ? [batch, steps, 3] : [steps, batch, 3];
        long[] stateShape = layout.IsCell ? [batch, 4] : [layout.Layers * layout.Directions, batch, 4];
        var x = randn(inputShape, ScalarType.Float64, generator: generator);
        var h0 = randn(stateShape, ScalarType.Float64, generator: generator);
        var c0 = layout.HasCellState ? randn(stateShape, ScalarType.Float64, generator: generator) : null;
        var outputs = Native(module, x, h0, c0);
        var gradients = outputs.Select(o => randn(o.shape, ScalarType.Float64, generator: generator)).ToArray();
        var call = new RecurrentCall(x, h0, c0, gradients[0], layout.IsCell ? null : gradients[1],
            layout.HasCellState ? gradients[^1] : null);
        var perSample = RecurrentGradients.Compute(layout, module, call, _ => true);
        var parameters = module.named_parameters().ToList();
        Assert.Equal(parameters.Select(p => p.name).Order(), perSample.Keys.Order());
        int sampleAxisOfInput = layout.IsCell || layout.BatchFirst ? 0 : 1, sampleAxisOfState = layout.IsCell ? 0 : 1;
        var tolerance = TolerancePolicy.ToleranceFor(ScalarType.Float64).Relative;
        for (long i = 0; i < batch; i++)
        {
            var one = Native(module, x.narrow(sampleAxisOfInput, i, 1), h0.narrow(sampleAxisOfState, i, 1),
                c0?.narrow(sampleAxisOfState, i, 1));
            var oneGradients = gradients.Select((g, k) =>
                g.narrow(k == 0 ? sampleAxisOfInput : sampleAxisOfState, i, 1)).ToArray();
            module.zero_grad();
            autograd.backward(one, oneGradients);
            foreach (var (parameterName, parameter) in parameters)
            {
                var expected = parameter.grad!;
                var actual = perSample[parameterName][i];
                // A ReLU RNN can give a sample an all-zero gradient: then only zeros pass.
                double scale = Math.Max(expected.abs().max().item<double>(), double.Epsilon);
                double error = (actual - expected).abs().max().item<double>() / scale;
                Assert.True(error <= tolerance, $"{name} {parameterName} sample {i}: relative error {error:E2}");
            }
        }
    }

    public static TheoryData<string> LayerNames => [.. RecurrentLayers.Keys];

    private static Tensor[] Native(nn.Module module, Tensor x, Tensor h0, Tensor? c0) => module switch
    {
        TorchSharp.Modules.LSTM lstm => lstm.call(x, (h0, c0!)) is var (o, h, c) ? [o, h, c] : [],
        TorchSharp.Modules.GRU gru => gru.call(x, h0) is var (o, h) ? [o, h] : [],
        TorchSharp.Modules.RNN rnn => rnn.call(x, h0) is var (o, h) ? [o, h] : [],
        TorchSharp.Modules.LSTMCell cell => cell.call(x, (h0, c0!)) is var (h, c) ? [h, c] : [],
        TorchSharp.Modules.GRUCell cell => [cell.call(x, h0)],
        TorchSharp.Modules.RNNCell cell => [cell.call(x, h0)],
        _ => throw new InvalidOperationException(module.GetType().Name),
    };

    private static Tensor[] Cell(RecurrentResult result) => result.FinalCell is { } c ? [c] : [];

    [Fact]
    public void The_inspection_reads_every_option_and_the_rnn_nonlinearity()
    {
        using var lstm = LSTM(3, 4, numLayers: 2, bidirectional: true, batchFirst: true, bias: false);
        Assert.Equal(new RecurrentLayout(RecurrentKind.Lstm, false, 3, 4, 2, true, true, false),
            RecurrentInspection.Inspect(lstm, "lstm"));
        using var relu = RNN(5, 2, nonLinearity: NonLinearities.ReLU);
        Assert.Equal(RecurrentKind.RnnRelu, RecurrentInspection.Inspect(relu, "relu").Kind);
        using var tanh = RNNCell(5, 2);
        Assert.Equal(new RecurrentLayout(RecurrentKind.RnnTanh, true, 5, 2, 1, false, false, true),
            RecurrentInspection.Inspect(tanh, "tanh"));
        using var gru = GRUCell(2, 3, bias: false);
        Assert.Equal(new RecurrentLayout(RecurrentKind.Gru, true, 2, 3, 1, false, false, false),
            RecurrentInspection.Inspect(gru, "gru"));
    }

    [Fact]
    public void Dropout_between_layers_in_training_mode_is_refused_and_allowed_in_eval_mode()
    {
        using var lstm = LSTM(3, 4, numLayers: 2, dropout: 0.01);
        using var state = random.get_rng_state();
        lstm.eval();
        Assert.Equal(2, RecurrentInspection.Inspect(lstm, "lstm").Layers);
        lstm.train();
        var refused = Assert.Throws<PerSampleGradientsException>(() => RecurrentInspection.Inspect(lstm, "lstm"));
        Assert.Equal(Problem.RandomnessInTraining, refused.Problem);
        using var after = random.get_rng_state();
        Assert.True(state.equal(after).all().item<bool>(), "the probe changed the global random state");
        using var fresh = GRU(3, 4, numLayers: 2, dropout: 0.5);
        fresh.train();
        Assert.Equal(Problem.RandomnessInTraining,
            Assert.Throws<PerSampleGradientsException>(() => RecurrentInspection.Inspect(fresh, "gru")).Problem);
        using var noDropout = GRU(3, 4, numLayers: 2);
        noDropout.train();
        Assert.Equal(2, RecurrentInspection.Inspect(noDropout, "gru").Layers);
    }
}
