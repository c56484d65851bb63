using TorchSharp;
using PerSampleGrads;
using PerSampleGrads.Oracle;
using PerSampleGrads.Engines.Hooks;
using PerSampleGrads.Verification;
using PerSampleGrads.Zoo;
using System.Diagnostics;
using static TorchSharp.torch;

foreach (var zoo in ModelZoo.All)
{
    var model = zoo.Build(1);
    long n = zoo.Name == "resnet18-gn" ? 3 : 5;
    var (x, y) = zoo.MakeBatch(n, 2);
    var loss = LossFunction.CrossEntropy(LossReduction.Mean);
    var sw = Stopwatch.StartNew();
    using var oracle64 = new PerSampleGradientOracle(new OracleOptions { ComputeDType = ScalarType.Float64, ModelFactory = () => zoo.Build(1) }).Compute(model, x, y, loss);
    var t1 = sw.ElapsedMilliseconds; sw.Restart();
    using var hooks = new HookEngine().Compute(model, x, y, loss);
    var t2 = sw.ElapsedMilliseconds;
    var cmp = GradientComparison.Compare(hooks, oracle64, TolerancePolicy.ToleranceFor(ScalarType.Float32));
    Console.WriteLine($"{zoo.Name}: hooks vs oracle64 max rel {cmp.MaxRelativeError:e2} worst {cmp.Worst?.Name} passed={cmp.Passed} oracle {t1} ms hooks {t2} ms");
    var model64 = zoo.Build(1); model64.to(ScalarType.Float64);
    var x64 = x.dtype == ScalarType.Float32 ? x.to(ScalarType.Float64) : x;
    using var hooks64 = new HookEngine().Compute(model64, x64, y, loss);
    var cmp64 = GradientComparison.Compare(hooks64, oracle64, TolerancePolicy.ToleranceFor(ScalarType.Float64));
    Console.WriteLine($"   float64: max rel {cmp64.MaxRelativeError:e2} passed={cmp64.Passed}");
    if (!cmp64.Passed) Console.WriteLine(cmp64.Describe());
}
