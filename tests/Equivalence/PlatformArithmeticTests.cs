using TorchSharp;
using PerSampleGrads.Testing.Checks;
using PerSampleGrads.Zoo;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace PerSampleGrads.Tests;

/// <summary>
/// The platform check that lets a float32 comparison be skipped: silent on a model of linear layers, and it names a
/// model whose float32 arithmetic is wrong (a stand-in for a defective kernel: a layer that scales its float32
/// output by 1.01).
/// </summary>
[Trait("Category", "Checker")]
public sealed class PlatformArithmeticTests
{
    public PlatformArithmeticTests() => TestSettings.RequireTorch();

    [Fact]
    public void A_model_this_machine_computes_right_in_float32_is_not_named()
    {
        var plain = new GradientCase("plain", "plain", () => Seeded.Build(3, () => Sequential(Linear(4, 3), Tanh(),
            Linear(3, 3))), [4], LossFunction.CrossEntropy(LossReduction.Sum), 3);
        Assert.Null(PlatformArithmetic.Float32Defect(plain));
    }

    [Fact]
    public void A_model_whose_float32_arithmetic_is_off_by_one_percent_is_named()
    {
        var skewed = new GradientCase("skewed", "skewed", () => Seeded.Build(3, () => Sequential(Linear(4, 3),
            new Float32Skew())), [4], LossFunction.CrossEntropy(LossReduction.Sum), 3);
        var defect = PlatformArithmetic.Float32Defect(skewed);
        Assert.NotNull(defect);
        Assert.Contains("skewed's plain float32 batch gradient wrong", defect, StringComparison.Ordinal);
        Assert.Null(PlatformArithmetic.ExcuseForFailure(skewed, ScalarType.Float64));
    }

    [Fact]
    public void A_defect_that_shows_in_one_run_of_several_is_found_after_a_failure()
    {
        // Off by 1% on every third float32 forward, like a kernel that reads uninitialised memory now and then.
        var calls = 0;
        var flaky = new GradientCase("flaky", "flaky", () => Seeded.Build(3, () => Sequential(Linear(4, 3),
            new Float32Skew(() => ++calls % 3 == 0))), [4], LossFunction.CrossEntropy(LossReduction.Sum), 3);
        Assert.Null(PlatformArithmetic.Float32Defect(flaky));
        calls = 0;
        var excuse = PlatformArithmetic.ExcuseForFailure(flaky, ScalarType.Float32);
        Assert.NotNull(excuse);
        Assert.Contains($"of {PlatformArithmetic.Repeats}", excuse, StringComparison.Ordinal);
    }

    private sealed class Float32Skew(Func<bool>? now = null) : Module<Tensor, Tensor>(nameof(Float32Skew))
    {
        public override Tensor forward(Tensor input) =>
            input.dtype == ScalarType.Float32 && (now?.Invoke() ?? true) ? input * 1.01 : input.alias();
    }
}
