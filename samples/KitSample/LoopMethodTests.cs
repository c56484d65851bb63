using KitSample;
using PerSampleGrads;
using PerSampleGrads.Testing;

namespace KitSample.Tests;

/// <summary>The whole kit against the loop method: catalogue, properties, precision diagnosis, self-check.</summary>
public sealed class LoopMethodTests : PerSampleGradientMethodTests
{
    protected override IPerSampleGradientMethod CreateMethod() => new LoopMethod();

    // A loop handles every layer and pattern; the zoo (ResNet-18 among them) and 50 cases a property are left to a
    // nightly run.
    protected override KitOptions Options { get; } = new() { PropertyRuns = 10, IncludeZooModels = false };
}
