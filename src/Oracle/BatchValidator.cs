using TorchSharp;
using static TorchSharp.torch;

namespace PerSampleGrads;

/// <summary>
/// The one validator: checks a model and a batch before any method computes anything, and throws
/// <see cref="PerSampleGradientsException"/> with a message that names the problem and the fix.
/// </summary>
public static class BatchValidator
{
    /// <summary>
    /// Checks the batch (N &gt; 0, inputs and targets agree on N, finite values, dtypes and devices that fit the model)
    /// and the model (trainable parameters exist, no BatchNorm in training mode or without running statistics, no
    /// dropout or other randomness in training mode).
    /// </summary>
    public static void Validate(nn.Module<Tensor, Tensor> model, Tensor inputs, Tensor targets, LossFunction loss)
    {
        RequireArguments(model, inputs, targets, loss);

        if (inputs.dim() == 0 || inputs.shape[0] == 0)
            throw new PerSampleGradientsException(Problem.EmptyBatch,
                $"The batch is empty (inputs of shape [{Shape(inputs)}]): per-sample gradients need at least one " +
                    $"sample in dimension 0.");
        if (targets.dim() == 0 || targets.shape[0] != inputs.shape[0])
            throw new PerSampleGradientsException(Problem.BatchSizeMismatch,
                $"Inputs hold {inputs.shape[0]} samples (shape [{Shape(inputs)}]) but targets hold " +
                    $"{(targets.dim() == 0 ? "a scalar" : targets.shape[0].ToString())} (shape [{Shape(targets)}]): " +
                    $"give one target per sample, batch in dimension 0.");

        CheckFinite(inputs, "inputs");
        CheckFinite(targets, "targets");
        if (loss.Targets == TargetKind.Values && !loss.IsCustom && !is_floating_point(targets.dtype))
            throw new PerSampleGradientsException(Problem.InvalidTargets,
                $"{loss.Name} regresses on values and needs floating-point targets, got {targets.dtype}: convert "
                    + $"them with targets.to(dtype), the model's element type.");
        CheckModel(model);

        var trainable = ModelInspection.TrainableParameters(model);
        if (trainable.Count == 0)
            throw new PerSampleGradientsException(Problem.NoTrainableParameters,
                "The model has no parameter with requires_grad = true: there is nothing to differentiate. Unfreeze " +
                    "at least one parameter.");

        var dtype = trainable[0].Parameter.dtype;
        var device = trainable[0].Parameter.device;
        foreach (var (name, p) in trainable)
        {
            if (p.dtype != dtype)
                throw new PerSampleGradientsException(Problem.DTypeMismatch,
                    $"Trainable parameters mix element types: '{trainable[0].Name}' is {dtype}, '{name}' is " +
                        $"{p.dtype}. Convert the model with model.to(dtype).");
            if (!SameDevice(p.device, device))
                throw new PerSampleGradientsException(Problem.DeviceMismatch,
                    $"Trainable parameters live on several devices: '{trainable[0].Name}' on {device}, '{name}' on " +
                        $"{p.device}. Move the model with model.to(device).");
        }
        if (is_floating_point(inputs.dtype) && inputs.dtype != dtype)
            throw new PerSampleGradientsException(Problem.DTypeMismatch,
                $"Inputs are {inputs.dtype} but the model's parameters are {dtype}: convert the inputs with " +
                    $"inputs.to({dtype}) (or the model).");
        if (loss.Targets == TargetKind.Values && is_floating_point(targets.dtype) && targets.dtype != dtype)
            throw new PerSampleGradientsException(Problem.DTypeMismatch,
                $"Targets are {targets.dtype} but the model's parameters are {dtype}: convert the targets with " +
                    $"targets.to({dtype}).");
        if (!SameDevice(inputs.device, device) || !SameDevice(targets.device, device))
            throw new PerSampleGradientsException(Problem.DeviceMismatch,
                $"The model is on {device} but inputs are on {inputs.device} and targets on {targets.device}: move " +
                    $"them with .to({device}).");
    }

    /// <summary>Throws <see cref="ArgumentNullException"/> naming the first missing argument.</summary>
    public static void RequireArguments(nn.Module? model, Tensor? inputs, Tensor? targets, LossFunction? loss)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentNullException.ThrowIfNull(targets);
        ArgumentNullException.ThrowIfNull(loss);
    }

    /// <summary>Model-only checks: BatchNorm that uses batch statistics, randomness in training mode.</summary>
    public static void CheckModel(nn.Module model)
    {
        foreach (var named in ModelInspection.AllModules(model))
        {
            if (ModelInspection.IsBatchNorm(named.Module) && named.Module.training)
                throw new PerSampleGradientsException(Problem.BatchNormInTraining,
                    $"Module '{named.Display}' ({named.Module.GetType().Name}) is BatchNorm in training mode: it " +
                        $"normalises with statistics of the whole batch, so each sample's output depends on the " +
                        $"others and a per-sample gradient is not defined. {BatchNormFix}");
            if (ModelInspection.IsBatchNorm(named.Module) && ((TorchSharp.Modules.BatchNorm)named.Module).running_mean
                is null)
                throw new PerSampleGradientsException(Problem.BatchNormInTraining,
                    $"Module '{named.Display}' ({named.Module.GetType().Name}) is BatchNorm without running " +
                        $"statistics (track_running_stats: false): it normalises with statistics of the whole batch " +
                        $"even in eval mode, so a per-sample gradient is not defined. Convert it with " +
                        $"BatchNormConversion.ToGroupNorm(model), or use GroupNorm or LayerNorm.");
            if (ModelInspection.IsRandomInTraining(named.Module))
                throw new PerSampleGradientsException(Problem.RandomnessInTraining,
                    $"Module '{named.Display}' ({named.Module.GetType().Name}) draws random numbers in training " +
                        $"mode: per-sample results would not be reproducible and no two methods could be compared. " +
                        $"Call model.eval() or remove the module.");
        }
    }

    // The fix for BatchNorm in training mode: both ways out.
    private const string BatchNormFix = "Either put the model in eval mode (model.eval()): BatchNorm with running " +
        "statistics is then a fixed per-channel affine map that both engines support; or, to train with per-sample " +
        "gradients, convert it with BatchNormConversion.ToGroupNorm(model) (GroupNorm, as Opacus's " +
        "ModuleValidator.fix) or use LayerNorm.";

    /// <summary>Fails with a clear message when <paramref name="device"/> is CUDA and CUDA is absent.</summary>
    public static void RequireAvailable(Device device)
    {
        if (device.type == DeviceType.CUDA && !cuda.is_available())
            throw new PerSampleGradientsException(Problem.CudaUnavailable,
                "CUDA was requested but is not available to TorchSharp here (no GPU, or a CPU-only libtorch). On a " +
                    "CUDA machine put your PyTorch's torch/lib on LD_LIBRARY_PATH (README, 'On a CUDA machine'), or " +
                    "ask for the CPU.");
    }

    internal static bool SameDevice(Device a, Device b) =>
        a.type == b.type && (a.type != DeviceType.CUDA || Math.Max(a.index, 0) == Math.Max(b.index, 0));

    private static void CheckFinite(Tensor t, string what)
    {
        if (!is_floating_point(t.dtype)) return;
        using var scope = NewDisposeScope();
        var bad = t.isfinite().logical_not();
        long count = bad.sum().item<long>();
        if (count == 0) return;
        long sample = bad.reshape(t.shape[0], -1).any(1).nonzero()[0, 0].item<long>();
        throw new PerSampleGradientsException(Problem.NonFiniteInput,
            $"The {what} hold {count} NaN or infinite value(s), the first in sample {sample}: per-sample gradients " +
                $"of such a batch are meaningless. Clean or drop those samples.");
    }

    private static string Shape(Tensor t) => string.Join(", ", t.shape);
}
