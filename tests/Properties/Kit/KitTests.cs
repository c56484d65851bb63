using FsCheck.Fluent;
using PerSampleGrads.Cases;
using PerSampleGrads.Engines.Hooks;
using PerSampleGrads.Testing.Catalogue;
using PerSampleGrads.Testing.SelfCheck;
using TorchSharp.Modules;

namespace PerSampleGrads.Tests.Kit;

/// <summary>The test kit run as a user runs it: the hook engine through the kit's base class, with narrow
/// claims.</summary>
[Trait("Category", "Properties")]
public sealed class HookEngineThroughTheKit : PerSampleGradientMethodTests
{
    protected override IPerSampleGradientMethod CreateMethod() => new HookEngine();

    protected override KitOptions Options { get; } = new()
    {
        Claims = MethodClaims.Only(typeof(Linear), typeof(Conv2d), typeof(GroupNorm), typeof(LayerNorm)),
        PropertyRuns = 10,
        IncludeZooModels = false,
    };
}

/// <summary>What the claims let the kit ask, and the kit's own self-check.</summary>
[Trait("Category", "Properties")]
public sealed class KitClaimsTests
{
    public KitClaimsTests() => TestSettings.RequireTorch();

    [Fact]
    public void Generated_models_hold_only_claimed_layers_and_patterns()
    {
        var claims = MethodClaims.Only(typeof(Linear), typeof(Conv1d)) with { Patterns = ModelPatterns.None };
        var cases = Gen.Sample(CaseGenerators.For(claims).CaseGenerator, 200);
        var unclaimed = new List<string>();
        foreach (var spec in cases)
        {
            var use = ModelUse.Of(spec.ToGradientCase());
            if (use.Unclaimed(claims) is { } reason) unclaimed.Add($"{spec}: {reason}");
        }
        Assert.True(unclaimed.Count == 0, string.Join("\n", unclaimed));
        Assert.Contains(cases, c => c.Architecture.Exercises().Contains("conv1d"));
    }

    [Fact]
    public void The_catalogue_asks_only_claimed_cases_and_says_why_it_skips_the_others()
    {
        var options = new KitOptions { Claims = MethodClaims.Only(typeof(Linear)) with { Patterns = ModelPatterns.None }
            };
        Assert.Null(CatalogueChecks.Excluded(CaseCatalogue.Get("linear-2d-B5-ce-mean"), options));
        Assert.Contains("Conv2d", CatalogueChecks.Excluded(CaseCatalogue.Get("conv2d-k3-p1-B1-ce-sum"), options));
        Assert.Contains("WeightSharing",
            CatalogueChecks.Excluded(CaseCatalogue.Get("shared-linear-twice-B4-ce-mean"), options));
        var refusing = new KitOptions { Claims = MethodClaims.Everything with { RefusesCustomModules = true } };
        Assert.Contains("GainShiftTanh",
            CatalogueChecks.Excluded(CaseCatalogue.Get("custom-gainshift-fallback-B4-ce-mean"), refusing));
        Assert.Null(CatalogueChecks.Excluded(CaseCatalogue.Get("custom-gainshift-fallback-B4-ce-mean"),
            KitOptions.Default));
    }

    [Fact]
    public void Generated_models_need_a_claimed_linear_head()
    {
        var error = Assert.Throws<ArgumentException>(() => CaseGenerators.For(MethodClaims.Only(typeof(Conv2d))));
        Assert.Contains("Linear head", error.Message, StringComparison.Ordinal);
    }
}

/// <summary>The kit's self-check: a correct loop method passes, every planted bug is caught.</summary>
[Trait("Category", "Mutation")]
public sealed class KitSelfCheckTests(ITestOutputHelper output)
{
    [Fact]
    public void The_kit_passes_a_correct_loop_method_and_catches_every_planted_bug_with_every_claim()
    {
        TestSettings.RequireTorch();
        var report = KitSelfCheck.Run(KitOptions.Default);
        output.WriteLine(report.Describe());
        Assert.True(report.Passed, report.Describe());
    }

    [Fact]
    public void The_kit_catches_every_planted_bug_with_linear_only_claims_in_float64()
    {
        TestSettings.RequireTorch();
        var options = new KitOptions
        {
            Claims = MethodClaims.Only(typeof(Linear)) with { Patterns = ModelPatterns.None },
            DType = TorchSharp.torch.ScalarType.Float64,
        };
        var report = KitSelfCheck.Run(options);
        output.WriteLine(report.Describe());
        Assert.True(report.Passed, report.Describe());
    }
}
