using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using static TorchSharp.torch;

namespace PerSampleGrads.Interop;

/// <summary>
/// NumPy's <c>.npy</c> format for single tensors: what numpy's <c>np.save</c>/<c>np.load</c> and PyTorch read and
/// write. Writes format version 1.0; reads 1.0, 2.0 and 3.0. Little-endian float32 (<c>&lt;f4</c>), float64
/// (<c>&lt;f8</c>), int64 (<c>&lt;i8</c>) and bool (<c>|b1</c>), C (row-major) order, any shape including 0-d
/// (<c>()</c>) and empty ones.
/// </summary>
/// <remarks>
/// Layout: the magic <c>\x93NUMPY</c>, major and minor version bytes, the header length (little-endian uint16 in 1.0,
/// uint32 in 2.0 and 3.0), then an ASCII (3.0: UTF-8) Python dictionary literal such as
/// <c>{'descr': '&lt;f4', 'fortran_order': False, 'shape': (2, 3), }</c>, padded with spaces and a final newline so
/// that the data starts at a multiple of 64 bytes; then the elements' bytes in C order.
/// </remarks>
public static partial class Npy
{
    private static readonly byte[] Magic = [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];
    private const int Alignment = 64;
    private const int CopyBuffer = 1 << 20;

    /// <summary>The element types this reader and writer handle, with their NumPy type strings.</summary>
    public static IReadOnlyDictionary<ScalarType, string> Descriptors { get; } = new Dictionary<ScalarType, string>
    {
        [ScalarType.Float32] = "<f4",
        [ScalarType.Float64] = "<f8",
        [ScalarType.Int64] = "<i8",
        [ScalarType.Bool] = "|b1",
    };

    /// <summary>Writes <paramref name="tensor"/> (any device, any strides) to a new file at <paramref
    /// name="path"/>.</summary>
    public static void Write(Tensor tensor, string path)
    {
        using var file = File.Create(path);
        Write(tensor, file);
    }

    /// <summary>Writes <paramref name="tensor"/> as one <c>.npy</c> image to <paramref name="stream"/> (left
    /// open).</summary>
    /// <exception cref="NotSupportedException">The element type is not float32, float64, int64 or bool.</exception>
    public static void Write(Tensor tensor, Stream stream)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        ArgumentNullException.ThrowIfNull(stream);
        RequireLittleEndian();
        if (!Descriptors.TryGetValue(tensor.dtype, out var descriptor))
            throw new NotSupportedException($"Npy writes float32, float64, int64 and bool tensors; this one is " +
                $"{tensor.dtype}.");

        stream.Write(Header(descriptor, tensor.shape));
        if (tensor.numel() == 0) return;
        using var scope = NewDisposeScope();
        var contiguous = tensor.detach().cpu().contiguous();
        contiguous.WriteBytesToStream(stream, CopyBuffer);
    }

    /// <summary>Reads the <c>.npy</c> file at <paramref name="path"/> into a new CPU tensor.</summary>
    public static Tensor Read(string path)
    {
        using var file = File.OpenRead(path);
        try
        {
            return Read(file);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"{path}: {e.Message}", e);
        }
    }

    /// <summary>Reads one <c>.npy</c> image from <paramref name="stream"/> into a new CPU tensor of its dtype and
    /// shape.</summary>
    /// <exception cref="InvalidDataException">Not an .npy image, truncated, Fortran order, big-endian or an unsupported
    /// type; the message says which.</exception>
    public static Tensor Read(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        RequireLittleEndian();
        var (dtype, shape) = ReadHeader(stream);
        using var buffered = RequireData(ref stream, dtype, shape);
        var tensor = empty(shape, dtype: dtype);
        try
        {
            if (tensor.numel() > 0) tensor.ReadBytesFromStream(stream, CopyBuffer);
            return tensor;
        }
        catch (EndOfStreamException)
        {
            long bytes = tensor.numel() * tensor.ElementSize;
            tensor.Dispose();
            throw new InvalidDataException($"The .npy data is truncated: a {dtype} tensor of shape " +
                $"({string.Join(", ", shape)}) needs {bytes} bytes after the header.");
        }
    }

    // The data a header announces must be there before the tensor is allocated: a corrupt shape would otherwise ask
    // for any amount of memory (or overflow). A stream that cannot tell its length is first read into memory, at most
    // the announced bytes, and replaced by that copy (returned for disposal).
    private static MemoryStream? RequireData(ref Stream stream, ScalarType dtype, long[] shape)
    {
        long bytes;
        try
        {
            bytes = checked(shape.Aggregate(1L, (product, size) => product * size) * ElementSize(dtype));
        }
        catch (OverflowException)
        {
            throw new InvalidDataException($"The .npy header's shape ({string.Join(", ", shape)}) is too large to be "
                + $"a tensor.");
        }
        MemoryStream? copy = null;
        long available;
        if (stream.CanSeek)
        {
            available = stream.Length - stream.Position;
        }
        else
        {
            copy = new MemoryStream();
            var chunk = new byte[CopyBuffer];
            int read;
            while (copy.Length < bytes
                   && (read = stream.Read(chunk, 0, (int)Math.Min(chunk.Length, bytes - copy.Length))) > 0)
                copy.Write(chunk, 0, read);
            copy.Position = 0;
            available = copy.Length;
            stream = copy;
        }
        if (bytes > available)
        {
            copy?.Dispose();
            throw new InvalidDataException($"The .npy data is truncated: a {dtype} tensor of shape "
                + $"({string.Join(", ", shape)}) needs {bytes} bytes after the header, the image holds {available}.");
        }
        return copy;
    }

    private static long ElementSize(ScalarType dtype) => dtype switch
    {
        ScalarType.Float64 or ScalarType.Int64 => 8,
        ScalarType.Float32 => 4,
        _ => 1,
    };

    /// <summary>The header for a tensor of type <paramref name="descriptor"/> and <paramref name="shape"/>, padded to
    /// 64 bytes.</summary>
    internal static byte[] Header(string descriptor, long[] shape)
    {
        var dictionary = $"{{'descr': '{descriptor}', 'fortran_order': False, 'shape': {ShapeLiteral(shape)}, }}";
        // magic (6) + version (2) + length (2) + dictionary + padding + '\n' is a multiple of 64.
        int unpadded = Magic.Length + 2 + 2 + dictionary.Length + 1;
        int padding = (Alignment - unpadded % Alignment) % Alignment;
        var text = dictionary + new string(' ', padding) + "\n";
        if (text.Length > ushort.MaxValue)
            throw new NotSupportedException($"A tensor with {shape.Length} dimensions needs a header longer than " +
                $"format 1.0 allows.");
        var header = new byte[Magic.Length + 4 + text.Length];
        Magic.CopyTo(header, 0);
        header[6] = 1;
        header[7] = 0;
        header[8] = (byte)(text.Length & 0xFF);
        header[9] = (byte)(text.Length >> 8);
        Encoding.ASCII.GetBytes(text, 0, text.Length, header, 10);
        return header;
    }

    // Python's tuple literal: () for 0-d, (3,) for one dimension, (2, 3) otherwise.
    private static string ShapeLiteral(long[] shape) => shape.Length switch
    {
        0 => "()",
        1 => $"({shape[0].ToString(CultureInfo.InvariantCulture)},)",
        _ => $"({string.Join(", ", shape.Select(d => d.ToString(CultureInfo.InvariantCulture)))})",
    };

    private static (ScalarType DType, long[] Shape) ReadHeader(Stream stream)
    {
        var prefix = new byte[8];
        ReadExactly(stream, prefix, "the magic string and version");
        if (!prefix.AsSpan(0, Magic.Length).SequenceEqual(Magic))
            throw new InvalidDataException("Not an .npy image: it does not start with \\x93NUMPY.");
        int major = prefix[6];
        if (major is < 1 or > 3)
            throw new InvalidDataException($"The .npy format version {major}.{prefix[7]} is unknown (1.0, 2.0 and " +
                $"3.0 are read).");
        var lengthBytes = new byte[major == 1 ? 2 : 4];
        ReadExactly(stream, lengthBytes, "the header length");
        long length = major == 1 ? BitConverter.ToUInt16(lengthBytes) : BitConverter.ToUInt32(lengthBytes);
        if (length > 1 << 20)
            throw new InvalidDataException($"The .npy header claims {length} bytes: not a plausible header.");
        var headerBytes = new byte[length];
        ReadExactly(stream, headerBytes, "the header");
        var header = (major == 3 ? Encoding.UTF8 : Encoding.Latin1).GetString(headerBytes);

        var descr = DescrPattern().Match(header);
        var order = FortranPattern().Match(header);
        var shapeMatch = ShapePattern().Match(header);
        if (!descr.Success || !order.Success || !shapeMatch.Success)
            throw new InvalidDataException($"The .npy header lacks 'descr', 'fortran_order' or 'shape': " +
                $"{header.Trim()}");
        if (order.Groups[1].Value == "True")
            throw new InvalidDataException("The .npy data is in Fortran (column-major) order; only C order is read. " +
                "Save a C-contiguous array (np.ascontiguousarray).");
        var descriptor = descr.Groups[1].Value;
        var dtype = DTypeOf(descriptor);
        var shape = shapeMatch.Groups[1].Value
            .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(d => long.TryParse(d.TrimEnd('L'), NumberStyles.None, CultureInfo.InvariantCulture, out var n)
                ? n
                : throw new InvalidDataException($"The .npy shape ({shapeMatch.Groups[1].Value}) is not a tuple of " +
                    $"sizes."))
            .ToArray();
        return (dtype, shape);
    }

    private static ScalarType DTypeOf(string descriptor)
    {
        // A one-byte type has no byte order: numpy writes '|b1', and '<b1' or '=b1' mean the same.
        var normalized = descriptor is "<b1" or "=b1" ? "|b1" : descriptor;
        foreach (var (dtype, known) in Descriptors)
            if (known == normalized) return dtype;
        if (descriptor.StartsWith('>'))
            throw new InvalidDataException($"The .npy data is big-endian ('{descriptor}'); only little-endian data " +
                $"is read. Convert it with array.astype(array.dtype.newbyteorder('<')).");
        throw new InvalidDataException($"The .npy element type '{descriptor}' is not supported; supported: " +
            $"{string.Join(", ", Descriptors.Values)} (float32, float64, int64, bool).");
    }

    private static void ReadExactly(Stream stream, byte[] buffer, string what)
    {
        try
        {
            stream.ReadExactly(buffer);
        }
        catch (EndOfStreamException)
        {
            throw new InvalidDataException($"The .npy image ends inside {what}.");
        }
    }

    private static void RequireLittleEndian()
    {
        if (!BitConverter.IsLittleEndian)
            throw new PlatformNotSupportedException("Npy reads and writes little-endian data by copying tensor " +
                "bytes: it needs a little-endian machine.");
    }

    [GeneratedRegex(@"'descr'\s*:\s*'([^']*)'")]
    private static partial Regex DescrPattern();

    [GeneratedRegex(@"'fortran_order'\s*:\s*(True|False)")]
    private static partial Regex FortranPattern();

    [GeneratedRegex(@"'shape'\s*:\s*\(([^)]*)\)")]
    private static partial Regex ShapePattern();
}
