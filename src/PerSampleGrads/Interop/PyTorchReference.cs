using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using PerSampleGrads.Zoo;
using TorchSharp;
using static TorchSharp.torch;

namespace PerSampleGrads.Interop;

/// <summary>
/// PyTorch as a second, independent reference on the very same weights and batch. The oracle and both engines run on
/// TorchSharp and libtorch; a bug in a binding, the zoo or a shared helper would fool all of them alike. Here PyTorch
/// rebuilds the architecture by name from its own definition (the package <c>tools/pytorch_reference/</c>), loads the
/// parameters and buffers strictly by qualified name and shape, and computes per-sample gradients its own ways.
/// </summary>
/// <remarks>
/// <para>Exchange: a folder under the system temp directory (deleted afterwards) with one <c>.npy</c> per parameter,
/// buffer, the inputs and the targets, and <c>request.json</c> (problem id, architecture, loss name and reduction,
/// dtype, batch size, parameter names in order with shapes and <c>requires_grad</c>, modules in training mode).
/// PyTorch answers the same way in <c>result/</c>. One script run per problem computes every method.</para>
/// <para>Python: <see cref="PyTorchReferenceOptions.Python"/>, else <c>PSG_PYTHON</c>, else <c>/usr/bin/python3</c>
/// (Debian 12's <c>python3-torch</c> 1.13). Nothing is ever compared partially: any difference between the sides
/// (architecture, parameter, shape, loss) or failure throws <see cref="PyTorchReferenceException"/> naming it.</para>
/// </remarks>
public static partial class PyTorchReference
{
    /// <summary>The naive per-sample loop in float64, batch of one, declared reduction: the oracle's
    /// definition.</summary>
    public const string LoopFloat64 = "pytorch-loop-float64";

    /// <summary><c>vmap(grad(loss on the batch of one))</c> in the run's dtype (<c>torch.func</c>, else
    /// functorch).</summary>
    public const string Vmap = "pytorch-vmap";

    /// <summary>ExpandedWeights (<c>call_for_per_sample_grads</c>) in the run's dtype; unsupported for some
    /// layers.</summary>
    public const string ExpandedWeights = "pytorch-expanded-weights";

    /// <summary>Timing only: the plain batch forward and backward of the declared loss (no per-sample
    /// gradients).</summary>
    public const string BatchBackward = "pytorch-batch-backward";

    /// <summary>Timing only: the per-sample loop in the run's dtype.</summary>
    public const string Loop = "pytorch-loop";

    /// <summary>The per-sample gradient methods every <see cref="Compute(GradientProblem, PyTorchReferenceOptions?)"/>
    /// run reports.</summary>
    public static IReadOnlyList<string> GradientMethods { get; } = [LoopFloat64, Vmap, ExpandedWeights];

    /// <summary>The methods <see cref="Time(GradientProblem, int, int, int, PyTorchReferenceOptions?)"/>
    /// reports.</summary>
    public static IReadOnlyList<string> TimedMethods { get; } = [BatchBackward, Vmap, ExpandedWeights, Loop];

    /// <summary>Python's, PyTorch's and numpy's versions and PyTorch's default thread count; fails with the install
    /// hint without them.</summary>
    public static PyTorchVersions Probe(PyTorchReferenceOptions? options = null)
    {
        options ??= new PyTorchReferenceOptions();
        using var folder = ExchangeFolder.Create(options.KeepExchangeFolder);
        var output = PyTorchScript.Run(options, folder.Path, "versions");
        try
        {
            var versions = JsonSerializer.Deserialize<ExchangeVersions>(output, ExchangeJson.Options)
                ?? throw new JsonException("null");
            return Versions(versions, options);
        }
        catch (JsonException e)
        {
            throw new PyTorchReferenceException(PyTorchReferenceFailure.ScriptFailed,
                $"The PyTorch reference's 'versions' answer is not the expected JSON: {output.Trim()}", e);
        }
    }

    /// <summary>The architecture names the script can build (zoo names and catalogue case names).</summary>
    public static IReadOnlyList<string> Architectures(PyTorchReferenceOptions? options = null)
    {
        options ??= new PyTorchReferenceOptions();
        using var folder = ExchangeFolder.Create(options.KeepExchangeFolder);
        return PyTorchScript.Run(options, folder.Path, "architectures")
            .Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
    }

    /// <summary>
    /// PyTorch's per-sample gradients for <paramref name="problem"/> by every method in <see cref="GradientMethods"/>,
    /// in one script run, built by the problem's <see cref="GradientProblem.Architecture"/> unless the options name
    /// another.
    /// </summary>
    public static PyTorchReferenceResult Compute(GradientProblem problem, PyTorchReferenceOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(problem);
        return Compute(problem.Id, problem.Architecture, problem.Model, problem.Inputs, problem.Targets, problem.Loss,
            options);
    }

    /// <summary>
    /// PyTorch's per-sample gradients for any model the script knows by name.
    /// </summary>
    /// <param name="problemId">Id for messages.</param>
    /// <param name="architecture">The name the script builds the model by (<see cref="GradientCase.Architecture"/>);
    /// <see cref="PyTorchReferenceOptions.Architecture"/> replaces it when set.</param>
    /// <param name="model">The model (float32 or float64; any device): its parameters, buffers, flags and modes are
    /// sent.</param>
    /// <param name="inputs">Inputs <c>[N, ...]</c>.</param>
    /// <param name="targets">Targets <c>[N, ...]</c>.</param>
    /// <param name="loss">The loss: CE, NLL, MSE, L1, or a custom loss the script knows by name.</param>
    /// <param name="options">Python, threads, architecture.</param>
    public static PyTorchReferenceResult Compute(string problemId, string architecture, nn.Module<Tensor, Tensor> model,
        Tensor inputs, Tensor targets, LossFunction loss, PyTorchReferenceOptions? options = null)
    {
        options ??= new PyTorchReferenceOptions();
        TorchRuntime.EnsureLoaded();
        BatchValidator.Validate(model, inputs, targets, loss);
        architecture = options.Architecture ?? architecture;
        using var folder = ExchangeFolder.Create(options.KeepExchangeFolder);
        var request = folder.WriteRequest(problemId, architecture, model, inputs, targets, loss);
        PyTorchScript.Run(options, folder.Path, ["gradients", folder.Path, .. ThreadArguments(options.Threads)]);
        var answer = folder.ReadResult();
        CheckAnswer(answer, request, GradientMethods);

        var methods = new List<PyTorchMethodResult>();
        try
        {
            foreach (var method in answer.Methods)
                methods.Add(ReadMethod(folder, request, method));
        }
        catch
        {
            foreach (var m in methods) m.Gradients?.Dispose();
            throw;
        }
        return new PyTorchReferenceResult(problemId, architecture, Versions(answer.Versions, options), answer.Threads,
            methods);
    }

    /// <summary>
    /// Times PyTorch on a zoo model with <see cref="ZooModel.Case"/>'s weights and batch (seed 7, CE/mean):
    /// the plain batch backward, vmap(grad), ExpandedWeights and the per-sample loop, each the median of
    /// <paramref name="repeats"/> runs after <paramref name="warmUp"/> untimed ones, on <paramref name="threads"/>
    /// PyTorch threads. The figures are data for a caller (<c>bench --peers pytorch</c>); run it on an idle machine.
    /// </summary>
    public static PyTorchTimings Time(ZooModel model, long batchSize, int repeats, int threads,
        ScalarType dtype = ScalarType.Float32,
        int warmUp = 1, PyTorchReferenceOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        using var problem = model.Case(batchSize).Create(dtype);
        return Time(problem, repeats, threads, warmUp, options);
    }

    /// <summary>Times PyTorch on <paramref name="problem"/>; see <see cref="Time(ZooModel, long, int, int, ScalarType,
    /// int, PyTorchReferenceOptions?)"/>.</summary>
    public static PyTorchTimings Time(GradientProblem problem, int repeats, int threads, int warmUp = 1,
        PyTorchReferenceOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(problem);
        ArgumentOutOfRangeException.ThrowIfLessThan(repeats, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(warmUp);
        options = (options ?? new PyTorchReferenceOptions()) with { Threads = threads };
        TorchRuntime.EnsureLoaded();
        BatchValidator.Validate(problem.Model, problem.Inputs, problem.Targets, problem.Loss);
        var architecture = options.Architecture ?? problem.Architecture;
        using var folder = ExchangeFolder.Create(options.KeepExchangeFolder);
        var request = folder.WriteRequest(problem.Id, architecture, problem.Model, problem.Inputs, problem.Targets,
            problem.Loss);
        PyTorchScript.Run(options, folder.Path,
            ["time", folder.Path, .. ThreadArguments(threads), "--repeats", Invariant(repeats), "--warmup",
                Invariant(warmUp)]);
        var answer = folder.ReadResult();
        CheckAnswer(answer, request, TimedMethods);
        var timings = answer.Methods.Select(m => m.Status == "ok"
            ? new PyTorchTiming(m.Name, m.MedianSeconds ?? throw Malformed($"{m.Name} has no median_seconds"),
                m.SecondsPerRepeat ?? [], null)
            : new PyTorchTiming(m.Name, null, [], m.Reason)).ToList();
        return new PyTorchTimings(problem.Id, Versions(answer.Versions, options), answer.Threads,
            ModelInspection.ParameterDType(problem.Model), request.BatchSize, repeats, warmUp, timings);
    }

    private static IEnumerable<string> ThreadArguments(int? threads) =>
        threads is { } n ? ["--threads", Invariant(n)] : [];

    private static string Invariant(int n) => n.ToString(CultureInfo.InvariantCulture);

    private static PyTorchVersions Versions(ExchangeVersions v, PyTorchReferenceOptions options) =>
        new(options.ResolvePython(), v.Python, v.Torch, v.Numpy, v.VmapApi, v.ExpandedWeights, v.Threads);

    // The answer is for this problem and holds exactly the expected methods.
    private static void CheckAnswer(ExchangeResult answer, ExchangeRequest request, IReadOnlyList<string> expected)
    {
        if (answer.Problem != request.Problem || answer.Architecture != request.Architecture)
            throw Malformed($"it answers '{answer.Problem}' ({answer.Architecture}), the request was " +
                $"'{request.Problem}' ({request.Architecture})");
        var names = answer.Methods.Select(m => m.Name).ToList();
        if (!names.SequenceEqual(expected))
            throw Malformed($"it reports methods [{string.Join(", ", names)}], expected " +
                $"[{string.Join(", ", expected)}]");
        foreach (var m in answer.Methods.Where(m => m.Status is not ("ok" or "unsupported")))
            throw Malformed($"method {m.Name} has status '{m.Status}'");
    }

    // One method's gradients, checked parameter by parameter against the request: same names in the same order,
    // shape [N, ...parameter shape], the announced dtype. Any difference is named.
    private static PyTorchMethodResult ReadMethod(ExchangeFolder folder, ExchangeRequest request, ExchangeMethod method)
    {
        var dtype = ElementTypes.GradientTypeNames.Contains(method.DType)
            ? ElementTypes.Parse(method.DType)
            : throw Malformed($"{method.Name} computed in '{method.DType}'");
        var expectedDType = method.Name == LoopFloat64 ? ScalarType.Float64 : ElementTypes.Parse(request.DType);
        if (dtype != expectedDType)
            throw Malformed($"{method.Name} computed in {method.DType}, expected " +
                $"{ExchangeFolder.DTypeName(expectedDType)}");
        if (method.Status == "unsupported")
            return new PyTorchMethodResult(method.Name, dtype, null, method.Reason ?? "(no reason given)");

        var trainable = request.Parameters.Where(p => p.RequiresGrad).ToList();
        var returned = method.Gradients ?? [];
        if (!returned.Select(g => g.Name).SequenceEqual(trainable.Select(p => p.Name)))
            throw new PyTorchReferenceException(PyTorchReferenceFailure.Mismatch,
                $"PyTorch's {method.Name} returned per-sample gradients for " +
                    $"[{string.Join(", ", returned.Select(g => g.Name))}]; the trainable parameters are " +
                    $"[{string.Join(", ", trainable.Select(p => p.Name))}].");

        var gradients = new List<(string, Tensor)>();
        try
        {
            foreach (var (entry, parameter) in returned.Zip(trainable))
            {
                long[] expectedShape = [request.BatchSize, .. parameter.Shape];
                var tensor = folder.ReadResultTensor(entry.File);
                gradients.Add((entry.Name, tensor));
                if (!tensor.shape.SequenceEqual(expectedShape) || tensor.dtype != dtype)
                    throw new PyTorchReferenceException(PyTorchReferenceFailure.Mismatch,
                        $"PyTorch's {method.Name} gradient of '{entry.Name}' is {tensor.dtype} " +
                            $"[{string.Join(", ", tensor.shape)}]; expected {dtype} " +
                            $"[{string.Join(", ", expectedShape)}].");
            }
            return new PyTorchMethodResult(method.Name, dtype,
                new PerSampleGradients(method.Name, request.BatchSize, gradients), null);
        }
        catch
        {
            foreach (var (_, t) in gradients) t.Dispose();
            throw;
        }
    }

    private static PyTorchReferenceException Malformed(string what) =>
        new(PyTorchReferenceFailure.ScriptFailed, $"The PyTorch reference's answer is inconsistent: {what}.");
}
