using System.Collections.Concurrent;
using PerSampleGrads.Cases;
using PerSampleGrads.Zoo;
using static TorchSharp.torch;

namespace PerSampleGrads.Testing.Catalogue;

/// <summary>
/// What a catalogue case's model uses: the types of the modules that own its trainable parameters, and the patterns
/// (a module called more than once, a parameter listed under several names), read from the built model and one
/// forward on one sample.
/// </summary>
/// <param name="Layers">Types of the modules owning trainable parameters.</param>
/// <param name="Patterns">Weight sharing and tied parameters, when present.</param>
public sealed record ModelUse(IReadOnlySet<Type> Layers, ModelPatterns Patterns)
{
    private static readonly ConcurrentDictionary<string, ModelUse> ByCase = new();

    /// <summary>What <paramref name="gradientCase"/>'s model uses (computed once per case id and process).</summary>
    public static ModelUse Of(GradientCase gradientCase) =>
        ByCase.GetOrAdd(gradientCase.Id, _ => Inspect(gradientCase));

    /// <summary>Why a method with <paramref name="claims"/> is not asked this case, or null when it is.</summary>
    public string? Unclaimed(MethodClaims claims)
    {
        var layers = Layers.Where(t => !claims.Claims(t)).Select(t => t.Name).Order().ToList();
        var patterns = Enum.GetValues<ModelPatterns>()
            .Where(p => p is not ModelPatterns.None and not ModelPatterns.All)
            .Where(p => Patterns.HasFlag(p) && !claims.Claims(p))
            .ToList();
        if (layers.Count == 0 && patterns.Count == 0) return null;
        var what = layers.Concat(patterns.Select(p => p.ToString()));
        return $"uses {string.Join(", ", what)}, which the method does not claim";
    }

    private static ModelUse Inspect(GradientCase gradientCase)
    {
        using var problem = gradientCase.Create(ScalarType.Float32);
        var owners = ModelInspection.ModulesOwningTrainableParameters(problem.Model);
        var patterns = ModelPatterns.None;
        if (ModelInspection.TrainableParameterGroups(problem.Model).Any(g => g.Names.Count > 1))
            patterns |= ModelPatterns.TiedParameters;
        var calls = new Dictionary<nn.Module, int>(ReferenceEqualityComparer.Instance);
        var removers = new List<Action>();
        try
        {
            foreach (var (owner, _) in owners)
                if (owner.Module is nn.Module<Tensor, Tensor> module)
                    removers.Add(module.register_forward_hook((m, _, _) =>
                    {
                        calls[m] = calls.GetValueOrDefault(m) + 1;
                        return null!;
                    }).remove);
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            problem.Model.call(problem.Inputs.narrow(0, 0, 1));
        }
        finally
        {
            foreach (var remove in removers) remove();
        }
        if (calls.Values.Any(count => count > 1)) patterns |= ModelPatterns.WeightSharing;
        return new ModelUse(owners.Select(o => o.Module.Module.GetType()).ToHashSet(), patterns);
    }
}
