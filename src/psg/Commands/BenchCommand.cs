using PerSampleGrads.Engines;
using System.CommandLine;
using System.Globalization;
using PerSampleGrads.Benchmarking;
using PerSampleGrads.Cli.Reports;
using PerSampleGrads.Cli.Runtime;
using PerSampleGrads.Cases;
using PerSampleGrads.Runs;
using PerSampleGrads.Interop;
using PerSampleGrads.Zoo;
using Spectre.Console;

namespace PerSampleGrads.Cli.Commands;

/// <summary><c>psg bench</c>: plain backward, the engines and the oracle timed on the same workload, with
/// ratios.</summary>
internal static class BenchCommand
{
    private static readonly string[] Methods = [.. BenchMethod.All.Select(m => m.Name)];
    private static readonly string[] DefaultMethods = [.. BenchMethod.All
        .Where(m => m.Variant is EngineCall.Fresh or EngineCall.Reuse).Select(m => m.Name)];

    public static Command Create()
    {
        var workload = new WorkloadOptions(ModelZoo.SmallCnn.Name);
        var batchSizes = new Option<string>("--batch-sizes", "-n")
            { Description = "Batch sizes, comma-separated.", DefaultValueFactory = _ => "32" };
        var sweep = new Option<bool>("--sweep") { Description =
            "Sweep N over 16, 32, 64, 128, 256 so that cost growth with N shows." };
        var preset = new Option<string?>("--preset") { Description =
            "seed: the seed benchmark's workload (resnet18-gn, N = 128, float32, TF32 off, CUDA)." }
            .AcceptOnlyFromAmong("seed");
        var repeats = new Option<int>("--repeats", "-r") { Description = "Timed repeats per contender (interleaved).",
            DefaultValueFactory = _ => 7 };
        var warmUp = new Option<int>("--warmup") { Description = "Untimed calls per contender first (at least; the " +
            "warm-up goes on to 40 calls or 2 s per contender, so that .NET's JIT has optimised the managed code).",
            DefaultValueFactory = _ => 2 };
        var methods = new Option<string>("--methods")
        {
            Description = $"Contenders, comma-separated: {string.Join(", ", Methods)} (plain = one batched "
                + "forward and backward, the denominator of the ratios; floor = plain plus writing N x P numbers into "
                + "memory already touched; +reuse = the engine writing into its previous result; clipping = norms "
                + $"and clipped sums, C = {BenchWorkload.ClipBound}; +audit = the engine auditing one sample; +probe "
                + "= the engine's sample-separation probe run on every call).",
            DefaultValueFactory = _ => string.Join(",", DefaultMethods),
        };
        var chunkSize = new Option<int?>("--chunk-size") { Description =
            "Chunk size of the functional engine (bounds its memory; default: the whole batch)." };
        var peers = new Option<string?>("--peers")
        {
            Description = "pytorch: also time PyTorch's plain backward, vmap(grad), ExpandedWeights and loop on the " +
                "same workload with the same thread count (CPU).",
        }.AcceptOnlyFromAmong("pytorch");
        var json = new Option<FileInfo?>("--json") { Description = "Also write the figures as JSON to this file." };
        var baseline = new Option<FileInfo?>("--baseline")
        {
            Description = "Compare with a committed 'bench --json' file of the same workload: a verdict per "
                + "contender (faster, same, slower) from a two-sided Mann-Whitney U test on the repeats (p < 0.05) "
                + "and a minimum change of the median (--min-effect); exit code 1 when one is slower.",
        };
        var minEffect = new Option<double>("--min-effect")
        {
            Description = "With --baseline: the smallest change of the median that counts, as a fraction (0.10 = 10% "
                + "slower, or 1/1.1 as fast).",
            DefaultValueFactory = _ => 0.10,
        };

        var clock = new Option<string>("--clock")
        {
            Description = "wall: elapsed time (default); cpu: the process's CPU time, all threads and page faults " +
                "included (about threads x wall time; with --threads 1 hardly inflated by other processes on a " +
                "shared machine; Linux CPU only).",
            DefaultValueFactory = _ => "wall",
        }.AcceptOnlyFromAmong("wall", "cpu");

        var command = new Command("bench", "Time plain batch backward, each engine and the oracle on the same " +
            "workload (median of interleaved repeats, device synchronised).")
        {
            batchSizes, sweep, preset, repeats, warmUp, methods, chunkSize, peers, json, baseline, minEffect, clock,
        };
        workload.AddTo(command);
        command.SetAction(parse =>
        {
            bool seedPreset = parse.GetValue(preset) == "seed";
            bool explicitSizes = parse.GetResult(batchSizes) is { Implicit: false };
            if (parse.GetValue(sweep) && explicitSizes)
                throw new UsageException("--sweep times N = 16, 32, 64, 128, 256; give either --sweep or "
                    + "--batch-sizes, not both.");
            var sizes = parse.GetValue(sweep) ? [16, 32, 64, 128, 256]
                : seedPreset && !explicitSizes ? [128]
                : ParseSizes(parse.GetValue(batchSizes)!);
            var zoo = seedPreset && parse.GetResult(workload.Model) is not { Implicit: false }
                ? ModelZoo.ResNet18GroupNorm : null;
            var deviceName = seedPreset && parse.GetResult(workload.Device) is not { Implicit: false } ? "cuda" : null;
            int r = parse.GetValue(repeats), w = parse.GetValue(warmUp);
            if (r < 1 || w < 0) throw new UsageException("--repeats must be at least 1 and --warmup at least 0.");
            var template = workload.Settings(parse, sizes[0], EngineId.PerSampleEngines, zoo, deviceName);
            var chunk = parse.GetValue(chunkSize);
            if (chunk is < 1) throw new UsageException($"--chunk-size must be at least 1, got {chunk}.");
            bool withPyTorch = parse.GetValue(peers) == "pytorch";
            if (withPyTorch && template.Device.type != TorchSharp.DeviceType.CPU)
                throw new UsageException("--peers pytorch runs PyTorch on the CPU (the reference script has no CUDA "
                    + "path): use it with --device cpu.");
            if (withPyTorch) Preflight.RequirePython(new PyTorchReferenceOptions());
            var contenders = Choices.ParseList(parse.GetValue(methods)!, Methods, "method")
                .Select(BenchMethod.Parse).ToList();
            double effect = parse.GetValue(minEffect);
            if (!double.IsFinite(effect) || effect < 0 || effect >= 10)
                throw new UsageException($"--min-effect is a fraction from 0 to 10 (0.10 = 10%), got {effect}.");
            var jsonFile = parse.GetValue(json);
            if (jsonFile is not null) Preflight.RequireWritableFile(jsonFile, "--json");
            var reference = parse.GetValue(baseline) is { } baselineFile
                ? BenchBaseline.Load(baselineFile, template, sizes)
                : null;
            workload.ApplyToProcess(parse);
            ResultMemory.RequireForBench(template, sizes.Max());
            var criteria = new BaselineCriteria(MinimumEffect: effect);
            var benchClock = parse.GetValue(clock) == "cpu" ? BenchClock.ProcessCpu : BenchClock.Wall;
            return Run(template, sizes, contenders, w, r, chunk, withPyTorch, jsonFile, reference, criteria,
                benchClock);
        });
        return command;
    }

    private static long[] ParseSizes(string text)
    {
        var parts = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var sizes = parts.Select(p => long.TryParse(p, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n)
            ? n : -1).ToArray();
        if (sizes.Length == 0 || sizes.Any(n => n < 1))
            throw new UsageException($"--batch-sizes takes positive whole numbers, comma-separated; got '{text}'.");
        return sizes;
    }

    private static int Run(CompareSettings template, long[] sizes, IReadOnlyList<BenchMethod> methods, int warmUp,
        int repeats, int? chunkSize, bool withPyTorch, FileInfo? json, BenchBaseline? baseline,
            BaselineCriteria criteria,
        BenchClock clock)
    {
        PerSampleGrads.BatchValidator.RequireAvailable(template.Device);
        var machine = MachineInfo.Describe(template.Device);
        AnsiConsole.MarkupLine($"[bold]bench[/] {Markup.Escape(template.Model.Name)} " +
            $"{Markup.Escape(template.DescribeArithmeticAndLoss())}" +
            $"{(chunkSize is { } c ? $", functional chunk size {c}" : "")}; " +
            $"{warmUp} warm-up + {repeats} interleaved repeats; {Markup.Escape(machine)}");
        var results = new List<BenchReport.SizeResult>();
        var verdicts = new List<BaselineResult>();
        foreach (var n in sizes)
        {
            var settings = template with { BatchSize = n };
            List<BenchTiming> timings = null!;
            IReadOnlyDictionary<string, double>? phases = null;
            Quiet.Status($"N = {n}: warming up", status =>
            {
                using var workload = new BenchWorkload(settings, chunkSize);
                timings = BenchmarkRunner.Measure(workload.Contenders(methods), settings.Device, warmUp, repeats,
                    progress: (name, round) => status?.Status($"N = {n}: {name}, repeat {round + 1}/{repeats}"),
                        clock: clock);
                if (methods.Any(m => m.Engine == EngineId.Clipping)) phases = workload.ClippingPhases();
            });
            PyTorchTimings? peers = null;
            if (withPyTorch)
            {
                Quiet.Status($"N = {n}: PyTorch", _ =>
                {
                    using var model = CompareRun.Build(settings, settings.DType);
                    var (x, y) = CompareRun.Batch(settings, settings.DType);
                    using var problem = new GradientProblem($"zoo-{settings.Model.Name}-B{n}",
                        settings.Model.Name, model, x, y, settings.Loss, () => settings.Model.Build(settings.Seed));
                    peers = PyTorchReference.Time(problem, repeats, TorchSharp.torch.get_num_threads(), warmUp,
                        new PyTorchReferenceOptions { Timeout = TimeSpan.FromHours(2) });
                });
            }
            results.Add(new BenchReport.SizeResult(n, timings, peers, phases));
            AnsiConsole.Write(Table(settings, timings));
            if (clock == BenchClock.ProcessCpu) AnsiConsole.MarkupLine("Times are the process's CPU time (all " +
                "threads), not wall time.");
            if (phases is not null)
                AnsiConsole.MarkupLine(Markup.Escape("clipping, one call by phase: "
                    + string.Join(", ", phases.Select(p => $"{p.Key} {CompareCommand.Ms(p.Value)}"))));
            if (peers is not null) AnsiConsole.Write(PeersTable(peers, timings));
            if (baseline is not null)
            {
                var compared = baseline.Compare(n, timings, criteria);
                verdicts.AddRange(compared);
                AnsiConsole.Write(BaselineTable(settings, compared, criteria));
            }
        }
        if (json is not null)
        {
            BenchReport.Write(json, template, machine + (clock == BenchClock.ProcessCpu
                ? "; times are process CPU time (all threads)" : ""),
                warmUp, repeats, chunkSize, results);
            AnsiConsole.MarkupLine($"Figures: {Markup.Escape(json.FullName)}");
        }
        if (baseline is null) return ExitCodes.Agree;
        return Conclude(baseline, machine, verdicts, criteria);
    }

    private static int Conclude(BenchBaseline baseline, string machine, List<BaselineResult> verdicts,
        BaselineCriteria criteria)
    {
        if (baseline.Machine != machine)
            AnsiConsole.MarkupLine($"[yellow]Note:[/] the baseline was recorded on "
                + $"{Markup.Escape(baseline.Machine)}; this run is on {Markup.Escape(machine)}. Times compare only "
                + $"on the same machine and thread count.");
        var undetectable = verdicts.Where(v => !v.Detectable).Select(v => v.Contender).Distinct().ToList();
        if (undetectable.Count > 0)
            AnsiConsole.MarkupLine($"[yellow]Note:[/] too few repeats for the test to reach p < "
                + $"{criteria.SignificanceLevel.ToString(CultureInfo.InvariantCulture)} for "
                + $"{Markup.Escape(string.Join(", ", undetectable))}: use more --repeats.");
        var slower = verdicts.Where(v => v.Verdict == BaselineVerdict.Slower).ToList();
        if (slower.Count == 0)
        {
            AnsiConsole.MarkupLine($"[green]No contender is slower than the baseline[/] "
                + $"{Markup.Escape(baseline.Path)}.");
            return ExitCodes.Agree;
        }
        AnsiConsole.MarkupLine($"[red]Slower than the baseline:[/] "
            + $"{Markup.Escape(string.Join(", ", slower.Select(v => $"{v.Contender} ({Ratio(v)})")))}.");
        return ExitCodes.Disagree;
    }

    private static string Ratio(BaselineResult v) => v.Ratio.ToString("0.00", CultureInfo.InvariantCulture) + "x";

    private static Table BaselineTable(CompareSettings settings, List<BaselineResult> verdicts,
        BaselineCriteria criteria)
    {
        var table = new Table()
            .Title(Markup.Escape($"against the baseline, N = {settings.BatchSize} (Mann-Whitney U, two-sided p < "
                + $"{criteria.SignificanceLevel.ToString(CultureInfo.InvariantCulture)}, median change of at least "
                + $"{criteria.MinimumEffect.ToString("0%", CultureInfo.InvariantCulture)})"))
            .AddColumns("contender", "baseline median", "median", "ratio", "p-value", "verdict");
        foreach (var v in verdicts)
        {
            table.AddRow(
                Markup.Escape(v.Contender), CompareCommand.Ms(v.BaselineMedianMs), CompareCommand.Ms(v.CurrentMedianMs),
                v.Ratio.ToString("0.00", CultureInfo.InvariantCulture) + "x",
                v.Test.PValue.ToString("0.0000", CultureInfo.InvariantCulture),
                v.Verdict switch
                {
                    BaselineVerdict.Slower => "[red]slower[/]",
                    BaselineVerdict.Faster => "[green]faster[/]",
                    _ => "same",
                });
        }
        return table;
    }

    private static Table PeersTable(PyTorchTimings peers, List<BenchTiming> ours)
    {
        var plain = ours.FirstOrDefault(t => t.Name == BenchWorkload.PlainBackward);
        double? theirPlain = peers.Methods.FirstOrDefault(m => m.Method ==
            PyTorchReference.BatchBackward)?.MedianSeconds;
        var table = new Table().Title(Markup.Escape($"PyTorch on the same workload: {peers.Versions}, " +
            $"{peers.Threads} threads"))
            .AddColumns("contender", "median", "× our plain backward", "× PyTorch plain backward");
        foreach (var m in peers.Methods)
        {
            if (m.MedianSeconds is not { } seconds)
            {
                table.AddRow(Markup.Escape(m.Method), $"[yellow]unsupported[/]: " +
                    $"{Markup.Escape(m.UnsupportedReason ?? "")}", "-", "-");
                continue;
            }
            double ms = seconds * 1000;
            table.AddRow(Markup.Escape(m.Method), CompareCommand.Ms(ms),
                plain is null ? "-" : (ms / plain.Median).ToString("0.00", CultureInfo.InvariantCulture),
                theirPlain is { } p ? (seconds / p).ToString("0.00", CultureInfo.InvariantCulture) : "-");
        }
        return table;
    }

    private static Table Table(CompareSettings settings, List<BenchTiming> timings)
    {
        var plain = timings.FirstOrDefault(t => t.Name == BenchWorkload.PlainBackward);
        var floor = timings.FirstOrDefault(t => t.Name == BenchWorkload.WriteFloor);
        var table = new Table().Title($"{settings.Model.Name}, N = {settings.BatchSize}")
            .AddColumns("contender", "median", "min", "max", "spread (IQR)", "× plain backward", "× write floor",
                "peak memory");
        foreach (var t in timings)
        {
            table.AddRow(
                Markup.Escape(t.Name), CompareCommand.Ms(t.Median), CompareCommand.Ms(t.Min), CompareCommand.Ms(t.Max),
                t.RelativeSpread.ToString("0%", CultureInfo.InvariantCulture),
                plain is null ? "-" : (t.Median / plain.Median).ToString("0.00", CultureInfo.InvariantCulture),
                floor is null ? "-" : (t.Median / floor.Median).ToString("0.00", CultureInfo.InvariantCulture),
                t.PeakBytes is { } b ? $"{b / 1048576.0:0.0} MiB" : PeakMemory.NotMeasuredReason(settings.Device));
        }
        return table;
    }
}
