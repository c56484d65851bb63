using PerSampleGrads.Cases;
using PerSampleGrads.Zoo;
using PerSampleGrads.Runs;
using PerSampleGrads.Oracle;
using PerSampleGrads.Testing.Checks;
using PerSampleGrads.Checking;
using static TorchSharp.torch;

namespace PerSampleGrads.Testing.Catalogue;

/// <summary>The named case catalogue (<see cref="CaseCatalogue"/>) as checks of any method.</summary>
public static class CatalogueChecks
{
    /// <summary>Every catalogue case id: layers first, then the zoo models.</summary>
    public static IReadOnlyList<string> CaseIds { get; } = [.. CaseCatalogue.All.Select(c => c.Id)];

    /// <summary>Why the case is not asked of a method checked with <paramref name="options"/>, or null.</summary>
    public static string? Excluded(GradientCase gradientCase, KitOptions options)
    {
        if (!options.IncludeZooModels && CaseCatalogue.Zoo.Contains(gradientCase))
            return "a zoo model, and the options leave the zoo out (IncludeZooModels = false)";
        return ModelUse.Of(gradientCase).Unclaimed(options.Claims);
    }

    /// <summary>The catalogue cases asked of a method checked with <paramref name="options"/>.</summary>
    public static IEnumerable<GradientCase> Claimed(KitOptions options) =>
        CaseCatalogue.All.Where(c => Excluded(c, options) is null);

    /// <summary>
    /// The method, computing in <see cref="KitOptions.DType"/>, agrees with the float64 oracle within the policy's
    /// tolerance. A float32 failure is diagnosed: the method is rerun in float64, and the message says whether the gap
    /// is rounding (it vanishes in float64) or logic (it stays).
    /// </summary>
    public static void AgreesWithTheOracle(Func<IPerSampleGradientMethod> method, GradientCase gradientCase,
        KitOptions options)
    {
        using var problem = gradientCase.Create(options.DType, options.Device);
        using var expected = problem.Run(GradientChecks.Float64Oracle(problem));
        using var actual = problem.Run(method());
        var comparison = GradientComparison.Compare(actual, expected, options.ToleranceFor(options.DType));
        if (comparison.Passed) return;
        var message = $"{gradientCase.Id}: {comparison.Describe()}";
        if (options.DType != ScalarType.Float64)
        {
            var diagnosis = MethodDiagnosis.Run(method, gradientCase, options);
            message += $"Diagnosis: {diagnosis.Sentence}";
        }
        Assert.Fail(message);
    }
}

/// <summary>The precision diagnosis (<see cref="PrecisionDiagnosis"/>) for any method on one case.</summary>
public static class MethodDiagnosis
{
    /// <summary>
    /// Runs the method in float32 and in float64, and the oracle in float32, against the float64 oracle, and
    /// concludes: agreement, precision (the gap vanishes in float64) or logic (it stays).
    /// </summary>
    public static PrecisionDiagnosis Run(Func<IPerSampleGradientMethod> method, GradientCase gradientCase,
        KitOptions options)
    {
        // One build, copied to float64 (see GradientChecks.Float64Oracle).
        using var single = gradientCase.Create(ScalarType.Float32, options.Device);
        using var reference = InFloat64(single);
        using var truth = reference.Run(new PerSampleGradientOracle());
        var rows = new List<DiagnosisRow>
        {
            Row("oracle", options.ArithmeticOf(ScalarType.Float32), single.Run(new PerSampleGradientOracle()), truth),
        };
        var name = method().Name;
        rows.Add(Row(name, options.ArithmeticOf(ScalarType.Float32), single.Run(method()), truth));
        rows.Add(Row(name, Arithmetic.Float64, reference.Run(method()), truth));
        return PrecisionDiagnosis.Conclude(rows, [name], options.DeviceOrCpu.type == TorchSharp.DeviceType.CUDA);
    }

    private static GradientProblem InFloat64(GradientProblem problem)
    {
        using var scope = NewDisposeScope();
        var model = ModelCopy.Create(problem.Model, problem.Factory, ScalarType.Float64, problem.Inputs.device);
        Tensor Convert(Tensor t) => is_floating_point(t) ? t.to(ScalarType.Float64) : t.clone();
        return new GradientProblem(problem.Id, problem.Architecture, model, Convert(problem.Inputs),
            Convert(problem.Targets), problem.Loss, problem.Factory);
    }

    private static DiagnosisRow Row(string method, Arithmetic arithmetic, PerSampleGradients result,
        PerSampleGradients truth)
    {
        using (result)
        {
            var tolerance = TolerancePolicy.ToleranceFor(arithmetic);
            var comparison = GradientComparison.Compare(result, truth, tolerance);
            return new DiagnosisRow(method, arithmetic, comparison.MaxRelativeError, comparison.Worst?.Name ?? "-",
                tolerance.Relative, comparison.Complete);
        }
    }
}
