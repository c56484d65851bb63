using PerSampleGrads.Maths;
using TorchSharp.Modules;
using static TorchSharp.torch.nn;

namespace PerSampleGrads.Tests;

/// <summary>
/// What <see cref="ConvolutionGeometry.Of"/> refuses: the engines call it only with Conv1d and Conv2d (the other
/// convolutions have rules of their own), so only a direct call reaches its guard.
/// </summary>
[Trait("Category", "Equivalence")]
public sealed class ConvolutionGeometryTests
{
    public ConvolutionGeometryTests() => TestSettings.RequireTorch();

    public static TheoryData<string> OtherConvolutions => ["conv3d", "convtranspose1d", "convtranspose2d"];

    [Theory]
    [MemberData(nameof(OtherConvolutions))]
    public void Convolutions_other_than_conv1d_and_conv2d_are_refused(string kind)
    {
        using Convolution conv = kind switch
        {
            "conv3d" => Conv3d(2, 3, 3),
            "convtranspose1d" => ConvTranspose1d(2, 3, 3),
            _ => ConvTranspose2d(2, 3, 3),
        };
        var error = Assert.Throws<NotSupportedException>(() => ConvolutionGeometry.Of(conv));
        Assert.Contains(conv.GetType().Name, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Conv1d_and_conv2d_are_read_per_axis()
    {
        using var conv1d = Conv1d(2, 3, 3, stride: 2, padding: 1, dilation: 2);
        var oneD = ConvolutionGeometry.Of(conv1d);
        Assert.Equal(((1L, 3L), (1L, 2L), (1L, 2L), 1L, 1L, 1), (oneD.Kernel, oneD.Stride, oneD.Dilation, oneD.PadLeft,
            oneD.PadRight, oneD.SpatialDims));
        using var conv2d = Conv2d(2, 4, (3, 2), stride: (2, 1), padding: (1, 0), dilation: (1, 2), groups: 2);
        var twoD = ConvolutionGeometry.Of(conv2d);
        Assert.Equal(((3L, 2L), (2L, 1L), (1L, 2L), 1L, 1L, 0L, 0L, 2L, 2), (twoD.Kernel, twoD.Stride, twoD.Dilation,
            twoD.PadTop, twoD.PadBottom, twoD.PadLeft, twoD.PadRight, twoD.Groups, twoD.SpatialDims));
    }
}
