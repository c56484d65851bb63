using System.Collections;
using System.Reflection;
using TorchSharp;
using TorchSharp.Modules;
using PerSampleGrads.Maths;
using static TorchSharp.torch;

namespace PerSampleGrads.Engines.Functional.Layers;

/// <summary>
/// The functional engine's fallback for a module without a batched forward
/// (<see cref="UnsupportedLayerPolicy.PerSampleRerun"/>): the module runs once per sample, on that sample alone, with
/// every trainable parameter of its subtree temporarily replaced by the sample's own copy (slice n of the engine's
/// <c>[k, ...]</c> leaf), and the rows are concatenated. Autograd then does every reduction, as for the other layers;
/// nothing is shared with the hook engine's fallback but the check of <see cref="PerSampleRerun.CheckOneSample"/>.
/// Cost: k forwards of the module on one sample, plus one on the chunk for the check.
/// </summary>
/// <remarks>
/// TorchSharp modules read their parameters from fields (or lists, as ParameterList keeps them), so the copies are put
/// into those fields and the originals put back in a <c>finally</c>; a parameter no field holds is refused.
/// </remarks>
public static class PerSampleRerunForward
{
    /// <summary>The batched forward.</summary>
    public static Tensor Forward(FunctionalCall call)
    {
        if (call.Layer is not nn.Module<Tensor, Tensor> module || call.Arguments.Count != 1
            || call.ArgumentAxes[0] is not { IsShared: false, Dimension: 0 })
            throw new PerSampleGradientsException(Problem.UnsupportedLayers,
                $"Module '{call.Path}' ({call.Layer.GetType().Name}) has no batched forward, and the functional " +
                "engine's fallback re-runs only modules that map one tensor with the samples in dimension 0 to one " +
                "tensor. Use the hook engine (its fallback re-runs any module in ModuleSignatures), add a batched " +
                "forward, or freeze its parameters.");
        var input = call.Input;
        using (no_grad())
        {
            var batch = module.forward(input);
            PerSampleRerun.CheckOneSample(module, call.Path, input, batch.shape, batch);
        }
        var trainable = module.named_parameters()
            .Where(p => call.Parameters[p.name] is { requires_grad: true })
            .ToList();
        var slots = trainable.Select(p => Slots(module, p.parameter, call.Path, p.name)).ToList();
        var rows = new List<Tensor>();
        for (long n = 0; n < input.shape[0]; n++)
        {
            var copies = trainable.Select(p => new Parameter(call.Parameters[p.name]!.select(0, n))).ToList();
            try
            {
                for (int j = 0; j < slots.Count; j++)
                    foreach (var slot in slots[j]) slot.Write(copies[j]);
                rows.Add(module.forward(input.narrow(0, n, 1)));
            }
            finally
            {
                for (int j = 0; j < slots.Count; j++)
                    foreach (var slot in slots[j]) slot.Write(trainable[j].parameter);
            }
        }
        return cat(rows, 0);
    }

    // A place that holds a parameter: a field of a module, or an element of a list field.
    private sealed record Slot(Action<Parameter> Write);

    private static List<Slot> Slots(nn.Module root, Parameter parameter, string path, string name)
    {
        var slots = new List<Slot>();
        foreach (var module in new[] { root }.Concat(root.modules()))
        {
            for (var type = module.GetType(); type is not null && type != typeof(object); type = type.BaseType)
            {
                const BindingFlags flags = BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic |
                    BindingFlags.DeclaredOnly;
                foreach (var field in type.GetFields(flags))
                {
                    var value = field.GetValue(module);
                    if (ReferenceEquals(value, parameter) && field.FieldType.IsAssignableFrom(typeof(Parameter)))
                        slots.Add(new Slot(p => field.SetValue(module, p)));
                    else if (value is IList list && value is not Array)
                        for (int i = 0; i < list.Count; i++)
                            if (ReferenceEquals(list[i], parameter))
                            {
                                int index = i;
                                slots.Add(new Slot(p => list[index] = p));
                            }
                }
            }
        }
        if (slots.Count == 0)
            throw new PerSampleGradientsException(Problem.UnsupportedLayers,
                $"Module '{path}' ({root.GetType().Name}) has no batched forward, and the functional engine's " +
                    $"fallback cannot give its parameter '{name}' per-sample copies: no field holds it. Add a " +
                    $"batched forward to the engine's table, freeze the parameter, or use the hook engine.");
        return slots;
    }
}
