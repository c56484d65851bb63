using TorchSharp;
using static TorchSharp.torch;

namespace PerSampleGrads.Oracle;

/// <summary>Options of the oracle.</summary>
public sealed record OracleOptions
{
    /// <summary>Element type to compute in; null computes in the model's own dtype. Float64 is the ground
    /// truth.</summary>
    public ScalarType? ComputeDType { get; init; }

    /// <summary>Device to compute on; null computes where the model is.</summary>
    public Device? Device { get; init; }

    /// <summary>
    /// Builds a fresh instance of the model's architecture. Needed only when <see cref="ComputeDType"/> or
    /// <see cref="Device"/> differ from the model's: the oracle then works on a copy (see <see cref="ModelCopy"/>).
    /// </summary>
    public Func<nn.Module<Tensor, Tensor>>? ModelFactory { get; init; }

    /// <summary>Called after each sample with (samples done, N), e.g. for a progress bar.</summary>
    public Action<long, long>? Progress { get; init; }

    /// <summary>TF32 handling during the computation (matters on CUDA only).</summary>
    public Tf32Mode Tf32 { get; init; } = Tf32Mode.KeepCallerSetting;
}

/// <summary>
/// The ground truth. Sample i's gradient is the gradient of the loss evaluated on the batch of one
/// <c>(x_i, y_i)</c> with the declared reduction, with respect to every trainable parameter. Deliberately naive:
/// one forward and one backward per sample, nothing shared between samples, so that it can be trusted by reading it.
/// </summary>
/// <remarks>
/// The caller's <c>.grad</c> tensors are set aside during the loop and restored. A parameter that does not affect a
/// sample's loss gets zeros. Inputs of floating type (and floating targets) are converted to the compute dtype;
/// integer inputs (token ids) and class targets stay as they are.
/// </remarks>
public sealed class PerSampleGradientOracle(OracleOptions? options = null) : IPerSampleGradientMethod
{
    private readonly OracleOptions _options = options ?? new OracleOptions();

    /// <inheritdoc/>
    public string Name => _options.ComputeDType is { } d ? $"oracle-{ElementTypes.Name(d)}" : "oracle";

    /// <inheritdoc/>
    public PerSampleGradients Compute(nn.Module<Tensor, Tensor> model, Tensor inputs, Tensor targets, LossFunction loss)
    {
        BatchValidator.RequireArguments(model, inputs, targets, loss);
        TorchRuntime.EnsureLoaded();
        using var access = ModelAccess.Enter(model, Name);
        BatchValidator.CheckModel(model);
        var modelDType = ModelInspection.ParameterDType(model);
        var modelDevice = ModelInspection.ParameterDevice(model);
        var dtype = _options.ComputeDType ?? modelDType;
        var device = _options.Device ?? modelDevice;
        BatchValidator.RequireAvailable(device);
        bool copy = dtype != modelDType || !BatchValidator.SameDevice(device, modelDevice);

        using var scope = NewDisposeScope();
        var work = copy ? ModelCopy.Create(model, _options.ModelFactory, dtype, device) : model;
        try
        {
            using var copyAccess = copy ? ModelAccess.Enter(work, Name) : null;
            var x = access.Admit(Convert(inputs, dtype, device));
            var y = access.Admit(loss.Targets == TargetKind.Values ? Convert(targets, dtype, device)
                : targets.to(device));
            BatchValidator.Validate(work, x, y, loss);
            using var guard = ModelStateGuard.Capture(work);
            using var tf32 = new Tf32Scope(_options.Tf32);
            var perGroup = ModelAccess.Guard(Name, () => PerSample(work, x, y, loss));
            return new PerSampleGradients(Name, x.shape[0], ByName(model, work, perGroup));
        }
        finally
        {
            if (copy) work.Dispose();
        }
    }

    // One gradient per distinct parameter of the model computed on, reported under every name the caller's model
    // lists. A copy may untie what the caller's model ties (TorchSharp's to() replaces parameters one module at a
    // time): the gradient of a tied tensor is the sum over its uses, so the copy's tensors of one caller group add up.
    private static IEnumerable<(string, Tensor)> ByName(nn.Module model, nn.Module work,
        List<(ParameterGroup Group, Tensor Gradient)> perGroup)
    {
        var byName = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int g = 0; g < perGroup.Count; g++)
            foreach (var name in perGroup[g].Group.Names) byName[name] = g;
        foreach (var group in ModelInspection.TrainableParameterGroups(model))
        {
            var sources = group.Names.Select(n => byName[n]).Distinct().ToList();
            var total = perGroup[sources[0]].Gradient;
            foreach (var other in sources.Skip(1)) total = total + perGroup[other].Gradient;
            yield return (group.Names[0], total);
            foreach (var alias in group.Names.Skip(1)) yield return (alias, total.alias());
        }
    }

    /// <summary>
    /// The definition on a batch already validated, in the model's own dtype and place, by a caller that already holds
    /// the model (an engine's audit): the per-sample loop alone, without the checks and the guard of
    /// <see cref="Compute"/>.
    /// </summary>
    internal static PerSampleGradients OnValidatedBatch(nn.Module<Tensor, Tensor> model, Tensor x, Tensor y,
        LossFunction loss)
    {
        var oracle = new PerSampleGradientOracle();
        var perGroup = ModelAccess.Guard(oracle.Name, () => oracle.PerSample(model, x, y, loss));
        return new PerSampleGradients(oracle.Name, x.shape[0], ByName(model, model, perGroup));
    }

    private List<(ParameterGroup, Tensor)> PerSample(nn.Module<Tensor, Tensor> model, Tensor x, Tensor y,
        LossFunction loss)
    {
        long n = x.shape[0];
        var groups = ModelInspection.TrainableParameterGroups(model);
        var results = groups
            .Select(g => (g, ModelInspection.PerSampleZeros(g.Parameter, n)))
            .ToList();
        var parameters = groups.Select(g => (Tensor)g.Parameter).ToArray();

        // backward() accumulates into .grad: the caller's .grad tensors are set aside for the loop.
        using var setAside = new SetAsideGradients(parameters);
        for (long i = 0; i < n; i++)
        {
            using (var step = NewDisposeScope())
            {
                var output = model.call(x.narrow(0, i, 1));
                var target = y.narrow(0, i, 1);
                if (i == 0) loss.ValidateTargets(output, y);
                var sampleLoss = loss.BatchLoss(output, target);
                // A loss that depends on no parameter has no graph: its gradient is the zeros already in place.
                if (sampleLoss.requires_grad)
                {
                    autograd.backward([sampleLoss], inputs: parameters);
                    using (no_grad())
                    {
                        for (int j = 0; j < parameters.Length; j++)
                        {
                            using var g = parameters[j].grad;
                            if (g is null) continue;
                            results[j].Item2.select(0, i).copy_(g);
                            parameters[j].grad = null;
                        }
                    }
                }
            }
            _options.Progress?.Invoke(i + 1, n);
        }
        return results;
    }

    private static Tensor Convert(Tensor t, ScalarType dtype, Device device) =>
        is_floating_point(t.dtype) ? t.to(dtype, device) : t.to(device);
}
