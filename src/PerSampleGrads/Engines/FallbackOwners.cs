using static TorchSharp.torch;

namespace PerSampleGrads.Engines;

/// <summary>
/// Which modules the per-sample rerun fallback takes: every module that owns trainable parameters, has no entry in
/// the engine's table and has a signature the engines can hook (<see cref="ModuleSignatures"/>), or, for a parameter
/// container without a forward of its own (a <c>ParameterList</c>), the nearest module above it that has one: a
/// fallback root. A
/// root is re-run with its whole subtree, so the root's entry lists every trainable parameter below it (names
/// relative to the root) and the modules below it get no entry of their own (their rules would otherwise count
/// their gradients twice).
/// </summary>
internal static class FallbackOwners
{
    /// <summary>The owners list with fallback roots widened to their subtrees and their descendants dropped.</summary>
    public static List<(NamedModule Module, List<string> Trainable)> Apply(nn.Module model,
        List<(NamedModule Module, List<string> Trainable)> owners, IReadOnlyCollection<Type> supported)
    {
        var modules = ModelInspection.AllModules(model).ToList();
        // A parameter container without a forward of its own (a ParameterList) is re-run with the nearest module above
        // it that has one (not the model itself: that would swallow every layer with a rule).
        NamedModule? Runner(NamedModule owner) => ModuleSignatures.Find(owner.Module) is not null ? owner
            : modules.Where(m => m.Path.Length > 0 && IsBelow(owner.Path, m.Path)
                    && !supported.Contains(m.Module.GetType()) && ModuleSignatures.Find(m.Module) is not null)
                .Select(m => (NamedModule?)m).MaxBy(m => m!.Value.Path.Length);
        var roots = owners
            .Where(o => !supported.Contains(o.Module.Module.GetType()))
            .Select(o => Runner(o.Module))
            .OfType<NamedModule>()
            .DistinctBy(r => r.Path)
            .ToList();
        // Outermost roots only: a root inside another root is part of that one's subtree.
        roots = roots.Where(r => !roots.Any(other => other.Path != r.Path && IsBelow(r.Path, other.Path))).ToList();
        if (roots.Count == 0) return owners;
        var result = new List<(NamedModule, List<string>)>();
        foreach (var owner in owners)
            if (!roots.Any(r => r.Path == owner.Module.Path || IsBelow(owner.Module.Path, r.Path)))
                result.Add(owner);
        foreach (var root in roots)
            result.Add((root, root.Module.named_parameters().Where(p => p.parameter.requires_grad)
                .Select(p => p.name).ToList()));
        return result;
    }

    /// <summary>Whether the module at <paramref name="path"/> is strictly below the one at <paramref
    /// name="ancestor"/>.</summary>
    public static bool IsBelow(string path, string ancestor) =>
        ancestor.Length == 0 ? path.Length > 0 : path.StartsWith(ancestor + ".", StringComparison.Ordinal);
}
