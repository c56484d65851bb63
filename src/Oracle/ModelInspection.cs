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
    /// <summary>
    /// Every distinct module, the root first with path <c>""</c> (TorchSharp's <c>named_modules()</c> omits it). A
    /// module instance registered under several parents is listed once, under its first path.
    /// </summary>
    public static IEnumerable<NamedModule> AllModules(nn.Module model)
    {
        var seen = new HashSet<nn.Module>(ReferenceEqualityComparer.Instance) { model };
        yield return new NamedModule("", model);
        foreach (var (name, module) in model.named_modules())
            if (seen.Add(module)) yield return new NamedModule(name, module);
    }

    /// <summary>
    /// The trainable parameters as distinct tensors, in order of first appearance in <c>named_parameters()</c>, each
    /// with every qualified name under which it is listed (a tied weight, e.g. an output layer reusing an embedding's
    /// table, has several). A method computes one per-sample gradient per group, the sum over every use of the
    /// parameter, and reports it under each of its names.
    /// </summary>
    public static List<ParameterGroup> TrainableParameterGroups(nn.Module model)
    {
        var groups = new List<ParameterGroup>();
        var byIdentity = new Dictionary<ParameterIdentity, ParameterGroup>();
        foreach (var (name, parameter) in TrainableParameters(model))
        {
            var identity = ParameterIdentity.Of(parameter);
            if (byIdentity.TryGetValue(identity, out var group)) group.AddName(name);
            else
            {
                group = new ParameterGroup(parameter, name);
                byIdentity.Add(identity, group);
                groups.Add(group);
            }
        }
        return groups;
    }

    /// <summary>Parameters with <c>requires_grad</c>, qualified names in <c>named_parameters()</c> order.</summary>
    public static List<(string Name, Parameter Parameter)> TrainableParameters(nn.Module model) =>
        model.named_parameters().Where(p => p.parameter.requires_grad).Select(p => (p.name, p.parameter)).ToList();

    /// <summary>Modules that directly own at least one trainable parameter, with those parameters' local
    /// names.</summary>
    public static List<(NamedModule Module, List<string> TrainableLocalNames)> ModulesOwningTrainableParameters(
        nn.Module model)
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

    /// <summary>Zeros shaped as <paramref name="batchSize"/> per-sample gradients of <paramref name="parameter"/>, on
    /// its device and in its dtype.</summary>
    public static Tensor PerSampleZeros(Tensor parameter, long batchSize) =>
        zeros([batchSize, .. parameter.shape], dtype: parameter.dtype, device: parameter.device);

    /// <summary>The element type of the model's floating parameters (Float32 if it has none).</summary>
    public static ScalarType ParameterDType(nn.Module model) =>
        model.parameters().Select(p => p.dtype).Where(t =>
            is_floating_point(t)).DefaultIfEmpty(ScalarType.Float32).First();

    /// <summary>The device of the model's parameters (CPU if it has none).</summary>
    public static Device ParameterDevice(nn.Module model) =>
        model.parameters().Select(p => p.device).DefaultIfEmpty(CPU).First();

    /// <summary>Numbers of forward pre-hooks and forward hooks registered on <paramref name="module"/> (0 for modules
    /// that cannot carry hooks). TorchSharp keeps them private: read by reflection.</summary>
    internal static (int Pre, int Post) ForwardHookCounts(nn.Module module)
    {
        var fields = HookFields.GetOrAdd(module.GetType(), FindHookFields);
        return (Count(fields.Pre, module), Count(fields.Post, module));
    }

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<Type,
        (System.Reflection.FieldInfo? Pre, System.Reflection.FieldInfo? Post)> HookFields = new();

    private static (System.Reflection.FieldInfo?, System.Reflection.FieldInfo?) FindHookFields(Type type)
    {
        const System.Reflection.BindingFlags flags = System.Reflection.BindingFlags.NonPublic
            | System.Reflection.BindingFlags.Instance;
        return (type.GetField("pre_hooks", flags), type.GetField("post_hooks", flags));
    }

    private static int Count(System.Reflection.FieldInfo? field, nn.Module module) =>
        field?.GetValue(module) is System.Collections.ICollection hooks ? hooks.Count : 0;

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

/// <summary>One trainable parameter tensor and every qualified name under which the model lists it.</summary>
public sealed class ParameterGroup
{
    private readonly List<string> _names;

    internal ParameterGroup(Parameter parameter, string name)
    {
        Parameter = parameter;
        _names = [name];
    }

    /// <summary>The parameter tensor (one of its wrappers).</summary>
    public Parameter Parameter { get; }

    /// <summary>Its qualified names in <c>named_parameters()</c> order; the first is the canonical one.</summary>
    public IReadOnlyList<string> Names => _names;

    internal void AddName(string name) => _names.Add(name);
}

/// <summary>
/// Which tensor a parameter is: TorchSharp hands out distinct wrapper objects for one tied tensor, so identity is the
/// storage address, offset, shape and strides.
/// </summary>
internal readonly record struct ParameterIdentity(IntPtr Storage, long Offset, string Layout)
{
    public static ParameterIdentity Of(Tensor parameter) => new(StorageAddress(parameter), parameter.storage_offset(),
        $"{parameter.dtype}:{string.Join(",", parameter.shape)}:{string.Join(",", parameter.stride())}");

    private static IntPtr StorageAddress(Tensor t) => t.dtype switch
    {
        ScalarType.Float32 => t.storage<float>().data_ptr(),
        ScalarType.Float64 => t.storage<double>().data_ptr(),
        ScalarType.Float16 => t.storage<Half>().data_ptr(),
        _ => t.Handle,
    };
}
