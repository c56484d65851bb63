using TorchSharp;
using PerSampleGrads;
using PerSampleGrads.Oracle;
using PerSampleGrads.Engines.Hooks;
using PerSampleGrads.Engines.Functional;
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
    using var oracle64 = new PerSampleGradientOracle(new OracleOptions { ComputeDType = ScalarType.Float64, ModelFactory = () => zoo.Build(1) }).Compute(model, x, y, loss);
    foreach (var strat in new[]{ConvolutionStrategy.GroupedConvolution, ConvolutionStrategy.UnfoldMatmul}) {
    var sw = Stopwatch.StartNew();
    using var f = new FunctionalEngine(new FunctionalEngineOptions{ Convolution = strat }).Compute(model, x, y, loss);
    var t2 = sw.ElapsedMilliseconds;
    var cmp = GradientComparison.Compare(f, oracle64, TolerancePolicy.ToleranceFor(ScalarType.Float32));
    Console.WriteLine($"{zoo.Name} {strat}: functional vs oracle64 max rel {cmp.MaxRelativeError:e2} worst {cmp.Worst?.Name} passed={cmp.Passed} {t2} ms");
    var model64 = zoo.Build(1); model64.to(ScalarType.Float64);
    var x64 = x.dtype == ScalarType.Float32 ? x.to(ScalarType.Float64) : x;
    using var f64 = new FunctionalEngine(new FunctionalEngineOptions{ Convolution = strat, ChunkSize = 2 }).Compute(model64, x64, y, loss);
    var cmp64 = GradientComparison.Compare(f64, oracle64, TolerancePolicy.ToleranceFor(ScalarType.Float64));
    Console.WriteLine($"   float64 chunk2: max rel {cmp64.MaxRelativeError:e2} passed={cmp64.Passed}");
    if (!cmp64.Passed) Console.WriteLine(cmp64.Describe());
    }
}
