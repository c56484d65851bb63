using System.Globalization;
using PerSampleGrads.Cases;
using PerSampleGrads.Engines.Functional;
using PerSampleGrads.Engines.Hooks;
using PerSampleGrads.Interop;
using PerSampleGrads.Oracle;
using PerSampleGrads.Checking;
using static TorchSharp.torch;

namespace PerSampleGrads.Tests;

/// <summary>
/// The independent cross-check: PyTorch rebuilds each model from its own definition, loads the same weights by name,
/// and computes per-sample gradients on the same batch by its naive float64 loop, vmap(grad) and ExpandedWeights.
/// In float64 our oracle must equal PyTorch's loop and both engines PyTorch's vmap; in float32 every method, ours and
/// PyTorch's, must be within the float32 policy of PyTorch's float64 loop. Tolerances come from
/// <see cref="TolerancePolicy"/> only.
/// </summary>
[Trait("Category", "PyTorchParity")]
public sealed class PyTorchParityTests(ITestOutputHelper output)
{
    /// <summary>
    /// Every zoo model (ResNet-18 at N = 2) and the catalogue cases that exercise what a binding could get wrong:
    /// strided, dilated, grouped convolutions in 1-d and 2-d, padding modes, Linear on 3-d input, Embedding with
    /// padding_idx, weight sharing, normalisations, frozen parameters, every loss and both reductions.
    /// </summary>
    /// <remarks><c>PSG_PARITY_CASES=all</c> checks the whole catalogue instead (about 100 script runs;
    /// minutes); <c>PSG_PARITY_CASES=prelu-,lstm-</c> the cases whose ids start with any of those prefixes.</remarks>
    public static IReadOnlyList<string> CaseIds =>
        (Environment.GetEnvironmentVariable("PSG_PARITY_CASES") ?? "").Trim().ToLowerInvariant() switch
        {
            "" or "core" => CoreCaseIds,
            "all" => CaseCatalogue.All.Select(c => c.Id).ToList(),
            var prefixes => Matching(prefixes.Split(',', StringSplitOptions.TrimEntries
                | StringSplitOptions.RemoveEmptyEntries)),
        };

    private static List<string> Matching(string[] prefixes)
    {
        var ids = CaseCatalogue.All.Select(c => c.Id)
            .Where(id => prefixes.Any(p => id.StartsWith(p, StringComparison.Ordinal))).ToList();
        return ids.Count > 0 ? ids : throw new InvalidOperationException(
            $"PSG_PARITY_CASES='{string.Join(',', prefixes)}' names no catalogue case: use core (the default), all, " +
            "or comma-separated prefixes of case ids.");
    }

    private static IReadOnlyList<string> CoreCaseIds { get; } =
    [
        .. CaseCatalogue.Zoo.Select(c => c.Id),
        "conv2d-k3-s2-d2-g2-B5-ce-mean",
        "conv1d-k3-s2-d2-g3-B5-ce-sum",
        "conv2d-reflect-p1-B3-ce-mean",
        "linear-3d-B3-mse-mean",
        "embedding-pad0-B5-ce-mean",
        "shared-linear-twice-B4-ce-mean",
        "groupnorm-g3-B3-ce-sum",
        "layernorm-3d-tokens-B4-ce-sum",
        "instancenorm2d-running-stats-B3-ce-mean",
        "frozen-weight-bias-only-B3-ce-mean",
        "nll-logsoftmax-B4-nll-mean",
        "l1-multi-output-B3-l1-sum",
        "custom-softmargin-B4-softmargin-mean",
        "batchnorm2d-eval-B3-ce-mean",
        "conv3d-k3-s2-d2-g2-B3-ce-sum",
        "convtranspose2d-k2x3-s2x1-d1x2-g2-B3-ce-sum",
    ];

    /// <summary>
    /// PyTorch limitations accepted for ExpandedWeights, each a fragment of the reason the script reports. Any other
    /// unsupported method fails the test: nothing is skipped silently.
    /// </summary>
    private static readonly string[] KnownExpandedWeightsLimitations =
    [
        // PyTorch 1.13 (and later, as of its embedding_expanded_weights.py) scatters every token's output gradient
        // into the weight's per-sample gradient, padding row included; autograd and the loop give that row zero.
        "ignores Embedding's padding_idx",
        // PyTorch 1.13: InstanceNorm with track_running_stats in eval mode normalises with the running statistics,
        // but ExpandedWeights' backward recomputes each sample's own statistics.
        "ignores InstanceNorm's running statistics",
        // PyTorch 1.13: ExpandedWeights has no rule for batch_norm, not even in eval mode.
        "cannot handle function batch_norm",
        // PyTorch 1.13: ExpandedWeights has no rule for transposed convolutions.
        "cannot handle function conv_transpose",
        // PyTorch 1.13: ExpandedWeights has no rule for prelu.
        "cannot handle function prelu",
        // PyTorch 1.13: ExpandedWeights handles library layers' functions only, not a custom module's raw parameter
        // in an elementwise product (the fallback cases).
        "cannot handle function mul",
        // PyTorch 1.13: ExpandedWeights has no rule for these layers' functions.
        "cannot handle function multi_head_attention_forward",
        "cannot handle function embedding_bag",
        "cannot handle function lstm_cell",
        "cannot handle function gru_cell",
        "cannot handle function rnn_tanh_cell",
        "cannot handle function rnn_relu_cell",
        // PyTorch 1.13: ExpandedWeights' 3-d convolution rule accepts dilation 1 only.
        "dilation=(2, 2, 2) not supported",
    ];

    /// <summary>PyTorch limitations accepted for vmap(grad), as for ExpandedWeights.</summary>
    private static readonly string[] KnownVmapLimitations =
    [
        // functorch 1.13 has no batching rule for nn.LSTM (_VF.lstm): its per-sample call fails on a shape check.
        "doesn't match the broadcast shape",
        // functorch 1.13 has no batching rule for nn.GRU's split of the gates.
        "Batching rule not implemented for aten::unsafe_split.Tensor",
        // functorch 1.13 refuses to update InstanceNorm's running statistics in training mode under vmap.
        "Batch norm got a batched tensor as input while the running_mean or running_var",
        // functorch 1.13's PReLU batching rule takes a per-sample single weight for one weight per channel and fails
        // the channel check ("parameter numbers = 1 and channel size = C").
        "Mismatch of parameter numbers and input channel size",
    ];

    /// <summary>
    /// Where PyTorch's fast methods return per-sample gradients without an error that disagree with its own
    /// one-sample-at-a-time loop on the same model (PyTorch 1.13, measured on the whole catalogue, 2026-12-02): a
    /// defect of that method, which the test requires to be still there (remove the entry when a PyTorch release mends
    /// it) and around which the engines are compared with the loop.
    /// </summary>
    private static readonly (string Method, string CasePrefix)[] KnownWrongInPyTorch =
    [
        // ExpandedWeights runs nn.LSTM, nn.GRU and nn.RNN (the _VF kernels on the flat weights) without complaint;
        // its per-sample gradients are off by 100% of the loop's (relative error 1.0 on every trained weight).
        (PyTorchReference.ExpandedWeights, "lstm-"),
        (PyTorchReference.ExpandedWeights, "gru-"),
        (PyTorchReference.ExpandedWeights, "rnn-"),
        // vmap(grad) of a bidirectional, batch-first ReLU RNN given h0 disagrees with the loop in both dtypes.
        (PyTorchReference.Vmap, "rnn-relu-bi-batchfirst-h0"),
    ];

    private static bool KnownWrong(string method, string caseId) =>
        KnownWrongInPyTorch.Any(k => k.Method == method && caseId.StartsWith(k.CasePrefix, StringComparison.Ordinal));

    public static TheoryData<string, string> CasesAndDTypes
    {
        get
        {
            var data = new TheoryData<string, string>();
            foreach (var id in CaseIds)
                foreach (var dtype in TestSettings.DTypes)
                    data.Add(id, ElementTypes.Name(dtype));
            return data;
        }
    }

    [Theory]
    [MemberData(nameof(CasesAndDTypes))]
    public void Our_oracle_and_engines_agree_with_PyTorch_on_the_same_weights_and_batch(string caseId, string dtypeName)
    {
        var versions = PyTorchRequirement.Require();
        var dtype = ElementTypes.Parse(dtypeName);
        var gradientCase = CaseCatalogue.Get(caseId);
        using var problem = gradientCase.Create(dtype, TestSettings.Device);
        using var pytorch = PyTorchReference.Compute(problem);
        output.WriteLine($"{caseId} {dtypeName}: {versions}, {pytorch.Threads} thread(s)");

        var loop = pytorch[PyTorchReference.LoopFloat64];
        var vmapResult = pytorch.Methods.Single(m => m.Method == PyTorchReference.Vmap);
        var expandedWeights = pytorch.Methods.Single(m => m.Method == PyTorchReference.ExpandedWeights);
        var tolerance = TolerancePolicy.ToleranceFor(dtype);
        var knownWrong = new List<GradientComparison>();
        foreach (var method in new[] { vmapResult, expandedWeights }.Where(m => KnownWrong(m.Method, caseId)))
        {
            Assert.True(method.Gradients is not null, $"{method.Method} no longer runs {caseId}: update the list.");
            knownWrong.Add(GradientComparison.Compare(method.Gradients!, loop, tolerance));
            Assert.False(knownWrong[^1].Passed, $"{method.Method} now agrees with the loop on {caseId}: remove it " +
                "from KnownWrongInPyTorch.");
        }
        // Where vmap is unsupported (a known limitation, asserted below) or known wrong, the engines are checked
        // against the loop.
        var usableVmap = KnownWrong(PyTorchReference.Vmap, caseId) ? null : vmapResult.Gradients;
        var usableExpandedWeights = KnownWrong(PyTorchReference.ExpandedWeights, caseId) ? null
            : expandedWeights.Gradients;
        var vmap = usableVmap ?? loop;
        using var hooks = problem.Run(new HookEngine());
        using var functional = problem.Run(new FunctionalEngine());
        var comparisons = new List<GradientComparison>();
        if (dtype == ScalarType.Float64)
        {
            comparisons.Add(GradientComparison.Compare(OracleCache.Float64(gradientCase), loop, tolerance));
            comparisons.Add(GradientComparison.Compare(hooks, vmap, tolerance));
            comparisons.Add(GradientComparison.Compare(functional, vmap, tolerance));
            if (usableVmap is not null) comparisons.Add(GradientComparison.Compare(vmap, loop, tolerance));
            if (usableExpandedWeights is { } ew) comparisons.Add(GradientComparison.Compare(ew, loop, tolerance));
        }
        else
        {
            using var oracle = problem.Run(new PerSampleGradientOracle());
            comparisons.Add(GradientComparison.Compare(oracle, loop, tolerance));
            comparisons.Add(GradientComparison.Compare(hooks, loop, tolerance));
            comparisons.Add(GradientComparison.Compare(functional, loop, tolerance));
            if (usableVmap is not null) comparisons.Add(GradientComparison.Compare(vmap, loop, tolerance));
            if (usableExpandedWeights is { } ew) comparisons.Add(GradientComparison.Compare(ew, loop, tolerance));
        }
        Report([.. comparisons, .. knownWrong], vmapResult, expandedWeights);
        if (!vmapResult.Supported)
            Assert.Contains(KnownVmapLimitations,
                known => vmapResult.UnsupportedReason!.Contains(known, StringComparison.Ordinal));
        if (!expandedWeights.Supported)
            Assert.Contains(KnownExpandedWeightsLimitations,
                known => expandedWeights.UnsupportedReason!.Contains(known, StringComparison.Ordinal));

        var failures = comparisons.Where(c => !c.Passed).Select(c => c.Describe()).ToList();
        // A float32 case this machine's libtorch computes wrong (PlatformArithmetic) is skipped, as in the engines'
        // own equivalence tests.
        EngineEquivalenceTests.SkipWhereTheMachineIsAtFault(failures.Count == 0, gradientCase, dtype);
        Assert.True(failures.Count == 0, string.Join(Environment.NewLine, failures));
    }

    private void Report(List<GradientComparison> comparisons, PyTorchMethodResult vmap,
        PyTorchMethodResult expandedWeights)
    {
        foreach (var c in comparisons)
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  {c.Actual,-26} vs {c.Expected,-22} max relative error {c.MaxRelativeError:0.00e0} (worst " +
                    $"{c.Worst?.Name}), tolerance {c.Tolerance}"));
        if (!vmap.Supported) output.WriteLine($"  {PyTorchReference.Vmap}: unsupported: {vmap.UnsupportedReason}");
        if (!expandedWeights.Supported)
            output.WriteLine($"  {PyTorchReference.ExpandedWeights}: unsupported: {expandedWeights.UnsupportedReason}");
    }
}
