using System.Collections;
using System.Reflection;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PerSampleGrads.Conversion;

/// <summary>One module the conversion replaced.</summary>
/// <param name="Path">The module's path in the model (PyTorch's dotted name).</param>
/// <param name="Replaced">What was there, e.g. <c>BatchNorm2d(64)</c>.</param>
/// <param name="Replacement">What is there now, e.g. <c>GroupNorm(32, 64)</c>.</param>
public sealed record ModuleChange(string Path, string Replaced, string Replacement)
{
    /// <inheritdoc/>
    public override string ToString() => $"{Path}: {Replaced} -> {Replacement}";
}

/// <summary>A model after a conversion, and every change made to it, in model order.</summary>
/// <param name="Model">The converted model (the same instance that was passed in).</param>
/// <param name="Changes">The replaced modules.</param>
public sealed record ConvertedModel<TModel>(TModel Model, IReadOnlyList<ModuleChange> Changes) where TModel : nn.Module;

/// <summary>
/// Replaces every BatchNorm1d/2d/3d of a model by a GroupNorm over the same channels, so that the model can be trained
/// with per-sample gradients (BatchNorm in training mode mixes the samples of a batch); the counterpart of Opacus's
/// <c>convert_batchnorm_modules</c> and <c>ModuleValidator.fix</c>.
/// </summary>
/// <remarks>
/// <para>TorchSharp cannot deep-copy a module, so the model is converted <b>in place</b> and returned. Each GroupNorm
/// is new (weight 1, bias 0, the BatchNorm's eps, affine when the BatchNorm was, its device, dtype and train/eval
/// mode); the BatchNorm's running statistics and affine values are not carried over (they mean something else).</para>
/// <para>TorchSharp modules reach their children through fields, not through the registration PyTorch's
/// <c>setattr</c> rewrites, so the conversion replaces the child in its parent's fields (a typed field such as
/// <c>Module&lt;Tensor, Tensor&gt; bn1</c>, or an element of a list field, as Sequential and ModuleList keep them) and
/// in the parent's registration, keeping the parameter order. Before anything changes, every BatchNorm is checked:
/// when one cannot be replaced (a field typed <c>BatchNorm2d</c>, or no field that holds it), the call throws and the
/// model is left as it was.</para>
/// <para>TorchSharp 0.107's GroupNorm refuses inputs without a length dimension, so a BatchNorm1d applied to
/// <c>[N, C]</c> features has no working GroupNorm replacement: such a model fails at its next forward.</para>
/// </remarks>
public static class BatchNormConversion
{
    /// <summary>The most groups a converted layer gets by default (Opacus's choice).</summary>
    public const long DefaultMaximumGroups = 32;

    /// <summary>
    /// Converts every BatchNorm of <paramref name="model"/> to GroupNorm. <paramref name="groups"/> gives the group
    /// count for a channel count; by default the largest divisor of the channel count that is at most 32.
    /// </summary>
    public static ConvertedModel<TModel> ToGroupNorm<TModel>(TModel model, Func<long, long>? groups = null)
        where TModel : nn.Module
    {
        ArgumentNullException.ThrowIfNull(model);
        groups ??= DefaultGroups;
        var plans = new List<(BatchNorm Norm, string Path, long Groups, List<Action<nn.Module>> Writes)>();
        var blockers = new List<string>();
        foreach (var parent in ModelInspection.AllModules(model))
        {
            foreach (var (name, child) in parent.Module.named_children())
            {
                if (child is not BatchNorm norm) continue;
                string path = parent.Path.Length == 0 ? name : $"{parent.Path}.{name}";
                long count = groups(norm.num_features);
                if (count < 1 || norm.num_features % count != 0)
                    throw new ArgumentException(
                        $"The group count {count} for '{path}' ({norm.num_features} channels) does not divide the " +
                            $"channel count: give a divisor.",
                        nameof(groups));
                var writes = Writes(parent.Module, name, child, out var blocker);
                if (blocker is not null) blockers.Add($"'{path}' ({child.GetType().Name}): {blocker}");
                else plans.Add((norm, path, count, writes));
            }
        }
        if (blockers.Count > 0)
            throw new ArgumentException(
                $"Cannot replace {blockers.Count} BatchNorm module(s): {string.Join("; ", blockers)}. The model is " +
                    $"unchanged. Declare those fields as Module<Tensor, Tensor>, or build the model with a GroupNorm " +
                    $"norm layer.",
                nameof(model));

        var changes = new List<ModuleChange>();
        foreach (var (norm, path, count, writes) in plans)
        {
            var replacement = Replacement(norm, count);
            foreach (var write in writes) write(replacement);
            changes.Add(new ModuleChange(path, $"{norm.GetType().Name}({norm.num_features})",
                $"GroupNorm({count}, {norm.num_features})"));
        }
        return new ConvertedModel<TModel>(model, changes);
    }

    /// <summary>The largest divisor of <paramref name="channels"/> that is at most <see
    /// cref="DefaultMaximumGroups"/>.</summary>
    public static long DefaultGroups(long channels)
    {
        for (long g = Math.Min(DefaultMaximumGroups, channels); g > 1; g--)
            if (channels % g == 0) return g;
        return 1;
    }

    private static GroupNorm Replacement(BatchNorm norm, long groups)
    {
        var reference = norm.running_mean ?? (Tensor?)norm.weight;
        var norm2 = nn.GroupNorm(groups, norm.num_features, norm.eps, norm.affine,
            device: reference?.device, dtype: reference?.dtype);
        if (norm.affine)
        {
            // TorchSharp 0.107's GroupNorm leaves its affine parameters uninitialised: PyTorch's 1 and 0.
            using var _ = no_grad();
            norm2.weight!.fill_(1);
            norm2.bias!.fill_(0);
        }
        norm2.train(norm.training);
        return norm2;
    }

    // Every place of `parent` that holds `child`: fields, elements of list fields, and the registration under `name`.
    private static List<Action<nn.Module>> Writes(nn.Module parent, string name, nn.Module child, out string? blocker)
    {
        blocker = null;
        var writes = new List<Action<nn.Module>>();
        foreach (var field in InstanceFields(parent.GetType()))
        {
            var value = field.GetValue(parent);
            if (ReferenceEquals(value, child))
            {
                if (!field.FieldType.IsAssignableFrom(typeof(GroupNorm)))
                {
                    blocker = $"field '{field.Name}' of {parent.GetType().Name} is typed {field.FieldType.Name}";
                    return writes;
                }
                writes.Add(replacement => field.SetValue(parent, replacement));
            }
            else if (value is IList list && value is not Array && !IsRegistration(field))
            {
                for (int i = 0; i < list.Count; i++)
                {
                    if (!ReferenceEquals(list[i], child)) continue;
                    var element = value.GetType().IsGenericType ? value.GetType().GetGenericArguments()[0]
                        : typeof(object);
                    if (!element.IsAssignableFrom(typeof(GroupNorm)))
                    {
                        blocker = $"list field '{field.Name}' of {parent.GetType().Name} holds {element.Name}";
                        return writes;
                    }
                    int index = i;
                    writes.Add(replacement => list[index] = replacement);
                }
            }
        }
        if (writes.Count == 0)
        {
            blocker = $"no field of {parent.GetType().Name} holds it, so its forward could not be redirected";
            return writes;
        }
        if (RegistrationField.GetValue(parent) is TorchSharp.Utils.OrderedDict<string, nn.Module> registered
            && registered.ContainsKey(name))
            writes.Add(replacement => registered[name] = replacement);
        return writes;
    }

    // Module's own table of registered children (protected in TorchSharp 0.107): updated by key, order kept.
    private static readonly FieldInfo RegistrationField = typeof(nn.Module).GetField("_internal_submodules",
        BindingFlags.Instance | BindingFlags.NonPublic)
        ?? throw new InvalidOperationException("This TorchSharp version has no Module._internal_submodules field.");

    private static bool IsRegistration(FieldInfo field) => field == RegistrationField;

    private static IEnumerable<FieldInfo> InstanceFields(Type? type)
    {
        const BindingFlags flags = BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic |
            BindingFlags.DeclaredOnly;
        for (; type is not null && type != typeof(object); type = type.BaseType)
            foreach (var field in type.GetFields(flags))
                yield return field;
    }
}
