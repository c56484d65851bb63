using PerSampleGrads.Engines;

namespace PerSampleGrads.Benchmarking;

/// <summary>What a bench contender runs.</summary>
public enum BenchMethodKind
{
    /// <summary>One batched forward and backward of the summed loss: the floor every ratio divides by.</summary>
    PlainBackward,
    /// <summary>Plain backward plus writing N x P numbers into touched memory
    /// (<see cref="BenchWorkload.WriteFloor"/>).</summary>
    WriteFloor,
    /// <summary>The oracle's per-sample loop.</summary>
    OracleLoop,
    /// <summary>A method of <see cref="EngineId"/>, called as <see cref="BenchMethod.Variant"/> says.</summary>
    Engine,
}

/// <summary>How an engine contender calls its engine.</summary>
public enum EngineCall
{
    /// <summary>A fresh result per call.</summary>
    Fresh,
    /// <summary>Writing into its previous result (<c>+reuse</c>).</summary>
    Reuse,
    /// <summary>Auditing one sample per call (<c>+audit</c>).</summary>
    Audit,
    /// <summary>With the sample-separation probe on every call instead of once per model and shape
    /// (<c>+probe</c>).</summary>
    Probe,
}

/// <summary>
/// One bench contender as a type: what it runs and, for an engine, which engine and how it is called. The command
/// line's names (<c>plain</c>, <c>hooks+reuse</c>, ...) are parsed once, at the boundary (<see cref="Parse"/>).
/// </summary>
/// <param name="Kind">What runs.</param>
/// <param name="Engine">The engine, for <see cref="BenchMethodKind.Engine"/>.</param>
/// <param name="Variant">How the engine is called.</param>
public sealed record BenchMethod(BenchMethodKind Kind, EngineId? Engine = null, EngineCall Variant = EngineCall.Fresh)
{
    /// <summary>Plain batch backward.</summary>
    public static BenchMethod Plain { get; } = new(BenchMethodKind.PlainBackward);

    /// <summary>The write floor.</summary>
    public static BenchMethod Floor { get; } = new(BenchMethodKind.WriteFloor);

    /// <summary>The oracle loop.</summary>
    public static BenchMethod Oracle { get; } = new(BenchMethodKind.OracleLoop);

    /// <summary>An engine called plainly.</summary>
    public static BenchMethod Of(EngineId engine, EngineCall variant = EngineCall.Fresh) =>
        new(BenchMethodKind.Engine, engine, variant);

    /// <summary>Every contender the bench knows, in the command line's order.</summary>
    public static IReadOnlyList<BenchMethod> All { get; } =
    [
        Plain, Floor, .. EngineId.PerSampleEngines.Select(e => Of(e)),
        .. EngineId.PerSampleEngines.Select(e => Of(e, EngineCall.Reuse)), Of(EngineId.Clipping), Oracle,
        .. EngineId.PerSampleEngines.Select(e => Of(e, EngineCall.Audit)),
        .. EngineId.PerSampleEngines.Select(e => Of(e, EngineCall.Probe)),
    ];

    /// <summary>The command line's name: <c>plain</c>, <c>floor</c>, <c>oracle</c>, <c>hooks</c>,
    /// <c>hooks+reuse</c>, ...</summary>
    public string Name => Kind switch
    {
        BenchMethodKind.PlainBackward => "plain",
        BenchMethodKind.WriteFloor => "floor",
        BenchMethodKind.OracleLoop => "oracle",
        _ => Engine!.Name + Variant switch
        {
            EngineCall.Reuse => "+reuse",
            EngineCall.Audit => "+audit",
            EngineCall.Probe => "+probe",
            _ => "",
        },
    };

    /// <summary>The contender named <paramref name="name"/>; the error lists the names.</summary>
    public static BenchMethod Parse(string name) =>
        All.FirstOrDefault(m => string.Equals(m.Name, name, StringComparison.Ordinal))
        ?? throw new ArgumentException($"Unknown bench method '{name}'. Known: " +
            $"{string.Join(", ", All.Select(m => m.Name))}.", nameof(name));

    /// <inheritdoc/>
    public override string ToString() => Name;
}
