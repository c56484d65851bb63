using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PerSampleGrads;

/// <summary>A module of a model with its path (<c>""</c> for the root, else PyTorch's dotted name).</summary>
public readonly record struct NamedModule(string Path, nn.Module Module)
{
    /// <summary>The qualified name of one of this module's own parameters.</summary>
    public string Qualify(string local) => Path.Length == 0 ? local : $"{Path}.{local}";

    /// <summary>Path for messages: the root is shown as <c>(root)</c>.</summary>
    public string Display => Path.Length == 0 ? "(root)" : Path;
}

/// <summary>Walks a model: modules (root included), trainable parameters, and the modules that own them.</summary>
public static class ModelInspection
{
    /// <summary>Every module, the root first with path <c>""</c> (TorchSharp's <c>named_modules()</c> omits it).</summary>
    public static IEnumerable<NamedModule> AllModules(nn.Module model)
    {
        yield return new NamedModule("", model);
        foreach (var (name, module) in model.named_modules())
            yield return new NamedModule(name, module);
    }

    /// <summary>Parameters with <c>requires_grad</c>, qualified names in <c>named_parameters()</c> order.</summary>
    public static List<(string Name, Parameter Parameter)> TrainableParameters(nn.Module model) =>
        model.named_parameters().Where(p => p.parameter.requires_grad).Select(p => (p.name, p.parameter)).ToList();

    /// <summary>Modules that directly own at least one trainable parameter, with those parameters' local names.</summary>
    public static List<(NamedModule Module, List<string> TrainableLocalNames)> ModulesOwningTrainableParameters(nn.Module model)
    {
        var result = new List<(NamedModule, List<string>)>();
        foreach (var named in AllModules(model))
        {
            var own = named.Module.named_parameters(recurse: false)
                .Where(p => p.parameter.requires_grad).Select(p => p.name).ToList();
            if (own.Count > 0) result.Add((named, own));
        }
        return result;
    }

    /// <summary>Zeros shaped as <paramref name="batchSize"/> per-sample gradients of <paramref name="parameter"/>, on its device and in its dtype.</summary>
    public static Tensor PerSampleZeros(Tensor parameter, long batchSize) =>
        zeros([batchSize, .. parameter.shape], dtype: parameter.dtype, device: parameter.device);

    /// <summary>The element type of the model's floating parameters (Float32 if it has none).</summary>
    public static ScalarType ParameterDType(nn.Module model) =>
        model.parameters().Select(p => p.dtype).Where(t => is_floating_point(t)).DefaultIfEmpty(ScalarType.Float32).First();

    /// <summary>The device of the model's parameters (CPU if it has none).</summary>
    public static Device ParameterDevice(nn.Module model) =>
        model.parameters().Select(p => p.device).DefaultIfEmpty(CPU).First();

    internal static bool IsBatchNorm(nn.Module m) => m is BatchNorm1d or BatchNorm2d or BatchNorm3d;

    internal static bool IsRandomInTraining(nn.Module m) => m switch
    {
        Dropout d => d.training && d.p > 0,
        Dropout1d d => d.training && d.p > 0,
        Dropout2d d => d.training && d.p > 0,
        Dropout3d d => d.training && d.p > 0,
        AlphaDropout d => d.training && d.p > 0,
        FeatureAlphaDropout d => d.training && d.p > 0,
        RReLU r => r.training,
        _ => false,
    };
}
