namespace PerSampleGrads.Testing.Specs;

/// <summary>What one sample looks like between two layers of a generated architecture.</summary>
public enum ShapeKind
{
    /// <summary><c>[F]</c>: a feature vector.</summary>
    Features,
    /// <summary><c>[T]</c>: Int64 token ids below the vocabulary (0 is padding).</summary>
    TokenIds,
    /// <summary><c>[T, D]</c>: one feature vector per token.</summary>
    Tokens,
    /// <summary><c>[C, L]</c>: a one-dimensional signal (Conv1d).</summary>
    Signal,
    /// <summary><c>[C, H, W]</c>: an image (Conv2d).</summary>
    Image,
    /// <summary><c>[C, D, H, W]</c>: a volume (Conv3d).</summary>
    Volume,
}

/// <summary>
/// The shape of one sample (without the batch dimension) and what kind of data it is.
/// </summary>
/// <param name="Kind">What the dimensions mean.</param>
/// <param name="Dims">The dimensions (see <see cref="ShapeKind"/>).</param>
/// <param name="Vocabulary">For <see cref="ShapeKind.TokenIds"/>: ids are below this.</param>
public sealed record SampleShape(ShapeKind Kind, long[] Dims, long Vocabulary = 0)
{
    /// <summary>A feature vector of <paramref name="features"/> values.</summary>
    public static SampleShape Features(long features) => new(ShapeKind.Features, [features]);

    /// <summary>A signal, an image or a volume: channels first, then spatial dimensions.</summary>
    public bool IsSpatial => Kind is ShapeKind.Signal or ShapeKind.Image or ShapeKind.Volume;

    /// <summary>The channel dimension: the first for signals, images and volumes, the last otherwise.</summary>
    public long Channels => IsSpatial ? Dims[0] : Dims[^1];

    /// <summary>The spatial sizes of a signal, an image or a volume (empty otherwise).</summary>
    public long[] Spatial => IsSpatial ? Dims[1..] : [];

    /// <summary>The kind of a sample with <paramref name="spatialDims"/> spatial dimensions (1 to 3).</summary>
    public static ShapeKind SpatialKind(int spatialDims) => spatialDims switch
    {
        1 => ShapeKind.Signal,
        2 => ShapeKind.Image,
        _ => ShapeKind.Volume,
    };

    /// <summary>Number of values in one sample.</summary>
    public long Elements => Dims.Aggregate(1L, (a, b) => a * b);

    /// <summary>Whether the sample holds floating values (everything but token ids).</summary>
    public bool IsFloating => Kind != ShapeKind.TokenIds;

    /// <summary>Same kind and dimensions.</summary>
    public bool SameAs(SampleShape other) => Kind == other.Kind && Dims.SequenceEqual(other.Dims);

    /// <summary>The same kind with other dimensions.</summary>
    public SampleShape With(params long[] dims) => this with { Dims = dims };

    /// <inheritdoc/>
    public override string ToString() => Kind == ShapeKind.TokenIds
        ? $"tokens[{Dims[0]}]<{Vocabulary}"
        : $"[{string.Join("x", Dims)}]";
}
