using TorchSharp;
using static TorchSharp.torch;

namespace PerSampleGrads;

/// <summary>
/// Deep copies of a model in another element type or on another device. TorchSharp has no deep clone of modules,
/// and converting the caller's model in place would replace its <c>Parameter</c> objects (an optimizer holding
/// them would silently stop training the model), so a copy is a fresh instance from a factory with the original's
/// values, modes and <c>requires_grad</c> flags loaded into it.
/// </summary>
public static class ModelCopy
{
    /// <summary>
    /// A copy of <paramref name="model"/> converted to <paramref name="dtype"/> on <paramref name="device"/>.
    /// </summary>
    /// <param name="model">The original; read, never written.</param>
    /// <param name="factory">Builds a fresh instance of the same architecture (its initial values are
    /// overwritten).</param>
    /// <param name="dtype">Element type of the copy's floating parameters and buffers.</param>
    /// <param name="device">Device of the copy.</param>
    public static nn.Module<Tensor, Tensor> Create(nn.Module<Tensor, Tensor> model,
        Func<nn.Module<Tensor, Tensor>>? factory,
        ScalarType dtype, Device device)
    {
        if (factory is null)
            throw new PerSampleGradientsException(Problem.ModelCopyUnavailable,
                $"Computing in {dtype} on {device} needs a copy of the model ({model.GetType().Name} is " +
                    $"{ModelInspection.ParameterDType(model)} on {ModelInspection.ParameterDevice(model)}), and " +
                    $"TorchSharp cannot deep-copy a module: pass a factory that builds a fresh instance of the same " +
                    $"architecture (e.g. ModelFactory = () => new MyNet()).");
        var copy = factory();
        try
        {
            // Load in the original's dtype so that nothing is rounded on the way in. (to() replaces tensors, so the
            // state dictionaries are read after it.)
            copy.to(ModelInspection.ParameterDType(model));
            var original = model.state_dict();
            var target = copy.state_dict();
            var missing = original.Keys.Except(target.Keys).Concat(target.Keys.Except(original.Keys)).ToList();
            if (missing.Count > 0)
                throw new PerSampleGradientsException(Problem.ModelCopyUnavailable,
                    $"The model factory builds a different architecture: state entries " +
                        $"{string.Join(", ", missing.Take(5))} are not in both. The factory must build the same " +
                        $"model as the one passed in.");
            using (no_grad())
            {
                foreach (var (key, value) in original)
                {
                    var destination = target[key];
                    if (!destination.shape.SequenceEqual(value.shape))
                        throw new PerSampleGradientsException(Problem.ModelCopyUnavailable,
                            $"The model factory builds '{key}' with shape [{string.Join(", ", destination.shape)}] " +
                                $"but the model has [{string.Join(", ", value.shape)}]: the factory must build the " +
                                $"same architecture.");
                }
                copy.load_state_dict(original);
            }
            copy.to(dtype).to(device);

            // Parents come before their children, so a parent's recursive train() is corrected below it.
            var modes = ModelInspection.AllModules(model).ToDictionary(m => m.Path, m => m.Module.training);
            foreach (var named in ModelInspection.AllModules(copy))
                if (modes.TryGetValue(named.Path, out var training) && named.Module.training != training)
                    named.Module.train(training);

            var flags = model.named_parameters().ToDictionary(p => p.name, p => p.parameter.requires_grad);
            foreach (var (name, p) in copy.named_parameters())
                if (flags.TryGetValue(name, out var requiresGrad) && p.requires_grad != requiresGrad)
                    p.requires_grad_(requiresGrad);
            return copy;
        }
        catch
        {
            copy.Dispose();
            throw;
        }
    }
}
