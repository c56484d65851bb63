using PerSampleGrads.Interop;
using static TorchSharp.torch;

namespace PerSampleGrads.Tests;

/// <summary>
/// The .npy reader and writer: round trips of every supported dtype and shape (0-d and empty included), byte-for-byte
/// agreement with files numpy 1.24 wrote, and clear refusals of what it does not read.
/// </summary>
[Trait("Category", "Interop")]
public sealed class NpyTests
{
    public NpyTests() => TestSettings.RequireTorch();

    // Written by numpy 1.24.2's np.save (tools: python3 -c "np.save(f, a)"; base64 of the file).
    private const string NumpyFloat32TwoByThree = // np.array([[1.5, -2.0, 3.25], [0.0, 1e-30, -7.0]], dtype=np.float32)
        "k05VTVBZAQB2AHsnZGVzY3InOiAnPGY0JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDIsIDMpLCB9ICAgICAg" +
        "ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAMA/AAAAwAAAUEAAAAAAYEKiDQAA" +
        "4MA=";
    private const string NumpyFloat64Scalar = // np.array(2.5)
        "k05VTVBZAQB2AHsnZGVzY3InOiAnPGY4JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKCksIH0gICAgICAgICAg" +
        "ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAAAAAAAEQA==";
    private const string NumpyBoolTwoByTwo = // np.array([[True, False], [False, True]])
        "k05VTVBZAQB2AHsnZGVzY3InOiAnfGIxJywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDIsIDIpLCB9ICAgICAg" +
        "ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoBAAAB";
    private const string NumpyInt64ThreeByOneByTwo = // np.arange(-2, 4).reshape(3, 1, 2)
        "k05VTVBZAQB2AHsnZGVzY3InOiAnPGk4JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDMsIDEsIDIpLCB9ICAg" +
        "ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAr+////////////////////AAAAAAAA" +
        "AAABAAAAAAAAAAIAAAAAAAAAAwAAAAAAAAA=";
    private const string NumpyEmptyFloat64 = // np.zeros((2, 0, 3))
        "k05VTVBZAQB2AHsnZGVzY3InOiAnPGY4JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDIsIDAsIDMpLCB9ICAg" +
        "ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAo=";
    private const string NumpyFortranOrder = // np.asfortranarray(np.arange(6.0).reshape(2, 3))
        "k05VTVBZAQB2AHsnZGVzY3InOiAnPGY4JywgJ2ZvcnRyYW5fb3JkZXInOiBUcnVlLCAnc2hhcGUnOiAoMiwgMyksIH0gICAgICAg" +
        "ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAAAAAAAAAAAAAAAAAAhAAAAAAAAA" +
        "8D8AAAAAAAAQQAAAAAAAAABAAAAAAAAAFEA=";
    private const string NumpyBigEndian = // np.arange(3, dtype='>f8')
        "k05VTVBZAQB2AHsnZGVzY3InOiAnPmY4JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDMsKSwgfSAgICAgICAg" +
        "ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAAAAAAAAAD/wAAAAAAAAQAAAAAAA" +
        "AAA=";
    private const string NumpyInt32 = // np.arange(3, dtype=np.int32)
        "k05VTVBZAQB2AHsnZGVzY3InOiAnPGk0JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDMsKSwgfSAgICAgICAg" +
        "ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAAAAAQAAAAIAAAA=";

    public static TheoryData<string, string> DTypesAndShapes
    {
        get
        {
            var data = new TheoryData<string, string>();
            foreach (var dtype in new[] { "float32", "float64", "int64", "bool" })
                foreach (var shape in new[] { "", "0", "1", "7", "2x3", "2x0x3", "0x4", "3x1x2x5", "1x1x1x1x1x2" })
                    data.Add(dtype, shape);
            return data;
        }
    }

    [Theory]
    [MemberData(nameof(DTypesAndShapes))]
    public void A_tensor_written_and_read_back_is_identical(string dtypeName, string shapeText)
    {
        using var scope = NewDisposeScope();
        long[] shape = shapeText.Length == 0 ? [] : shapeText.Split('x').Select(long.Parse).ToArray();
        var original = Sample(dtypeName, shape);

        var bytes = Written(original);
        var back = Npy.Read(new MemoryStream(bytes));

        Assert.Equal(original.dtype, back.dtype);
        Assert.Equal(original.shape, back.shape);
        Assert.True(original.equal(back).all().item<bool>());
        Assert.Equal(0, HeaderEnd(bytes) % 64);
        Assert.Equal(HeaderEnd(bytes) + original.numel() * original.ElementSize, bytes.Length);
    }

    [Fact]
    public void A_non_contiguous_tensor_is_written_in_C_order()
    {
        using var scope = NewDisposeScope();
        var matrix = arange(12, dtype: ScalarType.Float64).reshape(3, 4);
        var transposed = matrix.t();
        Assert.False(transposed.is_contiguous());

        var back = Npy.Read(new MemoryStream(Written(transposed)));

        Assert.Equal(new long[] { 4, 3 }, back.shape);
        Assert.True(back.equal(transposed).all().item<bool>());
        Assert.Equal(4.0, back[0, 1].item<double>());
    }

    [Fact]
    public void Files_numpy_wrote_are_read_with_their_values()
    {
        using var scope = NewDisposeScope();
        var f32 = Npy.Read(new MemoryStream(Convert.FromBase64String(NumpyFloat32TwoByThree)));
        Assert.Equal(ScalarType.Float32, f32.dtype);
        Assert.Equal(new long[] { 2, 3 }, f32.shape);
        Assert.True(f32.equal(tensor(new float[] { 1.5f, -2.0f, 3.25f, 0.0f, 1e-30f, -7.0f }).reshape(2,
            3)).all().item<bool>());

        var scalar = Npy.Read(new MemoryStream(Convert.FromBase64String(NumpyFloat64Scalar)));
        Assert.Equal(ScalarType.Float64, scalar.dtype);
        Assert.Empty(scalar.shape);
        Assert.Equal(2.5, scalar.item<double>());

        var flags = Npy.Read(new MemoryStream(Convert.FromBase64String(NumpyBoolTwoByTwo)));
        Assert.Equal(ScalarType.Bool, flags.dtype);
        Assert.Equal(new[] { true, false, false, true }, flags.flatten().data<bool>().ToArray());

        var ids = Npy.Read(new MemoryStream(Convert.FromBase64String(NumpyInt64ThreeByOneByTwo)));
        Assert.Equal(ScalarType.Int64, ids.dtype);
        Assert.Equal(new long[] { 3, 1, 2 }, ids.shape);
        Assert.Equal(new long[] { -2, -1, 0, 1, 2, 3 }, ids.flatten().data<long>().ToArray());

        var nothing = Npy.Read(new MemoryStream(Convert.FromBase64String(NumpyEmptyFloat64)));
        Assert.Equal(new long[] { 2, 0, 3 }, nothing.shape);
    }

    [Theory]
    [InlineData(NumpyFloat32TwoByThree)]
    [InlineData(NumpyFloat64Scalar)]
    [InlineData(NumpyBoolTwoByTwo)]
    [InlineData(NumpyInt64ThreeByOneByTwo)]
    [InlineData(NumpyEmptyFloat64)]
    public void What_numpy_wrote_is_written_back_byte_for_byte(string numpyFile)
    {
        using var scope = NewDisposeScope();
        var bytes = Convert.FromBase64String(numpyFile);
        Assert.Equal(bytes, Written(Npy.Read(new MemoryStream(bytes))));
    }

    [Fact]
    public void Format_2_headers_are_read()
    {
        using var scope = NewDisposeScope();
        var version1 = Convert.FromBase64String(NumpyFloat64Scalar);
        // Version 2.0: the same dictionary after a 4-byte length (numpy pads to 64 again; any length is valid).
        int length = version1[8] | (version1[9] << 8);
        var version2 = new List<byte>(version1[..6]) { 2, 0, (byte)(length & 0xFF), (byte)(length >> 8), 0, 0 };
        version2.AddRange(version1[10..]);

        var back = Npy.Read(new MemoryStream(version2.ToArray()));

        Assert.Equal(2.5, back.item<double>());
    }

    [Theory]
    [InlineData(NumpyFortranOrder, "Fortran")]
    [InlineData(NumpyBigEndian, "big-endian")]
    [InlineData(NumpyInt32, "'<i4' is not supported")]
    public void What_it_cannot_read_is_refused_with_the_reason(string numpyFile, string mentions)
    {
        var error = Assert.Throws<InvalidDataException>(() =>
            Npy.Read(new MemoryStream(Convert.FromBase64String(numpyFile))));
        Assert.Contains(mentions, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Truncated_data_and_foreign_files_are_refused()
    {
        var complete = Convert.FromBase64String(NumpyInt64ThreeByOneByTwo);
        var truncated = Assert.Throws<InvalidDataException>(() => Npy.Read(new MemoryStream(complete[..^8])));
        Assert.Contains("truncated", truncated.Message, StringComparison.Ordinal);
        Assert.Contains("48 bytes", truncated.Message, StringComparison.Ordinal);

        var header = Assert.Throws<InvalidDataException>(() => Npy.Read(new MemoryStream(complete[..20])));
        Assert.Contains("ends inside the header", header.Message, StringComparison.Ordinal);

        var foreign = Assert.Throws<InvalidDataException>(()
            => Npy.Read(new MemoryStream("PK\u0003\u0004 not numpy"u8.ToArray())));
        Assert.Contains("\\x93NUMPY", foreign.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void A_header_announcing_more_data_than_the_image_holds_is_refused_before_allocating(bool seekable)
    {
        // 100000 x 100000 x 10 float64 would be 800 GB; the image holds 16 bytes of data.
        var image = Npy.Header("<f8", [100000, 100000, 10]).Concat(new byte[16]).ToArray();
        Stream stream = seekable ? new MemoryStream(image) : new ForwardOnlyStream(image);
        var error = Assert.Throws<InvalidDataException>(() => Npy.Read(stream));
        Assert.Contains("truncated", error.Message, StringComparison.Ordinal);
        Assert.Contains("800000000000 bytes", error.Message, StringComparison.Ordinal);
        Assert.Contains("holds 16", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_header_whose_shape_overflows_is_refused()
    {
        var image = Npy.Header("<f4", [long.MaxValue / 2, 4]);
        var error = Assert.Throws<InvalidDataException>(() => Npy.Read(new MemoryStream(image)));
        Assert.Contains("too large", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_stream_that_cannot_seek_is_read_like_a_file()
    {
        using var scope = NewDisposeScope();
        var original = randn(3, 4, dtype: ScalarType.Float64);
        var read = Npy.Read(new ForwardOnlyStream(Written(original)));
        Assert.True(read.equal(original).all().item<bool>());
    }

    // A stream without Length or Seek, like a pipe or a network stream.
    private sealed class ForwardOnlyStream(byte[] bytes) : Stream
    {
        private readonly MemoryStream _inner = new(bytes);
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => _inner.Read(buffer, offset, count);
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    [Fact]
    public void Writing_an_unsupported_dtype_names_it()
    {
        using var scope = NewDisposeScope();
        var error = Assert.Throws<NotSupportedException>(() => Written(ones(3, dtype: ScalarType.Int32)));
        Assert.Contains("Int32", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Files_round_trip_through_a_path()
    {
        using var scope = NewDisposeScope();
        var path = Path.Combine(Path.GetTempPath(), $"psg-npy-{Guid.NewGuid():N}.npy");
        try
        {
            var original = randn(4, 5, dtype: ScalarType.Float64);
            Npy.Write(original, path);
            Assert.True(Npy.Read(path).equal(original).all().item<bool>());
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static Tensor Sample(string dtype, long[] shape) => dtype switch
    {
        "float32" => randn(shape, dtype: ScalarType.Float32),
        "float64" => randn(shape, dtype: ScalarType.Float64) * 1e200,
        "int64" => randint(long.MinValue / 2, long.MaxValue / 2, shape, dtype: ScalarType.Int64),
        "bool" => rand(shape) < 0.5,
        _ => throw new ArgumentException(dtype),
    };

    private static byte[] Written(Tensor t)
    {
        using var stream = new MemoryStream();
        Npy.Write(t, stream);
        return stream.ToArray();
    }

    private static int HeaderEnd(byte[] bytes) => 10 + (bytes[8] | (bytes[9] << 8));
}
