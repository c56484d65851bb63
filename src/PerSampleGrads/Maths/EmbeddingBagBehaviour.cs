namespace PerSampleGrads.Maths;

/// <summary>How an EmbeddingBag reduces a bag.</summary>
public enum BagReduction
{
    /// <summary>Sum of the rows (times the per-sample weights when given).</summary>
    Sum,
    /// <summary>Mean of the rows that are not padding.</summary>
    Mean,
    /// <summary>Element-wise maximum of the rows.</summary>
    Max,
}

/// <summary>What an EmbeddingBag does, which TorchSharp 0.107 (a native module) does not expose as
/// properties.</summary>
/// <param name="Reduction">Sum, mean or max.</param>
/// <param name="PaddingIndex">The row that neither counts in a bag nor receives a gradient, if any.</param>
/// <param name="IncludeLastOffset">Whether 1-d offsets carry one extra, final entry (CSR layout).</param>
public sealed record EmbeddingBagBehaviour(BagReduction Reduction, long? PaddingIndex, bool IncludeLastOffset);
