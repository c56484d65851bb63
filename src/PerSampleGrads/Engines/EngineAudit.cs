using TorchSharp;
using PerSampleGrads.Oracle;
using PerSampleGrads.Checking;
using static TorchSharp.torch;

namespace PerSampleGrads.Engines;

/// <summary>
/// The audit an engine runs on its own result when asked (<see cref="EngineOptions.AuditSamples"/>): k samples,
/// chosen by the seed, recomputed by the audit's reference (the single-sample oracle in the model's dtype unless
/// <see cref="EngineOptions.AuditReference"/> names another method), and compared with the engine's rows under the
/// tolerance policy.
/// </summary>
internal static class EngineAudit
{
    /// <summary>The result with its audit attached; disposed when the audit fails or cannot run, unless it is the
    /// caller's reused result (<paramref name="disposeOnFailure"/> false).</summary>
    public static PerSampleGradients Attached(PerSampleGradients result, nn.Module<Tensor, Tensor> model, Tensor x,
        Tensor y, LossFunction loss, EngineOptions options, bool disposeOnFailure)
    {
        try
        {
            Attach(result, model, x, y, loss, options);
            return result;
        }
        catch
        {
            if (disposeOnFailure) result.Dispose();
            throw;
        }
    }

    private static void Attach(PerSampleGradients result, nn.Module<Tensor, Tensor> model, Tensor x, Tensor y,
        LossFunction loss, EngineOptions options)
    {
        if (options.AuditSamples == 0) return;
        long n = x.shape[0];
        int k = (int)Math.Min(options.AuditSamples, n);
        var order = Enumerable.Range(0, (int)n).Select(i => (long)i).ToArray();
        new Random(options.AuditSeed).Shuffle(order);
        var chosen = order.Take(k).Order().ToList();
        var tolerance = TolerancePolicy.ToleranceFor(ModelInspection.ParameterDType(model));
        using var scope = NewDisposeScope();
        var rows = tensor(chosen.ToArray(), device: x.device);
        var (auditedInputs, auditedTargets) = (x.index_select(0, rows), y.index_select(0, rows));
        // The engine still holds the model, validated, with its state guarded: the oracle's loop alone is the audit.
        // Another reference takes the model as any caller would (the model's lock is re-entrant).
        using var truth = options.AuditReference is { } reference
            ? reference.Compute(model, auditedInputs, auditedTargets, loss)
            : PerSampleGradientOracle.OnValidatedBatch(model, auditedInputs, auditedTargets, loss);
        using var mine = new PerSampleGradients(result.Method, k,
            result.Entries.Select(e => (e.Name, e.Gradient.index_select(0, rows))));
        var comparison = GradientComparison.Compare(mine, truth, tolerance);
        var samples = string.Join(", ", chosen);
        var referenceName = options.AuditReference is { } named ? $"the {named.Name} method"
            : "the single-sample oracle";
        result.Audit = new AuditReport(chosen, comparison.MaxRelativeError, comparison.Worst?.Name,
            tolerance.Relative, comparison.Passed,
            comparison.Passed
                ? string.Create(System.Globalization.CultureInfo.InvariantCulture,
                    $"samples {samples} recomputed by {referenceName}: max relative error " +
                    $"{comparison.MaxRelativeError:0.##e+0} within {tolerance.Relative:0.##e+0}")
                : $"samples {samples} recomputed by {referenceName} disagree: {comparison.Describe()}");
        if (comparison.Passed) return;
        throw new PerSampleGradientsException(Problem.AuditFailed,
            $"The {result.Method} engine's audit failed: {result.Audit.Description}. The engine's result is wrong " +
            "for this model; use the oracle (PerSampleGradientOracle) and report the model to the engine's authors.");
    }
}
