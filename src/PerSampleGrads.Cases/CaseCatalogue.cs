using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using PerSampleGrads.Zoo;

namespace PerSampleGrads.Cases;

/// <summary>
/// The named cases every method is checked on: each supported layer with each option that changes its rule, batch
/// sizes 1 and more, sum and mean, every built-in loss and a custom one, weight sharing, nesting, frozen and unused
/// parameters, and the zoo models.
/// </summary>
public static class CaseCatalogue
{
    private static readonly LossFunction CeMean = LossFunction.CrossEntropy(LossReduction.Mean);
    private static readonly LossFunction CeSum = LossFunction.CrossEntropy(LossReduction.Sum);

    /// <summary>A per-sample custom loss: softplus of the negative margin of the target class, summed over
    /// classes.</summary>
    public static LossFunction SoftMargin(LossReduction reduction) => LossFunction.PerSample("softmargin",
        (output, target) => functional.softplus(-output * target).sum(1), reduction);

    /// <summary>Every layer case (small models; fast on a CPU).</summary>
    public static IReadOnlyList<GradientCase> Layers { get; } = CreateLayerCases();

    /// <summary>One case per zoo model at a small batch (ResNet-18 at N = 2 so that the float64 oracle stays fast on a
    /// CPU).</summary>
    public static IReadOnlyList<GradientCase> Zoo { get; } =
        ModelZoo.All.Select(m => FromZoo(m, m == ModelZoo.ResNet18GroupNorm ? 2 : 4)).ToList();

    /// <summary>Layers and zoo.</summary>
    public static IReadOnlyList<GradientCase> All { get; } = [.. Layers, .. Zoo];

    /// <summary>The case with this id; the error lists the ids.</summary>
    public static GradientCase Get(string id) =>
        All.FirstOrDefault(c => c.Id == id) ?? throw new ArgumentException($"Unknown case '{id}'. Known: " +
            $"{string.Join(", ", All.Select(c => c.Id))}.");

    /// <summary>A zoo model as a case with CE/mean (<see cref="ZooModel.Case"/>).</summary>
    public static GradientCase FromZoo(ZooModel model, long batchSize, LossFunction? loss = null, long seed = 7) =>
        model.Case(batchSize, loss ?? CeMean, seed);

    private static string Id(string name, long n, LossFunction loss) => GradientCase.IdOf(name, n, loss);

    private static GradientCase Case(string name, long[] inputShape, LossFunction loss, long n,
        Func<Module<Tensor, Tensor>> build, long vocabulary = 0) =>
        new(Id(name, n, loss), name, build, inputShape, loss, n, vocabulary);

    private static GradientCase Classifier(string name, long[] inputShape, long n, LossFunction loss,
        Func<Module<Tensor, Tensor>[]> body, long classes = 5) =>
        Case(name, inputShape, loss, n, () => CaseModels.Build(11, body, inputShape, classes));

    private static GradientCase Plain(string name, long[] inputShape, long n, LossFunction loss,
        Func<Module<Tensor, Tensor>[]> body) =>
        Case(name, inputShape, loss, n, () => CaseModels.Build(11, body, inputShape));

    private static List<GradientCase> CreateLayerCases()
    {
        var mse = LossFunction.MeanSquaredError;
        var l1 = LossFunction.L1;
        var nll = LossFunction.NegativeLogLikelihood;
        return
        [
            // Linear: 2-d, 3-d and 4-d inputs, bias off, non-square.
            Plain("linear-2d", [6], 5, CeMean, () => [Linear(6, 4)]),
            Plain("linear-2d", [6], 1, CeSum, () => [Linear(6, 4)]),
            Plain("linear-3d", [7, 5], 4, mse(LossReduction.Sum), () => [Linear(5, 3)]),
            Plain("linear-3d", [7, 5], 3, mse(LossReduction.Mean), () => [Linear(5, 3)]),
            Plain("linear-4d", [2, 3, 5], 3, l1(LossReduction.Mean), () => [Linear(5, 4)]),
            // One output feature at several positions: the one-position shortcuts must not take it.
            Plain("linear-3d-one-output", [7, 5], 3, mse(LossReduction.Mean), () => [Linear(5, 1)]),
            Classifier("linear-nobias", [9], 4, CeMean, () => [Linear(9, 6, hasBias: false), Tanh()]),
            // Conv1d: stride, padding, dilation, groups, 'same' with an even kernel, 'valid', bias off, reflect
            // padding.
            Classifier("conv1d-k3-p1", [3, 11], 4, CeMean, () => [Conv1d(3, 5, 3, padding: 1)]),
            Classifier("conv1d-k3-s2-d2-g3", [6, 13], 5, CeSum,
                () => [Conv1d(6, 9, 3, stride: 2, dilation: 2, groups: 3)]),
            Classifier("conv1d-k3-s2-d2-g3", [6, 13], 1, CeMean,
                () => [Conv1d(6, 9, 3, stride: 2, dilation: 2, groups: 3)]),
            Classifier("conv1d-same-k4", [2, 10], 3, CeMean, () => [Conv1d(2, 4, 4, Padding.Same)]),
            Classifier("conv1d-valid-nobias", [3, 9], 2, CeMean, () => [Conv1d(3, 4, 3, Padding.Valid, bias: false)]),
            Classifier("conv1d-reflect-p2", [2, 8], 3, CeMean,
                () => [Conv1d(2, 3, 3, padding: 2, padding_mode: PaddingModes.Reflect)]),
            // Conv2d: the same options, asymmetric kernels and strides, depthwise.
            // 22x14 = 308 output positions: the functional engine's grouped-convolution route on the CPU (from 256),
            // with groups and a non-square output (the other grouped-route cases are square).
            Classifier("conv2d-g2-grouped-route-22x14", [4, 24, 16], 2, CeMean, () => [Conv2d(4, 6, 3, groups: 2)]),
            // Exactly two output positions (1x2): the contraction over positions has its own route for one.
            Classifier("conv2d-two-positions", [3, 3, 4], 3, CeMean, () => [Conv2d(3, 4, 3)]),
            Classifier("conv2d-k3-s2-d2-g2", [4, 9, 9], 5, CeMean,
                () => [Conv2d(4, 6, 3, stride: 2, dilation: 2, groups: 2)]),
            Classifier("conv2d-k3-s2-d2-g2", [4, 9, 9], 5, CeSum,
                () => [Conv2d(4, 6, 3, stride: 2, dilation: 2, groups: 2)]),
            Classifier("conv2d-k3-p1", [3, 6, 6], 1, CeSum, () => [Conv2d(3, 4, 3, padding: 1)]),
            Classifier("conv2d-depthwise-k3", [4, 7, 7], 4, CeMean, () => [Conv2d(4, 8, 3, padding: 1, groups: 4)]),
            Classifier("conv2d-k2x3-s1x2-p1x0", [3, 7, 8], 3, CeMean,
                () => [Conv2d(3, 5, (2, 3), stride: (1, 2), padding: (1, 0))]),
            Classifier("conv2d-same-k4-d2", [2, 8, 8], 3, CeSum, () => [Conv2d(2, 3, 4, Padding.Same, dilation: 2)]),
            Classifier("conv2d-valid-nobias", [3, 6, 6], 2, l1(LossReduction.Mean),
                () => [Conv2d(3, 4, 3, Padding.Valid, bias: false)], classes: 3),
            Classifier("conv2d-reflect-p1", [2, 6, 6], 3, CeMean,
                () => [Conv2d(2, 3, 3, padding: 1, padding_mode: PaddingModes.Reflect)]),
            Classifier("conv2d-circular-p1", [2, 5, 5], 3, CeMean,
                () => [Conv2d(2, 3, 3, padding: 1, padding_mode: PaddingModes.Circular)]),
            // GroupNorm with 1, some and all channels per group; LayerNorm over 1 and 2 dims; InstanceNorm.
            Classifier("groupnorm-g1", [4, 5, 5], 4, CeMean, () => [Conv2d(4, 6, 3), GroupNorm(1, 6), ReLU()]),
            Classifier("groupnorm-g3", [4, 5, 5], 3, CeSum, () => [Conv2d(4, 6, 3), GroupNorm(3, 6), ReLU()]),
            Classifier("groupnorm-g6", [4, 5, 5], 1, CeMean, () => [Conv2d(4, 6, 3), GroupNorm(6, 6)]),
            Classifier("groupnorm-1d", [4, 7], 3, CeMean, () => [Conv1d(4, 6, 3), GroupNorm(2, 6)]),
            Plain("layernorm-1d", [8], 4, mse(LossReduction.Mean), () => [Linear(8, 8), LayerNorm(8), Linear(8, 3)]),
            Classifier("layernorm-2d", [4, 5], 3, CeMean, () => [LayerNorm([4L, 5L])]),
            Classifier("layernorm-3d-tokens", [6, 8], 4, CeSum, () => [Linear(8, 8), LayerNorm(8), GELU()]),
            Classifier("instancenorm1d-affine", [3, 9], 4, CeMean,
                () => [Conv1d(3, 4, 3), InstanceNorm1d(4, affine: true)]),
            Classifier("instancenorm2d-affine", [3, 6, 6], 3, CeMean,
                () => [Conv2d(3, 4, 3), InstanceNorm2d(4, affine: true), ReLU()]),
            Classifier("instancenorm3d-affine", [2, 4, 4, 4], 3, CeMean,
                () => [Conv3d(2, 3, 2), InstanceNorm3d(3, affine: true)]),
            Classifier("instancenorm3d-running-stats", [2, 4, 4, 4], 2, CeSum,
                () => [Conv3d(2, 3, 2), InstanceNorm3d(3, affine: true, track_running_stats: true)]),
            Classifier("instancenorm2d-running-stats", [3, 6, 6], 3, CeMean,
                () => [Conv2d(3, 4, 3), InstanceNorm2d(4, affine: true, track_running_stats: true)]),
            // BatchNorm in eval mode (running statistics): 2-d and 3-d inputs to BatchNorm1d, 2d, 3d, no affine.
            Classifier("batchnorm1d-eval-features", [6], 4, CeMean, () => [Linear(6, 5), BatchNorm1d(5), Tanh()]),
            Classifier("batchnorm1d-eval-signal", [3, 7], 3, CeSum, () => [Conv1d(3, 4, 3), BatchNorm1d(4)]),
            Classifier("batchnorm2d-eval", [3, 6, 6], 3, CeMean, () => [Conv2d(3, 4, 3), BatchNorm2d(4), ReLU()]),
            Classifier("batchnorm2d-eval", [3, 6, 6], 1, CeSum, () => [Conv2d(3, 4, 3), BatchNorm2d(4), ReLU()]),
            Classifier("batchnorm3d-eval", [2, 4, 4, 4], 3, CeMean, () => [Conv3d(2, 3, 2), BatchNorm3d(3)]),
            Classifier("batchnorm2d-eval-noaffine", [3, 5, 5], 3, CeMean,
                () => [Conv2d(3, 4, 3), BatchNorm2d(4, affine: false)]),
            // Conv3d: the Conv2d options in three dimensions.
            Classifier("conv3d-k3-p1", [2, 4, 4, 4], 3, CeMean, () => [Conv3d(2, 3, 3, padding: 1)]),
            Classifier("conv3d-k3-s2-d2-g2", [4, 6, 6, 6], 3, CeSum,
                () => [Conv3d(4, 6, 3, stride: 2, dilation: 2, groups: 2)]),
            Classifier("conv3d-k2x3x1-s1x2x1", [2, 4, 5, 3], 2, CeMean,
                () => [Conv3d(2, 3, (2, 3, 1), stride: (1, 2, 1))]),
            Classifier("conv3d-same-k2", [2, 4, 4, 4], 3, CeMean, () => [Conv3d(2, 3, 2, Padding.Same)]),
            Classifier("conv3d-valid-nobias", [2, 4, 4, 4], 1, CeMean,
                () => [Conv3d(2, 3, 3, Padding.Valid, bias: false)]),
            Classifier("conv3d-reflect-p1", [2, 4, 4, 4], 3, CeMean,
                () => [Conv3d(2, 2, 3, padding: 1, padding_mode: PaddingModes.Reflect)]),
            Classifier("conv3d-circular-p1", [2, 3, 3, 3], 2, CeMean,
                () => [Conv3d(2, 2, 3, padding: 1, padding_mode: PaddingModes.Circular)]),
            // ConvTranspose1d/2d/3d: stride, padding, output padding, dilation, groups, bias off, asymmetric kernels.
            Classifier("convtranspose1d-k3", [3, 5], 4, CeMean, () => [ConvTranspose1d(3, 4, 3)]),
            Classifier("convtranspose1d-k3-s2-p1-op1", [3, 5], 3, CeSum,
                () => [ConvTranspose1d(3, 4, 3, stride: 2, padding: 1, output_padding: 1)]),
            Classifier("convtranspose1d-k3-s2-d2-g3-op1", [6, 4], 3, CeMean,
                () => [ConvTranspose1d(6, 3, 3, stride: 2, output_padding: 1, dilation: 2, groups: 3)]),
            Classifier("convtranspose2d-k3-s2-p1-op1", [3, 4, 4], 3, CeMean,
                () => [ConvTranspose2d(3, 2, 3, stride: 2, padding: 1, output_padding: 1)]),
            Classifier("convtranspose2d-k2x3-s2x1-d1x2-g2", [4, 3, 4], 3, CeSum,
                () => [ConvTranspose2d(4, 6, (2, 3), stride: (2, 1), dilation: (1, 2), groups: 2)]),
            Classifier("convtranspose2d-nobias", [2, 3, 3], 1, CeMean, () => [ConvTranspose2d(2, 3, 2, bias: false)]),
            Classifier("convtranspose2d-op-below-dilation", [2, 3, 3], 3, CeMean,
                () => [ConvTranspose2d(2, 2, 2, stride: 1, output_padding: 1, dilation: 2)]),
            Classifier("convtranspose3d-k3-s2-p1-op1", [2, 3, 3, 3], 3, CeMean,
                () => [ConvTranspose3d(2, 2, 3, stride: 2, padding: 1, output_padding: 1)]),
            Classifier("convtranspose3d-k2-d2-g2-nobias", [2, 2, 3, 2], 2, CeSum,
                () => [ConvTranspose3d(2, 4, 2, dilation: 2, groups: 2, bias: false)]),
            // PReLU: one slope and one per channel, on features and images.
            Classifier("prelu-single", [6], 4, CeMean, () => [Linear(6, 5), PReLU(1)]),
            Classifier("prelu-per-channel", [3, 5, 5], 3, CeSum, () => [Conv2d(3, 4, 3), PReLU(4)]),
            Classifier("prelu-per-feature", [6], 3, CeMean, () => [Linear(6, 5), PReLU(5)]),
            // Exactly two slopes: neither the single-slope shape nor a broadcast of one slope.
            Classifier("prelu-two-channels", [3, 4, 4], 3, CeMean, () => [Conv2d(3, 2, 3), PReLU(2)]),
            // Custom modules without a rule: the per-sample rerun fallback (raw parameters; a child with a rule
            // inside).
            Classifier("custom-gainshift-fallback", [6], 4, CeMean, () => [Linear(6, 5), new GainShiftTanh(5)]),
            // One raw parameter and nothing else, the most common custom layer, on features and on tokens.
            Classifier("custom-one-gain-fallback", [6], 4, CeMean, () => [Linear(6, 5), new FeatureGain(5), Tanh()]),
            Classifier("custom-one-gain-fallback-tokens", [3, 4], 3, CeSum, () => [new FeatureGain(4), Linear(4, 4)]),
            // Two custom modules side by side, one holding its parameters in a list: each is re-run on its own.
            Classifier("custom-two-modules-fallback", [6], 3, CeMean,
                () => [new FeatureGain(6), Linear(6, 5), new ListedGainsTanh(5)]),
            Classifier("custom-unused-parameter-fallback", [6], 3, CeSum,
                () => [Linear(6, 5), new GainTanhWithSpare(5)]),
            Classifier("custom-gainshift-fallback-tokens", [3, 4], 3, CeSum,
                () => [new GainShiftTanh(4), Linear(4, 4)]),
            Classifier("custom-scaled-linear-fallback", [6], 4, CeMean,
                () => [Linear(6, 6), Tanh(), new ScaledLinear(6, 5)]),
            // Raw parameters in a ParameterList: the list owns them, the layer above it is re-run.
            Classifier("custom-listed-gains-fallback", [6], 3, CeSum, () => [Linear(6, 5), new ListedGainsTanh(5)]),
            // Embedding with padding_idx and 2-d token inputs.
            Case("embedding-pad0", [6], CeMean, 5, () => CaseModels.Build(11, () => [Embedding(20, 4, padding_idx: 0)],
                [6], 3, ScalarType.Int64), vocabulary: 20),
            Case("embedding-nopad", [3, 4], CeSum, 3, () => CaseModels.Build(11, () => [Embedding(15, 3)], [3, 4], 4,
                ScalarType.Int64), vocabulary: 15),
            // Weight sharing, nesting, frozen and unused parameters.
            Case("shared-linear-twice", [6], CeMean, 4, () =>
                Seeded.Build(11, () => (Module<Tensor, Tensor>)new SharedTwice(6, 3))),
            Case("shared-linear-twice", [6], CeSum, 1, () =>
                Seeded.Build(11, () => (Module<Tensor, Tensor>)new SharedTwice(6, 3))),
            Case("nested-sequential", [5], CeMean, 3, () => Seeded.Build(11, () => Nested.Create(5, 4))),
            Case("unused-branch", [5], CeMean, 3, () => Seeded.Build(11,
                () => (Module<Tensor, Tensor>)new UnusedBranch(5, 4))),
            Case("frozen-first-layer", [6], CeMean, 4, () =>
                Frozen(CaseModels.Build(11, () => [Linear(6, 5), ReLU(), Linear(5, 3)], [6]), "0.weight", "0.bias")),
            Case("frozen-weight-bias-only", [3, 6, 6], CeMean, 3,
                () => Frozen(CaseModels.Build(11, () => [Conv2d(3, 4, 3), GroupNorm(2, 4)], [3, 6, 6], 3), "0.weight",
                "1.weight", "3.weight")),
            // Losses: NLL on log-probabilities, MSE/L1 on several outputs, a custom per-sample loss.
            Plain("nll-logsoftmax", [6], 4, nll(LossReduction.Mean), () => [Linear(6, 5), LogSoftmax(1)]),
            Plain("nll-logsoftmax", [6], 4, nll(LossReduction.Sum), () => [Linear(6, 5), LogSoftmax(1)]),
            Plain("mse-multi-output", [5], 4, mse(LossReduction.Sum), () => [Linear(5, 6), Tanh(), Linear(6, 3)]),
            Plain("l1-multi-output", [5], 3, l1(LossReduction.Sum), () => [Linear(5, 3)]),
            Plain("custom-softmargin", [5], 4, SoftMargin(LossReduction.Mean),
                () => [Linear(5, 4), Tanh(), Linear(4, 3)]),
            Plain("custom-softmargin", [5], 4, SoftMargin(LossReduction.Sum),
                () => [Linear(5, 4), Tanh(), Linear(4, 3)]),
            Classifier("dropout-eval", [8], 4, CeMean, () => [Linear(8, 8), Dropout(0.5), ReLU()]),
            .. OptionCases(),
            .. RecurrentCases(),
            .. SequenceCases(),
        ];
    }

    // One case per option value the engines claim, each option drawn independently per axis: kernel, stride, padding,
    // dilation and output padding that differ between axes; every padding mode in every dimension; normalisation
    // layers with and without affine and running statistics in training and eval mode; class-index losses on outputs
    // that keep positions ([N, C, L] outputs with [N, L] targets).
    private static IEnumerable<GradientCase> OptionCases()
    {
        var nll = LossFunction.NegativeLogLikelihood;
        return
        [
            // Convolutions: every per-axis option differs between axes.
            Classifier("conv2d-k3x2-s2x1-p1x2-d1x2", [3, 8, 7], 3, CeMean,
                () => [Conv2d(3, 4, (3, 2), stride: (2, 1), padding: (1, 2), dilation: (1, 2))]),
            Classifier("conv2d-k3x2-s2x1-p1x2-d1x2", [3, 8, 7], 2, CeSum,
                () => [Conv2d(3, 4, (3, 2), stride: (2, 1), padding: (1, 2), dilation: (1, 2))]),
            Classifier("conv2d-same-k4x3-d1x2", [2, 7, 8], 3, CeMean,
                () => [Conv2d(2, 3, (4, 3), Padding.Same, dilation: (1, 2))]),
            Classifier("conv3d-k3x2x2-s1x2x1-p0x1x2-d2x1x1", [2, 6, 5, 4], 2, CeMean,
                () => [Conv3d(2, 3, (3, 2, 2), stride: (1, 2, 1), padding: (0, 1, 2), dilation: (2, 1, 1))]),
            Classifier("conv3d-same-k3x2x1-d1x1x2", [2, 4, 4, 3], 2, CeSum,
                () => [Conv3d(2, 2, (3, 2, 1), Padding.Same, dilation: (1, 1, 2))]),
            // TorchSharp 0.107 applies ConvTranspose2d's first output padding value to every axis ((1, 2) runs as
            // (1, 1), measured), so the case asks for what runs.
            Classifier("convtranspose2d-k3x2-s2x3-p1x0-op1", [3, 3, 4], 3, CeMean,
                () => [ConvTranspose2d(3, 2, (3, 2), stride: (2, 3), padding: (1, 0), output_padding: (1, 1))]),
            // TorchSharp 0.107 builds ConvTranspose3d with output_padding (1, 0, 1) as (1, 1, 1) (libtorch refuses it
            // where the stride is 1), so the 3-d case keeps its output padding the same on every axis.
            Classifier("convtranspose3d-k2x3x1-s2x3x2-p0x1x0-op1-d1x1x2", [2, 2, 3, 2], 2, CeSum,
                () => [ConvTranspose3d(2, 2, (2, 3, 1), stride: (2, 3, 2), padding: (0, 1, 0),
                    output_padding: (1, 1, 1), dilation: (1, 1, 2))]),
            // Padding modes other than zeros, in every dimension, with per-axis padding where the layer takes it.
            Classifier("conv1d-replicate-p2", [2, 8], 3, CeMean,
                () => [Conv1d(2, 3, 3, padding: 2, padding_mode: PaddingModes.Replicate)]),
            Classifier("conv1d-circular-p1-s2", [2, 9], 3, CeSum,
                () => [Conv1d(2, 3, 3, stride: 2, padding: 1, padding_mode: PaddingModes.Circular)]),
            // 'same' in another mode: an even kernel on one axis, and equal amounts on every axis (TorchSharp 0.107
            // pads the axes in reverse order, which only unequal amounts reveal; those are refused, BadInputTests).
            Classifier("conv1d-same-k4-replicate", [2, 8], 3, CeMean,
                () => [Conv1d(2, 3, 4, Padding.Same, padding_mode: PaddingModes.Replicate)]),
            Classifier("conv2d-same-k3-reflect", [2, 5, 6], 3, CeSum,
                () => [Conv2d(2, 3, 3, Padding.Same, padding_mode: PaddingModes.Reflect)]),
            Classifier("conv2d-replicate-p1x2", [2, 6, 5], 3, CeMean,
                () => [Conv2d(2, 3, (3, 3), padding: (1, 2), padding_mode: PaddingModes.Replicate)]),
            Classifier("conv2d-reflect-p2x1-d2", [2, 7, 6], 2, CeMean,
                () => [Conv2d(2, 3, (2, 3), padding: (2, 1), dilation: (2, 1), padding_mode: PaddingModes.Reflect)]),
            Classifier("conv2d-circular-p1x2-g2", [4, 5, 6], 3, CeSum,
                () => [Conv2d(4, 4, (3, 3), padding: (1, 2), groups: 2, padding_mode: PaddingModes.Circular)]),
            Classifier("conv3d-replicate-p1", [2, 4, 3, 4], 2, CeMean,
                () => [Conv3d(2, 2, 3, padding: 1, padding_mode: PaddingModes.Replicate)]),
            Classifier("conv3d-reflect-p1x0x1", [2, 4, 3, 4], 2, CeMean,
                () => [Conv3d(2, 2, (3, 3, 3), padding: (1, 0, 1), padding_mode: PaddingModes.Reflect)]),
            // Normalisation: every flag, in training mode and in eval mode.
            Trained(Classifier("instancenorm1d-affine-running-stats-train", [3, 9], 4, CeMean,
                () => [Conv1d(3, 4, 3), InstanceNorm1d(4, affine: true, track_running_stats: true)])),
            Trained(Classifier("instancenorm2d-affine-running-stats-train", [3, 6, 6], 3, CeSum,
                () => [Conv2d(3, 4, 3), InstanceNorm2d(4, affine: true, track_running_stats: true), ReLU()])),
            Trained(Classifier("instancenorm3d-affine-running-stats-train", [2, 4, 4, 4], 2, CeMean,
                () => [Conv3d(2, 3, 2), InstanceNorm3d(3, affine: true, track_running_stats: true)])),
            WithRunningStatistics(Classifier("instancenorm1d-affine-running-stats-eval-random", [3, 9], 4, CeMean,
                () => [Conv1d(3, 4, 3), InstanceNorm1d(4, affine: true, track_running_stats: true)])),
            WithRunningStatistics(Classifier("instancenorm2d-affine-running-stats-eval-random", [3, 6, 6], 3, CeSum,
                () => [Conv2d(3, 4, 3), InstanceNorm2d(4, affine: true, track_running_stats: true), ReLU()])),
            Trained(Classifier("instancenorm2d-affine-train", [3, 6, 6], 3, CeMean,
                () => [Conv2d(3, 4, 3), InstanceNorm2d(4, affine: true), ReLU()])),
            Trained(Classifier("instancenorm1d-noaffine-running-stats-train", [3, 9], 3, CeMean,
                () => [Conv1d(3, 4, 3), InstanceNorm1d(4, track_running_stats: true), Tanh()])),
            WithRunningStatistics(Classifier("instancenorm2d-noaffine-running-stats-eval-random", [3, 6, 6], 3, CeMean,
                () => [Conv2d(3, 4, 3), InstanceNorm2d(4, track_running_stats: true), Tanh()])),
            Classifier("instancenorm1d-noaffine", [3, 9], 3, CeSum,
                () => [Conv1d(3, 4, 3), InstanceNorm1d(4), Tanh()]),
            Classifier("groupnorm-noaffine", [4, 5, 5], 3, CeMean,
                () => [Conv2d(4, 6, 3), GroupNorm(3, 6, affine: false), Tanh()]),
            Trained(Classifier("groupnorm-g2-train", [4, 5, 5], 3, CeMean,
                () => [Conv2d(4, 6, 3), GroupNorm(2, 6), Tanh()])),
            Plain("layernorm-noaffine", [8], 4, LossFunction.MeanSquaredError(LossReduction.Mean),
                () => [Linear(8, 8), Tanh(), LayerNorm(8, elementwise_affine: false), Linear(8, 3)]),
            Plain("layernorm-nobias", [8], 4, LossFunction.MeanSquaredError(LossReduction.Sum),
                () => [Linear(8, 8), Tanh(), LayerNorm(8, bias: false), Linear(8, 3)]),
            Trained(Classifier("layernorm-2d-train", [4, 5], 3, CeSum, () => [LayerNorm([4L, 5L])])),
            Classifier("batchnorm1d-eval-noaffine", [6], 3, CeMean,
                () => [Linear(6, 5), BatchNorm1d(5, affine: false), Tanh()]),
            Classifier("batchnorm3d-eval-noaffine", [2, 4, 4, 4], 2, CeSum,
                () => [Conv3d(2, 3, 2), BatchNorm3d(3, affine: false)]),
            // Class-index losses on outputs that keep positions: [N, C, L] and [N, C, H, W] outputs.
            Plain("ce-positions-conv1d", [3, 9], 4, CeMean, () => [Conv1d(3, 4, 3)]),
            Plain("ce-positions-conv1d", [3, 9], 3, CeSum, () => [Conv1d(3, 4, 3)]),
            Plain("nll-positions-conv1d", [3, 9], 4, nll(LossReduction.Mean), () => [Conv1d(3, 4, 3), LogSoftmax(1)]),
            Plain("nll-positions-conv1d", [3, 9], 3, nll(LossReduction.Sum), () => [Conv1d(3, 4, 3), LogSoftmax(1)]),
            Plain("ce-positions-conv2d", [3, 5, 5], 3, CeMean, () => [Conv2d(3, 4, 3), GroupNorm(2, 4)]),
            Plain("ce-positions-conv2d", [3, 5, 5], 2, CeSum, () => [Conv2d(3, 4, 3), GroupNorm(2, 4)]),
        ];
    }

    // Recurrent layers (RecurrentModels.cs), one case per option: layers, directions, batch-first, bias, a given h0
    // (and c0), a head on the final states, each cell unrolled over the steps; T = 4 steps of F = 3 features, I = 4,
    // H = 5, 3 classes.
    private static IEnumerable<GradientCase> RecurrentCases()
    {
        GradientCase Recurrent(string name, RecurrentOptions options, long n, LossFunction loss, long length = 4) =>
            Case(name, [length, 3], loss, n, () => Seeded.Build(11, () =>
            {
                var model = new RecurrentClassifier(options, 3, 4, 5, 3);
                model.eval();
                return (Module<Tensor, Tensor>)model;
            }));
        const RecurrentCellKind lstm = RecurrentCellKind.Lstm, gru = RecurrentCellKind.Gru;
        const RecurrentCellKind tanh = RecurrentCellKind.RnnTanh, relu = RecurrentCellKind.RnnRelu;
        return
        [
            Recurrent("lstm-l1", new(lstm), 4, CeMean),
            Recurrent("lstm-l2-h0-final", new(lstm, Layers: 2, InitialState: true, ReadFinalState: true), 3, CeSum),
            Recurrent("lstm-bi-batchfirst", new(lstm, Bidirectional: true, BatchFirst: true), 3, CeMean),
            Recurrent("lstm-l2-bi-nobias-final",
                new(lstm, Layers: 2, Bidirectional: true, Bias: false, ReadFinalState: true), 3, CeMean),
            Trained(Recurrent("lstm-l2-train", new(lstm, Layers: 2, BatchFirst: true), 3, CeMean)),
            Recurrent("gru-l2-bi-h0", new(gru, Layers: 2, Bidirectional: true, InitialState: true), 3, CeMean),
            // h0 and c0 of the upper layer's two directions are rows 2 and 3 of the given states.
            Recurrent("lstm-l2-bi-h0", new(lstm, Layers: 2, Bidirectional: true, InitialState: true), 3, CeSum),
            // One layer called twice in a forward: both calls' terms must reach its gradients.
            Recurrent("lstm-twice-h0", new(lstm, InitialState: true, Twice: true), 3, CeMean),
            Recurrent("gru-l2-twice-batchfirst", new(gru, Layers: 2, BatchFirst: true, Twice: true), 3, CeSum),
            Recurrent("gru-batchfirst-nobias-final", new(gru, BatchFirst: true, Bias: false, ReadFinalState: true), 4,
                CeSum),
            // Biases trained, weights frozen: the per-sample terms carry biases only (GRU's b_hn scaled by r).
            WithFrozen(Recurrent("gru-bi-frozen-weights", new(gru, Bidirectional: true), 3, CeMean),
                "recurrent.weight_ih_l0", "recurrent.weight_hh_l0", "recurrent.weight_ih_l0_reverse",
                "recurrent.weight_hh_l0_reverse"),
            // Weights trained, biases frozen: no bias gradient may be formed for the sink.
            WithFrozen(Recurrent("lstm-frozen-biases", new(lstm), 3, CeSum), "recurrent.bias_ih_l0",
                "recurrent.bias_hh_l0"),
            // Fine-tuning the upper layer of a stack: the lower layer has no per-sample term at all.
            WithFrozen(Recurrent("lstm-l2-top-trained", new(lstm, Layers: 2), 3, CeSum), "recurrent.weight_ih_l0",
                "recurrent.weight_hh_l0", "recurrent.bias_ih_l0", "recurrent.bias_hh_l0"),
            // Two steps (the shortest sequence with a state before a step that is not h0), one sample.
            Recurrent("lstm-two-steps", new(lstm), 1, CeMean, length: 2),
            Recurrent("rnn-tanh-l2-final", new(tanh, Layers: 2, ReadFinalState: true), 3, CeMean),
            Recurrent("rnn-relu-bi-batchfirst-h0", new(relu, Bidirectional: true, BatchFirst: true,
                InitialState: true), 3, CeMean),
            Recurrent("rnn-relu-nobias", new(relu, Bias: false), 3, CeSum),
            Recurrent("lstmcell-h0-final", new(lstm, Cell: true, InitialState: true, ReadFinalState: true), 3,
                CeMean),
            Recurrent("lstmcell-nobias", new(lstm, Cell: true, Bias: false), 3, CeSum),
            Recurrent("grucell", new(gru, Cell: true), 3, CeMean),
            Recurrent("grucell-h0-nobias", new(gru, Cell: true, InitialState: true, Bias: false), 3, CeMean),
            Recurrent("rnncell-tanh-h0", new(tanh, Cell: true, InitialState: true), 3, CeMean),
            Recurrent("rnncell-relu", new(relu, Cell: true), 3, CeSum),
        ];
    }

    // EmbeddingBag (modes, 2-d ids, 1-d ids with offsets, per-sample weights, padding), MultiheadAttention (heads,
    // bias, key padding and causal masks, attention weights used, cross attention) and the Transformer layers.
    private static IEnumerable<GradientCase> SequenceCases()
    {
        GradientCase Bag(string name, EmbeddingBagMode mode, BagInput input, bool weighted, long n,
            LossFunction loss, long padding = -1, long width = 4) =>
            Case(name, [width], loss, n, () => Seeded.Build(11, () => (Module<Tensor, Tensor>)new BagClassifier(12, 5,
                mode, input, weighted, 3, padding)), vocabulary: 12);
        // Attention and the Transformer layers start with zero projection biases and unit LayerNorm weights: moved
        // away from them, so a rule that misuses their values cannot pass.
        GradientCase Attention(AttentionOptions options, long n, LossFunction loss) =>
            Case($"attention-{options}", [5], loss, n, () => Perturbed(Seeded.Build(11, () =>
                (Module<Tensor, Tensor>)new AttentionClassifier(10, 8, 5, options, 3))), vocabulary: 10);
        GradientCase Transformer(string name, bool decoder, Activations activation, long n, LossFunction loss,
            bool masked = false, bool everyMask = false) =>
            Case(name, [5], loss, n, () => Perturbed(Seeded.Build(11, () => (Module<Tensor, Tensor>)
                new TransformerClassifier(10, 8, 2, 12, decoder, activation, 3, masked, everyMask: everyMask))),
                vocabulary: 10);
        return
        [
            Bag("bag-sum-rows", EmbeddingBagMode.Sum, BagInput.Rows, false, 4, CeMean),
            Bag("bag-mean-rows", EmbeddingBagMode.Mean, BagInput.Rows, false, 3, CeSum),
            Bag("bag-sum-offsets", EmbeddingBagMode.Sum, BagInput.FlatWithOffsets, false, 4, CeSum),
            Bag("bag-mean-offsets", EmbeddingBagMode.Mean, BagInput.FlatWithOffsets, false, 4, CeMean),
            Bag("bag-mean-offsets", EmbeddingBagMode.Mean, BagInput.FlatWithOffsets, false, 1, CeMean),
            Bag("bag-mean-lastoffset", EmbeddingBagMode.Mean, BagInput.FlatWithLastOffset, false, 3, CeMean),
            // Bags of one id: the mean divides by 1.
            Bag("bag-mean-offsets-one-id", EmbeddingBagMode.Mean, BagInput.FlatWithOffsets, false, 3, CeMean,
                width: 1),
            Bag("bag-sum-weighted-rows", EmbeddingBagMode.Sum, BagInput.Rows, true, 3, CeMean),
            Bag("bag-sum-weighted-offsets", EmbeddingBagMode.Sum, BagInput.FlatWithOffsets, true, 4, CeMean),
            Bag("bag-mean-pad0-rows", EmbeddingBagMode.Mean, BagInput.Rows, false, 4, CeMean, padding: 0),
            Attention(new AttentionOptions(), 4, CeMean),
            Attention(new AttentionOptions(Heads: 1, Bias: false), 3, CeSum),
            Attention(new AttentionOptions(KeyPadding: true, Causal: true), 4, CeMean),
            Attention(new AttentionOptions(Heads: 4, UseWeights: true), 3, CeMean),
            Attention(new AttentionOptions(CrossKeyValue: true, KeyPadding: true), 1, CeSum),
            Attention(new AttentionOptions(BiasKeyValue: true), 3, CeMean),
            Attention(new AttentionOptions(ZeroAttention: true, KeyPadding: true, Causal: true), 3, CeSum),
            // bias_k/bias_v append a key column that the attention mask must cover too.
            Attention(new AttentionOptions(BiasKeyValue: true, Causal: true), 3, CeSum),
            Attention(new AttentionOptions(BiasKeyValue: true, ZeroAttention: true, KeyPadding: true, UseWeights: true),
                2, CeMean),
            Attention(new AttentionOptions(CrossKeyValue: true, KeyValueWidth: 6), 3, CeMean),
            Attention(new AttentionOptions(CrossKeyValue: true, DistinctValues: true), 3, CeSum),
            // The weights alone reach the loss (attention as an alignment or pointer score): the value and output
            // projections (and bias_v) get no gradient, and their per-sample gradients are zeros.
            Attention(new AttentionOptions(UseWeights: true, WeightsOnly: true), 3, CeMean),
            Attention(new AttentionOptions(UseWeights: true, BiasKeyValue: true, WeightsOnly: true), 2, CeSum),
            Attention(new AttentionOptions(KeyPadding: true, UseWeights: true, CrossKeyValue: true,
                DistinctValues: true, WeightsOnly: true), 2, CeSum),
            Transformer("transformer-encoder-relu", false, Activations.ReLU, 3, CeMean),
            Transformer("transformer-encoder-gelu", false, Activations.GELU, 2, CeSum),
            Transformer("transformer-decoder-relu", true, Activations.ReLU, 3, CeMean),
            Transformer("transformer-decoder-gelu-masked", true, Activations.GELU, 4, CeSum, masked: true),
            Transformer("transformer-decoder-gelu-masked", true, Activations.GELU, 1, CeMean, masked: true),
            Transformer("transformer-decoder-relu-every-mask", true, Activations.ReLU, 3, CeMean, everyMask: true),
        ];
    }

    // The case with its model in training mode (layers whose training mode is allowed; the rest stay refused).
    private static GradientCase Trained(GradientCase gradientCase) => gradientCase with
    {
        Build = () =>
        {
            var model = gradientCase.Build();
            model.train();
            return model;
        },
    };

    // The case with the parameters named frozen.
    private static GradientCase WithFrozen(GradientCase gradientCase, params string[] names) => gradientCase with
    {
        Build = () => Frozen(gradientCase.Build(), names),
    };

    // The case with InstanceNorm running statistics away from 0 and 1, so that a rule ignoring them in eval mode fails.
    private static GradientCase WithRunningStatistics(GradientCase gradientCase) => gradientCase with
    {
        Build = () =>
        {
            var model = gradientCase.Build();
            using var _ = no_grad();
            foreach (var module in model.modules())
                if (module is TorchSharp.Modules.InstanceNorm { running_mean: { } mean, running_var: { } variance })
                {
                    using var generator = Seeded.Generator(17);
                    mean.copy_(0.3 * randn(mean.shape, generator: generator));
                    variance.copy_(0.5 + rand(variance.shape, generator: generator));
                }
            return model;
        },
    };

    // Every parameter plus seeded noise (standard deviation 0.2).
    private static Module<Tensor, Tensor> Perturbed(Module<Tensor, Tensor> model)
    {
        using var generator = Seeded.Generator(19);
        using (no_grad())
            foreach (var p in model.parameters())
                p.add_(randn(p.shape, generator: generator).to(p.dtype, p.device).mul(0.2));
        return model;
    }

    private static Module<Tensor, Tensor> Frozen(Module<Tensor, Tensor> model, params string[] names)
    {
        var frozen = names.ToHashSet();
        foreach (var (name, p) in model.named_parameters())
            if (frozen.Contains(name)) p.requires_grad_(false);
        return model;
    }
}
