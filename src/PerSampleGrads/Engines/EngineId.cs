namespace PerSampleGrads.Engines;

/// <summary>
/// One of the methods under test, as runs, reports and the command line name it: the two per-sample engines and the
/// clipping method. The ids live here; the factory that creates a method from its id lives with the runs
/// (<c>Runs/EngineCatalogue</c>), since the engines' shared parts may not depend on the engines themselves
/// (docs/architecture.md).
/// </summary>
public sealed class EngineId
{
    private EngineId(string name, bool perSample)
    {
        Name = name;
        PerSample = perSample;
    }

    /// <summary>The hook engine (<c>hooks</c>).</summary>
    public static EngineId Hooks { get; } = new("hooks", perSample: true);

    /// <summary>The functional engine (<c>functional</c>).</summary>
    public static EngineId Functional { get; } = new("functional", perSample: true);

    /// <summary>The clipping method (<c>clipping</c>): norms and clipped sums, not per-sample gradients.</summary>
    public static EngineId Clipping { get; } = new("clipping", perSample: false);

    /// <summary>Every method, the per-sample engines first.</summary>
    public static IReadOnlyList<EngineId> All { get; } = [Hooks, Functional, Clipping];

    /// <summary>The engines that return per-sample gradients.</summary>
    public static IReadOnlyList<EngineId> PerSampleEngines { get; } = [.. All.Where(e => e.PerSample)];

    /// <summary>The name runs, reports and the command line use.</summary>
    public string Name { get; }

    /// <summary>Whether the method returns per-sample gradients (an <c>IPerSampleGradientMethod</c>).</summary>
    public bool PerSample { get; }

    /// <summary>The method named <paramref name="name"/>; the error lists the names.</summary>
    public static EngineId Parse(string name) =>
        All.FirstOrDefault(e => string.Equals(e.Name, name, StringComparison.Ordinal))
        ?? throw new ArgumentException($"Unknown engine '{name}'. Known engines: " +
            $"{string.Join(", ", All.Select(e => e.Name))}.", nameof(name));

    /// <inheritdoc/>
    public override string ToString() => Name;
}
