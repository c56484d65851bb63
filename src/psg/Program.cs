using PerSampleGrads;
using PerSampleGrads.Oracle;
using PerSampleGrads.Zoo;
using static TorchSharp.torch;

if (TorchRuntime.Problem is { } problem)
{
    Console.Error.WriteLine(problem);
    return 2;
}
var zoo = ModelZoo.SmallCnn;
using var model = zoo.Build(1);
var (x, y) = zoo.MakeBatch(8, 2);
using var result = new PerSampleGradientOracle().Compute(model, x, y, LossFunction.CrossEntropy());
foreach (var (name, g) in result.Entries)
    Console.WriteLine($"{name,-24} [{string.Join(", ", g.shape)}] mean per-sample norm {g.reshape(g.shape[0], -1).norm(1).mean().item<float>():0.0000}");
return 0;
