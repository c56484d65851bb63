using PerSampleGrads.Zoo;

namespace PerSampleGrads.Tests;

/// <summary>
/// Catalogue cases a method refuses by design, so that the tests that iterate the catalogue ask it only the others
/// (the refusals themselves are tested in SignatureTests): the functional engine has no batched forward for
/// TorchSharp's native Transformer layers (no managed children to give per-sample copies; the hook engine re-runs
/// them per sample), and the clipping method hooks only <c>Module&lt;Tensor, Tensor&gt;</c> layers with the samples
/// in dimension 0 (not EmbeddingBag, MultiheadAttention, the recurrent layers or the Transformer layers).
/// </summary>
public static class CaseRefusals
{
    /// <summary>Whether the functional engine refuses the case.</summary>
    public static bool Functional(string caseId) => caseId.StartsWith("transformer-", StringComparison.Ordinal);

    /// <summary>Whether the clipping method refuses the case.</summary>
    public static bool Clipping(string caseId) => Functional(caseId)
        || caseId.StartsWith("bag-", StringComparison.Ordinal)
        || caseId.StartsWith("attention-", StringComparison.Ordinal)
        || RecurrentPrefixes.Any(prefix => caseId.StartsWith(prefix, StringComparison.Ordinal));

    // The recurrent cases and the zoo's LSTM classifier: LSTM/GRU/RNN and their cells are not tensor-to-tensor.
    private static readonly string[] RecurrentPrefixes =
        ["lstm-", "gru-", "rnn-", "lstmcell-", "grucell", "rnncell-", "zoo-lstm-"];

    /// <summary>The catalogue's ids the functional engine takes.</summary>
    public static IEnumerable<GradientCase> ForFunctional(IEnumerable<GradientCase> cases) =>
        cases.Where(c => !Functional(c.Id));
}
