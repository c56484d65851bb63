using TorchSharp;
using static TorchSharp.torch;

namespace PerSampleGrads.Zoo;

/// <summary>
/// A named workload: a model factory, the shape of one sample's input, a loss, a batch size and a seed. Data, not
/// code: the oracle, every engine, the snapshots and the PyTorch cross-check all consume the same cases (the zoo's,
/// <see cref="ZooModel.Case"/>, and those of the test catalogue, an assembly of its own).
/// </summary>
/// <param name="Id">Readable id, also the test id: <c>conv2d-k3-s2-d2-g2-B5-ce-mean</c>.</param>
/// <param name="Architecture">The model's name without batch and loss (<c>conv2d-k3-s2-d2-g2</c>, <c>resnet18-gn</c>):
/// the name the PyTorch reference builds the same model by (<c>tools/pytorch_reference/models.py</c>).</param>
/// <param name="Build">Builds the model deterministically (float32, CPU, its final train/eval mode).</param>
/// <param name="InputShape">One sample's input shape.</param>
/// <param name="Loss">The loss and its reduction.</param>
/// <param name="BatchSize">N.</param>
/// <param name="Vocabulary">When positive, inputs are Int64 token ids in [0, Vocabulary) (0 is padding).</param>
/// <param name="Seed">Seed of the batch.</param>
public sealed record GradientCase(string Id, string Architecture, Func<nn.Module<Tensor, Tensor>> Build,
    long[] InputShape, LossFunction Loss, long BatchSize, long Vocabulary = 0, long Seed = 7)
{
    /// <summary>Builds the model and a batch in <paramref name="dtype"/> on <paramref name="device"/>.</summary>
    public GradientProblem Create(ScalarType dtype, Device? device = null)
    {
        device ??= CPU;
        var model = Build();
        try
        {
            if (dtype != ScalarType.Float32) model.to(dtype);
            if (device.type != DeviceType.CPU) model.to(device);
            var (inputs, targets) = MakeBatch(model, dtype, device);
            return new GradientProblem(Id, Architecture, model, inputs, targets, Loss, Build);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    private (Tensor Inputs, Tensor Targets) MakeBatch(nn.Module<Tensor, Tensor> model, ScalarType dtype, Device device)
    {
        using var generator = Seeded.Generator(Seed);
        long[] shape = [BatchSize, .. InputShape];
        var inputs = Vocabulary > 0
            ? ZooModel.TokenIds(shape, Vocabulary, generator)
            : randn(shape, generator: generator).to(dtype);
        inputs = inputs.to(device);
        // The output's shape, from a forward on one sample: targets are made to fit it.
        long[] output;
        using (no_grad())
        using (var probe = model.call(inputs.narrow(0, 0, 1))) output = probe.shape;
        Tensor targets = Loss.Targets == TargetKind.ClassIndices
            ? randint(0, output[1], [BatchSize, .. output[2..]], generator: generator)
            : randn([BatchSize, .. output[1..]], generator: generator).to(dtype);
        return (inputs, targets.to(device));
    }

    /// <summary>The id of a case: <c>conv2d-k3-s2-d2-g2-B5-ce-mean</c> for <paramref name="name"/>
    /// <c>conv2d-k3-s2-d2-g2</c>, 5 samples and cross-entropy with a mean.</summary>
    public static string IdOf(string name, long batchSize, LossFunction loss)
    {
        ArgumentNullException.ThrowIfNull(loss);
        return $"{name}-B{batchSize}-{loss.Name.ToLowerInvariant()}-" +
            $"{(loss.Reduction == LossReduction.Sum ? "sum" : "mean")}";
    }

    /// <inheritdoc/>
    public override string ToString() => Id;
}

/// <summary>
/// A case made concrete: the model, the batch, the loss, and a factory for fresh copies of the architecture (which
/// the float64 oracle needs). Disposing it disposes the model and the batch.
/// </summary>
public sealed class GradientProblem(string id, string architecture, nn.Module<Tensor, Tensor> model, Tensor inputs,
    Tensor targets, LossFunction loss, Func<nn.Module<Tensor, Tensor>> factory) : IDisposable
{
    /// <summary>The case id.</summary>
    public string Id { get; } = id;

    /// <summary>The case's <see cref="GradientCase.Architecture"/>.</summary>
    public string Architecture { get; } = architecture;

    /// <summary>The case's model, in the requested dtype and on the requested device.</summary>
    public nn.Module<Tensor, Tensor> Model { get; } = model;

    /// <summary>Inputs <c>[N, ...]</c>.</summary>
    public Tensor Inputs { get; } = inputs.DetachFromDisposeScope();

    /// <summary>Targets <c>[N, ...]</c>.</summary>
    public Tensor Targets { get; } = targets.DetachFromDisposeScope();

    /// <summary>The case's loss with its declared reduction.</summary>
    public LossFunction Loss { get; } = loss;

    /// <summary>Builds a fresh instance of the same architecture (for copies in another dtype or device).</summary>
    public Func<nn.Module<Tensor, Tensor>> Factory { get; } = factory;

    /// <summary>Runs <paramref name="method"/> on this problem.</summary>
    public PerSampleGradients Run(IPerSampleGradientMethod method) => method.Compute(Model, Inputs, Targets, Loss);

    /// <inheritdoc/>
    public void Dispose()
    {
        Model.Dispose();
        Inputs.Dispose();
        Targets.Dispose();
    }

    /// <inheritdoc/>
    public override string ToString() => Id;
}
