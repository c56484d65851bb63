using PerSampleGrads.Runs;
using TorchSharp;
using static TorchSharp.torch;

namespace PerSampleGrads.Cli.Runtime;

/// <summary>
/// A lower bound of the memory a run needs at once, from N and the model's parameter count P: per-sample results are
/// N x P elements each, so a batch size that cannot fit is refused before anything is computed. The bound counts only
/// the results and the batch, so a run that passes may still run out (then the failure names the fix, too).
/// </summary>
internal static class ResultMemory
{
    private const string Fix = "Use a smaller --batch-size.";

    /// <summary>
    /// <c>compare</c> keeps the float64 oracle's result and every engine's result for the comparison (and, with the
    /// PyTorch cross-check, PyTorch's float64 loop and its two methods' results).
    /// </summary>
    public static void RequireForCompare(CompareSettings settings, bool withPyTorch)
    {
        if (settings.Device.type != DeviceType.CPU) return;
        var (parameters, inputElements) = Sizes(settings);
        double element = ElementSize(settings.DType);
        double resultsPerSample = parameters * (sizeof(double) + settings.Engines.Count * element
            + (withPyTorch ? sizeof(double) + 2 * element : 0));
        double bytes = settings.BatchSize * (resultsPerSample + inputElements * (element + sizeof(double)));
        Preflight.RequireMemory(bytes,
            $"The per-sample gradients of {settings.Model.Name} at N = {settings.BatchSize} (P = {parameters:N0} "
                + $"parameters; the float64 oracle's and {settings.Engines.Count} engine result(s), kept together)",
            Fix);
    }

    /// <summary><c>bench</c> keeps one contender's result at a time, at the largest N.</summary>
    public static void RequireForBench(CompareSettings settings, long largestBatch)
    {
        if (settings.Device.type != DeviceType.CPU) return;
        var (parameters, inputElements) = Sizes(settings);
        double element = ElementSize(settings.DType);
        double bytes = largestBatch * (parameters + inputElements) * element;
        Preflight.RequireMemory(bytes,
            $"The per-sample gradients of {settings.Model.Name} at N = {largestBatch} (P = {parameters:N0} "
                + $"parameters, one result at a time)",
            "Use a smaller --batch-sizes, or --chunk-size to bound the functional engine's working memory.");
    }

    private static (long Parameters, long InputElements) Sizes(CompareSettings settings)
    {
        using var model = settings.Model.Build(settings.Seed);
        long parameters = model.parameters().Where(p => p.requires_grad).Sum(p => p.numel());
        long inputElements = settings.Model.InputShape.Aggregate(1L, (a, b) => a * b);
        return (parameters, inputElements);
    }

    private static double ElementSize(ScalarType dtype) => dtype == ScalarType.Float64 ? 8 : 4;
}
