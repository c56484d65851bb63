using TorchSharp.Modules;

namespace PerSampleGrads.Testing;

/// <summary>How a model uses its layers, beyond which layers it has.</summary>
[Flags]
public enum ModelPatterns
{
    /// <summary>None of the patterns.</summary>
    None = 0,
    /// <summary>One module called twice in a forward, or registered under two parents.</summary>
    WeightSharing = 1,
    /// <summary>One parameter tensor held by two modules (an output layer reusing an embedding's table).</summary>
    TiedParameters = 2,
    /// <summary>A position-wise layer called on <c>[T, N, D]</c>: the samples in dimension 1.</summary>
    SequenceFirst = 4,
    /// <summary>A trainable layer called on a tensor shared by every sample (position ids <c>[T]</c>).</summary>
    SharedInputs = 8,
    /// <summary>Every pattern.</summary>
    All = WeightSharing | TiedParameters | SequenceFirst | SharedInputs,
}

/// <summary>
/// What a per-sample gradient method claims to support: the kit's catalogue and generators produce only models made
/// of these layers and patterns. Everything else is the method's business to refuse (and the kit does not ask).
/// </summary>
public sealed record MethodClaims
{
    /// <summary>Every layer and pattern; custom modules (raw parameters, no built-in layer) included.</summary>
    public static MethodClaims Everything { get; } = new();

    /// <summary>
    /// Module types that own trainable parameters which the method supports (TorchSharp's <c>Linear</c>,
    /// <c>Conv2d</c>, ..., or a type of your own); null means every type.
    /// </summary>
    public IReadOnlySet<Type>? Layers { get; init; }

    /// <summary>The usage patterns the method supports.</summary>
    public ModelPatterns Patterns { get; init; } = ModelPatterns.All;

    /// <summary>
    /// Whether the method refuses a custom module (a module of a type outside TorchSharp with raw parameters) with
    /// <see cref="Problem.UnsupportedLayers"/>: then the kit checks that refusal, and no catalogue case with such a
    /// module is asked of it.
    /// </summary>
    public bool RefusesCustomModules { get; init; }

    /// <summary>The claims of a method that supports exactly these layer types, with every pattern.</summary>
    public static MethodClaims Only(params Type[] layers) => new() { Layers = layers.ToHashSet() };

    /// <summary>Whether a module of type <paramref name="layer"/> owning trainable parameters is claimed.</summary>
    public bool Claims(Type layer)
    {
        bool builtIn = layer.Namespace == typeof(Linear).Namespace;
        if (!builtIn && RefusesCustomModules) return false;
        return Layers is null || Layers.Contains(layer);
    }

    /// <summary>Whether every pattern in <paramref name="patterns"/> is claimed.</summary>
    public bool Claims(ModelPatterns patterns) => (Patterns & patterns) == patterns;

    /// <inheritdoc/>
    public override string ToString()
    {
        var layers = Layers is null ? "every layer" : string.Join(", ", Layers.Select(t => t.Name).Order());
        return $"{layers}; patterns: {Patterns}{(RefusesCustomModules ? "; refuses custom modules" : "")}";
    }
}
