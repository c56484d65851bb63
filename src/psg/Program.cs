using TorchSharp;
using PerSampleGrads;
using PerSampleGrads.Cases;
using PerSampleGrads.Oracle;
using PerSampleGrads.Engines.Hooks;
using PerSampleGrads.Engines.Functional;
using PerSampleGrads.Verification;
using static TorchSharp.torch;

foreach (var c in CaseCatalogue.All.Where(c => c.Id.Contains("running")))
{
  foreach (var dtype in new[]{ScalarType.Float64, ScalarType.Float32}) {
    try {
    using var p = c.Create(dtype);
    using var oracle = new PerSampleGradientOracle(new OracleOptions { ComputeDType = ScalarType.Float64, ModelFactory = p.Factory }).Compute(p.Model, p.Inputs, p.Targets, p.Loss);
    var line = $"{c.Id,-45} {dtype,-8}";
    foreach (IPerSampleGradientMethod m in new IPerSampleGradientMethod[]{ new HookEngine(), new FunctionalEngine(), new FunctionalEngine(new(){Convolution=ConvolutionStrategy.GroupedConvolution, ChunkSize=2}) }) {
      using var r = p.Run(m);
      var cmp = GradientComparison.Compare(r, oracle, TolerancePolicy.ToleranceFor(dtype));
      line += $" {m.Name}:{cmp.MaxRelativeError:e1}{(cmp.Passed ? "" : "!!")}";
      if (!cmp.Passed) Console.WriteLine(cmp.Describe());
    }
    Console.WriteLine(line);
    } catch (Exception e) { Console.WriteLine($"{c.Id} {dtype}: {e}"); }
  }
}
