using System.Text.Json;
using PerSampleGrads.Cases;
using PerSampleGrads.Interop;
using PerSampleGrads.Zoo;
using static TorchSharp.torch;

namespace PerSampleGrads.Tests;

/// <summary>
/// The exchange and the ways the PyTorch reference fails that need no PyTorch: what the request describes, Python
/// discovery, and every failure of the script turned into one clear message.
/// </summary>
[Trait("Category", "Interop")]
public sealed class PyTorchExchangeTests
{
    public PyTorchExchangeTests() => TestSettings.RequireTorch();

    [Fact]
    public void Every_case_carries_its_architecture_and_the_problem_passes_it_on()
    {
        Assert.All(CaseCatalogue.Layers,
            c => Assert.Equal(GradientCase.IdOf(c.Architecture, c.BatchSize, c.Loss), c.Id));
        Assert.All(CaseCatalogue.Zoo, c => Assert.Contains(c.Architecture, ModelZoo.All.Select(m => m.Name)));
        Assert.Equal("resnet18-gn", ModelZoo.ResNet18GroupNorm.Case(2).Architecture);
        using var problem = CaseCatalogue.Get("custom-softmargin-B4-softmargin-sum").Create(ScalarType.Float32);
        Assert.Equal("custom-softmargin", problem.Architecture);
    }

    [Fact]
    public void The_request_names_every_parameter_and_buffer_with_its_shape_and_flag()
    {
        using var problem = CaseCatalogue.Get("frozen-weight-bias-only-B3-ce-mean").Create(ScalarType.Float64);
        using var folder = ExchangeFolder.Create(keep: false);

        folder.WriteRequest(problem.Id, "frozen-weight-bias-only", problem.Model, problem.Inputs, problem.Targets,
            problem.Loss);

        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder.Path, "request.json")));
        var root = json.RootElement;
        Assert.Equal("float64", root.GetProperty("dtype").GetString());
        Assert.Equal(3, root.GetProperty("batch_size").GetInt64());
        Assert.Equal("CE", root.GetProperty("loss").GetProperty("name").GetString());
        Assert.Equal("mean", root.GetProperty("loss").GetProperty("reduction").GetString());
        var parameters = root.GetProperty("parameters").EnumerateArray().ToList();
        Assert.Equal(problem.Model.named_parameters().Select(p => p.name),
            parameters.Select(p => p.GetProperty("name").GetString()));
        Assert.Equal(["0.bias", "1.bias", "3.bias"], parameters.Where(p
            => p.GetProperty("requires_grad").GetBoolean()).Select(p => p.GetProperty("name").GetString()));
        Assert.Equal([4L, 3, 3, 3], parameters[0].GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()));
        foreach (var p in parameters)
        {
            using var written = Npy.Read(Path.Combine(folder.Path, p.GetProperty("file").GetString()!));
            var parameter = problem.Model.get_parameter(p.GetProperty("name").GetString()!)!;
            Assert.True(written.equal(parameter).all().item<bool>());
        }
        using var inputs = Npy.Read(Path.Combine(folder.Path,
            root.GetProperty("inputs").GetProperty("file").GetString()!));
        Assert.True(inputs.equal(problem.Inputs).all().item<bool>());
        Assert.Empty(root.GetProperty("training_modules").EnumerateArray());
    }

    [Fact]
    public void Buffers_and_modules_in_training_mode_are_sent()
    {
        using var problem = CaseCatalogue.Get("instancenorm2d-running-stats-B3-ce-mean").Create(ScalarType.Float32);
        problem.Model.named_modules().Single(m => m.name == "1").module.train();
        using var folder = ExchangeFolder.Create(keep: false);

        folder.WriteRequest(problem.Id, "x", problem.Model, problem.Inputs, problem.Targets, problem.Loss);

        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder.Path, "request.json")));
        var buffers = json.RootElement.GetProperty("buffers").EnumerateArray().Select(b
            => b.GetProperty("name").GetString()).ToList();
        Assert.Equal(problem.Model.named_buffers().Select(b => b.name), buffers);
        Assert.Contains("1.running_mean", buffers);
        Assert.Equal(["1"], json.RootElement.GetProperty("training_modules").EnumerateArray().Select(m
            => m.GetString()));
    }

    [Fact]
    public void The_exchange_folder_is_removed_afterwards_also_when_the_run_fails()
    {
        using var problem = CaseCatalogue.Get("linear-2d-B5-ce-mean").Create(ScalarType.Float32);
        var before = ExchangeFolders();

        using var fake = new FakePython("exit 1");
        Assert.Throws<PyTorchReferenceException>(() => PyTorchReference.Compute(problem,
            new PyTorchReferenceOptions { Python = fake.Path }));

        Assert.Subset(before, ExchangeFolders());
    }

    [Fact]
    public void A_missing_Python_fails_with_the_install_hint()
    {
        using var problem = CaseCatalogue.Get("linear-2d-B5-ce-mean").Create(ScalarType.Float32);
        var missing = Path.Combine(Path.GetTempPath(), "psg-no-such-python", "python3");

        var error = Assert.Throws<PyTorchReferenceException>(() =>
            PyTorchReference.Compute(problem, new PyTorchReferenceOptions { Python = missing }));

        Assert.Equal(PyTorchReferenceFailure.PythonUnavailable, error.Failure);
        Assert.Contains(missing, error.Message, StringComparison.Ordinal);
        Assert.Contains("apt-get install --no-install-recommends python3-torch", error.Message,
            StringComparison.Ordinal);
        Assert.Contains("PSG_PYTHON", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_failing_script_is_reported_with_its_exit_status_and_output()
    {
        using var problem = CaseCatalogue.Get("linear-2d-B5-ce-mean").Create(ScalarType.Float32);

        using var fake = new FakePython("echo 'Traceback (most recent call last):' >&2; echo 'RuntimeError: planted' " +
            ">&2; exit 1");
        var error = Assert.Throws<PyTorchReferenceException>(() => PyTorchReference.Compute(problem,
            new PyTorchReferenceOptions { Python = fake.Path }));

        Assert.Equal(PyTorchReferenceFailure.ScriptFailed, error.Failure);
        Assert.Contains("status 1", error.Message, StringComparison.Ordinal);
        Assert.Contains("RuntimeError: planted", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Bad_input_reported_by_the_script_becomes_a_mismatch_with_its_reason()
    {
        using var problem = CaseCatalogue.Get("linear-2d-B5-ce-mean").Create(ScalarType.Float32);

        using var fake = new FakePython("echo \"pytorch_reference: parameter '0.weight': shape [9]\" >&2; exit 2");
        var error = Assert.Throws<PyTorchReferenceException>(() => PyTorchReference.Compute(problem,
            new PyTorchReferenceOptions { Python = fake.Path }));

        Assert.Equal(PyTorchReferenceFailure.Mismatch, error.Failure);
        Assert.Equal("parameter '0.weight': shape [9]", error.Message);
    }

    [Fact]
    public void A_script_that_does_not_finish_is_stopped()
    {
        using var problem = CaseCatalogue.Get("linear-2d-B5-ce-mean").Create(ScalarType.Float32);

        using var fake = new FakePython("exec sleep 60");
        var error = Assert.Throws<PyTorchReferenceException>(() => PyTorchReference.Compute(problem,
            new PyTorchReferenceOptions { Python = fake.Path, Timeout = TimeSpan.FromSeconds(1) }));

        Assert.Equal(PyTorchReferenceFailure.ScriptFailed, error.Failure);
        Assert.Contains("did not finish within 1 s", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_answer_without_a_result_file_is_a_failure_not_an_empty_result()
    {
        using var problem = CaseCatalogue.Get("linear-2d-B5-ce-mean").Create(ScalarType.Float32);

        using var fake = new FakePython("exit 0");

        var error = Assert.Throws<PyTorchReferenceException>(() =>
            PyTorchReference.Compute(problem, new PyTorchReferenceOptions { Python = fake.Path }));

        Assert.Equal(PyTorchReferenceFailure.ScriptFailed, error.Failure);
        Assert.Contains("wrote no", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_options_Python_comes_before_PSG_PYTHON_and_the_default()
    {
        Assert.Equal("/opt/py/bin/python3", new PyTorchReferenceOptions
            { Python = "/opt/py/bin/python3" }.ResolvePython());
        var configured = Environment.GetEnvironmentVariable(PyTorchReferenceOptions.PythonVariable);
        var expected = string.IsNullOrWhiteSpace(configured) ? PyTorchReferenceOptions.DefaultPython
            : configured.Trim();
        Assert.Equal(expected, new PyTorchReferenceOptions().ResolvePython());
    }

    private static HashSet<string> ExchangeFolders() =>
        Directory.EnumerateDirectories(Path.GetTempPath(), "psg-pytorch-*").ToHashSet();
}

/// <summary>
/// What needs PyTorch itself: differences between the sides are named, every catalogue architecture is known to the
/// script, and the timing entry point answers.
/// </summary>
[Trait("Category", "PyTorchParity")]
public sealed class PyTorchReferenceTests
{
    [Fact]
    public void Versions_name_PyTorch_numpy_and_the_vmap_api()
    {
        var versions = PyTorchRequirement.Require();
        Assert.False(string.IsNullOrWhiteSpace(versions.Torch));
        Assert.False(string.IsNullOrWhiteSpace(versions.Numpy));
        Assert.NotNull(versions.VmapApi);
        Assert.True(versions.DefaultThreads >= 1);
    }

    [Fact]
    public void A_Python_without_torch_and_numpy_fails_with_the_install_hint()
    {
        PyTorchRequirement.Require();
        // The real package under the same Python with numpy and torch blocked (None in sys.modules makes importing
        // them fail). The fake receives "-B -m pytorch_reference versions"; the package is run as __main__, as -m
        // does, with its own argv.
        const string blocked = "import sys, runpy; sys.modules['numpy'] = None; sys.modules['torch'] = None; " +
            "sys.argv = sys.argv[3:]; runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)";
        using var fake = new FakePython($"exec {new PyTorchReferenceOptions().ResolvePython()} -c \"{blocked}\" " +
            $"\"$@\"");

        var error = Assert.Throws<PyTorchReferenceException>(()
            => PyTorchReference.Probe(new PyTorchReferenceOptions { Python = fake.Path }));

        Assert.Equal(PyTorchReferenceFailure.PythonUnavailable, error.Failure);
        Assert.Contains("missing Python module", error.Message, StringComparison.Ordinal);
        Assert.Contains("apt-get install --no-install-recommends python3-torch", error.Message,
            StringComparison.Ordinal);
    }

    [Fact]
    public void Every_zoo_model_and_catalogue_case_is_known_to_the_script()
    {
        PyTorchRequirement.Require();
        var known = PyTorchReference.Architectures().ToHashSet();
        var needed = CaseCatalogue.All.Select(c => c.Architecture).Concat(ModelZoo.All.Select(m => m.Name)).Distinct();
        var unknown = needed.Where(n => !known.Contains(n)).ToList();
        Assert.True(unknown.Count == 0, $"tools/pytorch_reference cannot build: {string.Join(", ", unknown)}");
    }

    [Fact]
    public void A_parameter_of_another_shape_is_named_with_both_shapes()
    {
        PyTorchRequirement.Require();
        using var problem = CaseCatalogue.Get("linear-2d-B5-ce-mean").Create(ScalarType.Float32);

        var error = Assert.Throws<PyTorchReferenceException>(() =>
            PyTorchReference.Compute(problem, new PyTorchReferenceOptions { Architecture = "linear-3d" }));

        Assert.Equal(PyTorchReferenceFailure.Mismatch, error.Failure);
        Assert.Contains("parameter '0.weight': shape [3, 5] in PyTorch's 'linear-3d', [4, 6] in the exchange",
            error.Message, StringComparison.Ordinal);
        Assert.Contains("parameter '0.bias': shape [3] in PyTorch's 'linear-3d', [4] in the exchange", error.Message,
            StringComparison.Ordinal);
    }

    [Fact]
    public void Missing_and_unexpected_parameters_are_all_named()
    {
        PyTorchRequirement.Require();
        using var problem = CaseCatalogue.Get("shared-linear-twice-B4-ce-mean").Create(ScalarType.Float32);

        var error = Assert.Throws<PyTorchReferenceException>(() =>
            PyTorchReference.Compute(problem, new PyTorchReferenceOptions { Architecture = "unused-branch" }));

        Assert.Equal(PyTorchReferenceFailure.Mismatch, error.Failure);
        foreach (var name in new[] { "used.weight", "used.bias", "unused.weight", "unused.bias" })
            Assert.Contains($"parameter '{name}' (shape [", error.Message, StringComparison.Ordinal);
        foreach (var name in new[] { "shared.weight", "shared.bias", "head.weight", "head.bias" })
            Assert.Contains($"parameter '{name}' (shape [", error.Message, StringComparison.Ordinal);
        Assert.Contains("is missing from the exchange", error.Message, StringComparison.Ordinal);
        Assert.Contains("is not in PyTorch's 'unused-branch'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_unknown_architecture_is_refused_with_the_known_names()
    {
        PyTorchRequirement.Require();
        using var problem = CaseCatalogue.Get("linear-2d-B5-ce-mean").Create(ScalarType.Float32);

        var error = Assert.Throws<PyTorchReferenceException>(() =>
            PyTorchReference.Compute(problem, new PyTorchReferenceOptions { Architecture = "no-such-net" }));

        Assert.Equal(PyTorchReferenceFailure.Mismatch, error.Failure);
        Assert.Contains("architecture 'no-such-net' is not known", error.Message, StringComparison.Ordinal);
        Assert.Contains("resnet18-gn", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_custom_loss_the_script_does_not_know_is_named()
    {
        PyTorchRequirement.Require();
        using var problem = CaseCatalogue.Get("custom-softmargin-B4-softmargin-mean").Create(ScalarType.Float32);
        var mystery = LossFunction.PerSample("mystery", (o, t) => (o - t).square().sum(1));

        var error = Assert.Throws<PyTorchReferenceException>(() =>
            PyTorchReference.Compute(problem.Id, problem.Architecture, problem.Model, problem.Inputs, problem.Targets,
                mystery));

        Assert.Equal(PyTorchReferenceFailure.Mismatch, error.Failure);
        Assert.Contains("custom loss 'mystery' is not known", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_unsupported_method_says_why_when_asked_for()
    {
        PyTorchRequirement.Require();
        using var problem = CaseCatalogue.Get("embedding-pad0-B5-ce-mean").Create(ScalarType.Float32);
        using var result = PyTorchReference.Compute(problem);
        if (result.Methods.Single(m => m.Method == PyTorchReference.ExpandedWeights).Supported)
            Assert.Skip($"PyTorch {result.Versions.Torch}'s ExpandedWeights handles padding_idx: nothing unsupported " +
                $"to ask for.");

        var error = Assert.Throws<PyTorchReferenceException>(() => result[PyTorchReference.ExpandedWeights]);

        Assert.Equal(PyTorchReferenceFailure.MethodUnavailable, error.Failure);
        Assert.Contains($"PyTorch {result.Versions.Torch}", error.Message, StringComparison.Ordinal);
        Assert.Contains("padding_idx", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_timing_entry_point_gives_a_median_per_method_on_the_threads_asked_for()
    {
        PyTorchRequirement.Require();

        var timings = PyTorchReference.Time(ModelZoo.Mlp, batchSize: 4, repeats: 3, threads: 1);

        Assert.Equal(1, timings.Threads);
        Assert.Equal(ScalarType.Float32, timings.DType);
        Assert.Equal(4, timings.BatchSize);
        Assert.Equal(PyTorchReference.TimedMethods, timings.Methods.Select(m => m.Method));
        foreach (var method in timings.Methods)
        {
            Assert.Null(method.UnsupportedReason);
            Assert.Equal(3, method.Seconds.Count);
            Assert.True(method.MedianSeconds > 0);
            Assert.Equal(method.Seconds.Order().ElementAt(1), method.MedianSeconds);
        }
    }
}

/// <summary>
/// An executable shell script standing in for Python (it receives "-B -m pytorch_reference" and the arguments); deleted
/// on dispose.
/// </summary>
internal sealed class FakePython : IDisposable
{
    public FakePython(string body)
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"psg-fake-python-{Guid.NewGuid():N}");
        File.WriteAllText(Path, $"#!/bin/sh\n{body}\n");
        if (!OperatingSystem.IsWindows())
            File.SetUnixFileMode(Path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
    }

    public string Path { get; }

    public void Dispose() => File.Delete(Path);
}
