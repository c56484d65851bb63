using TorchSharp;
using static TorchSharp.torch;

namespace PerSampleGrads.Interop;

/// <summary>
/// A fresh folder under the system temp directory holding one exchange: <c>request.json</c> and the <c>.npy</c> files
/// the C# side writes, the package <c>pytorch_reference/</c>, and <c>result/</c> that PyTorch writes. Deleted on
/// dispose unless kept.
/// </summary>
internal sealed class ExchangeFolder : IDisposable
{
    private readonly bool _keep;

    private ExchangeFolder(string path, bool keep)
    {
        Path = path;
        _keep = keep;
    }

    /// <summary>Absolute path of the exchange folder (under the system temp directory).</summary>
    public string Path { get; }

    /// <summary>Where the script writes its answer.</summary>
    public string ResultPath => System.IO.Path.Combine(Path, "result");

    /// <summary>Creates an empty folder <c>psg-pytorch-*</c> under the system temp directory.</summary>
    public static ExchangeFolder Create(bool keep) =>
        new(Directory.CreateTempSubdirectory("psg-pytorch-").FullName, keep);

    /// <summary>
    /// Writes the model's parameters and buffers (by qualified name, in the model's own dtype), the batch and
    /// <c>request.json</c>.
    /// </summary>
    public ExchangeRequest WriteRequest(string problem, string architecture, nn.Module<Tensor, Tensor> model,
        Tensor inputs,
        Tensor targets, LossFunction loss)
    {
        var dtype = ModelInspection.ParameterDType(model);
        var parameters = model.named_parameters()
            .Select((p, i) => WriteParameter(p.name, p.parameter, p.parameter.requires_grad, $"param-{i:000}.npy"))
            .ToList();
        var buffers = model.named_buffers()
            .Select((b, i) => WriteTensor(b.name, b.buffer, $"buffer-{i:000}.npy"))
            .ToList();
        var training = ModelInspection.AllModules(model).Where(m => m.Module.training).Select(m => m.Path).ToList();
        var request = new ExchangeRequest(
            ExchangeJson.Format, problem, architecture, DTypeName(dtype), inputs.shape[0],
            new ExchangeLoss(loss.Name, loss.Reduction == LossReduction.Sum ? "sum" : "mean", loss.IsCustom),
            WriteTensor("inputs", inputs, "inputs.npy"), WriteTensor("targets", targets, "targets.npy"),
            parameters, buffers, training);
        ExchangeJson.Write(System.IO.Path.Combine(Path, "request.json"), request);
        return request;
    }

    /// <summary>Reads <c>result/result.json</c>; a missing or malformed answer is a script failure.</summary>
    public ExchangeResult ReadResult()
    {
        var path = System.IO.Path.Combine(ResultPath, "result.json");
        if (!File.Exists(path))
            throw new PyTorchReferenceException(PyTorchReferenceFailure.ScriptFailed,
                $"The PyTorch reference exited successfully but wrote no {path}.");
        try
        {
            var result = ExchangeJson.Read<ExchangeResult>(path);
            if (result.Format != ExchangeJson.Format)
                throw new InvalidDataException($"format {result.Format}, expected {ExchangeJson.Format}");
            return result;
        }
        catch (InvalidDataException e)
        {
            throw new PyTorchReferenceException(PyTorchReferenceFailure.ScriptFailed,
                $"The PyTorch reference's answer {path} is malformed: {e.Message}", e);
        }
    }

    /// <summary>Reads one <c>.npy</c> file of the answer.</summary>
    public Tensor ReadResultTensor(string file)
    {
        if (file.Contains('/') || file.Contains('\\') || file.StartsWith('.'))
            throw new PyTorchReferenceException(PyTorchReferenceFailure.ScriptFailed,
                $"The PyTorch reference named a result file outside its folder: '{file}'.");
        var path = System.IO.Path.Combine(ResultPath, file);
        try
        {
            return Npy.Read(path);
        }
        catch (Exception e) when (e is IOException or InvalidDataException)
        {
            throw new PyTorchReferenceException(PyTorchReferenceFailure.ScriptFailed,
                $"Cannot read the PyTorch reference's {path}: {e.Message}", e);
        }
    }

    /// <summary>The dtype name both sides use.</summary>
    public static string DTypeName(ScalarType dtype) => dtype is ScalarType.Float32 or ScalarType.Float64
        or ScalarType.Int64 or ScalarType.Bool
        ? ElementTypes.Name(dtype)
        : throw new PyTorchReferenceException(PyTorchReferenceFailure.Mismatch,
            $"The PyTorch exchange carries float32, float64, int64 and bool tensors; this one is {dtype}.");

    private ExchangeParameter WriteParameter(string name, Tensor value, bool requiresGrad, string file)
    {
        var written = WriteTensor(name, value, file);
        return new ExchangeParameter(name, file, written.Shape, written.DType, requiresGrad);
    }

    private ExchangeTensor WriteTensor(string name, Tensor value, string file)
    {
        var dtypeName = DTypeName(value.dtype);
        Npy.Write(value, System.IO.Path.Combine(Path, file));
        return new ExchangeTensor(name, file, value.shape, dtypeName);
    }

    /// <summary>Deletes the folder (unless kept); a folder that cannot be deleted is left, never an error.</summary>
    public void Dispose()
    {
        if (_keep) return;
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
