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
        var plain = new GradientCase("plain", () => Seeded.Build(3, () => Sequential(Linear(4, 3), Tanh(),
            Linear(3, 3))), [4], LossFunction.CrossEntropy(LossReduction.Sum), 3);
        Assert.Null(PlatformArithmetic.Float32Defect(plain));
    }

    [Fact]
    public void A_model_whose_float32_arithmetic_is_off_by_one_percent_is_named()
    {
        var skewed = new GradientCase("skewed", () => Seeded.Build(3, () => Sequential(Linear(4, 3),
            new Float32Skew())), [4], LossFunction.CrossEntropy(LossReduction.Sum), 3);
        var defect = PlatformArithmetic.Float32Defect(skewed);
        Assert.NotNull(defect);
        Assert.Contains("skewed's plain float32 batch gradient wrong", defect, StringComparison.Ordinal);
    }

    private sealed class Float32Skew() : Module<Tensor, Tensor>(nameof(Float32Skew))
    {
        public override Tensor forward(Tensor input) =>
            input.dtype == ScalarType.Float32 ? input * 1.01 : input.alias();
    }
}
