using static TorchSharp.torch;

namespace PerSampleGrads.Engines.Probing;

/// <summary>How a tensor inside the model carries the batch's samples.</summary>
public enum SampleAxisKind
{
    /// <summary>Sample i is index i of one dimension (<see cref="SampleAxis.Dimension"/>; 0 in the usual
    /// layout).</summary>
    Dimension,
    /// <summary>The tensor is the same for every sample and has a leading dimension of size 1 (position ids
    /// <c>[1, T]</c>): the engines expand that dimension to the batch.</summary>
    SharedWithUnitDimension,
    /// <summary>The tensor is the same for every sample and has no batch dimension (<c>arange(T)</c>): the engines
    /// prepend one of the batch's size.</summary>
    SharedWithoutBatchDimension,
}

/// <summary>Where a tensor seen inside the model keeps the samples.</summary>
/// <param name="Kind">Per-sample along a dimension, or shared by every sample.</param>
/// <param name="Dimension">The dimension holding the samples when <paramref name="Kind"/> is
/// <see cref="SampleAxisKind.Dimension"/>; else -1.</param>
public readonly record struct SampleAxis(SampleAxisKind Kind, int Dimension)
{
    /// <summary>Samples in dimension 0.</summary>
    public static SampleAxis First { get; } = new(SampleAxisKind.Dimension, 0);

    /// <summary>Whether every sample sees the same tensor.</summary>
    public bool IsShared => Kind != SampleAxisKind.Dimension;

    /// <summary>Samples along dimension <paramref name="dimension"/>.</summary>
    public static SampleAxis Along(int dimension) => new(SampleAxisKind.Dimension, dimension);

    /// <summary>A shared tensor as <c>[batch, ...]</c>: a broadcast view, no copy; other tensors unchanged.</summary>
    public Tensor ExpandShared(Tensor t, long batch) => Kind switch
    {
        SampleAxisKind.SharedWithUnitDimension => t.expand([batch, .. t.shape[1..]]),
        SampleAxisKind.SharedWithoutBatchDimension => t.unsqueeze(0).expand([batch, .. t.shape]),
        _ => t,
    };

    /// <inheritdoc/>
    public override string ToString() => Kind switch
    {
        SampleAxisKind.Dimension => $"samples in dimension {Dimension}",
        SampleAxisKind.SharedWithUnitDimension => "shared by every sample (leading dimension of size 1)",
        _ => "shared by every sample (no batch dimension)",
    };
}
