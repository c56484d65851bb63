using System.Globalization;
using System.Text;
using FsCheck;
using FsCheck.Fluent;
using PerSampleGrads.Testing.Specs;
using TorchSharp.Modules;

namespace PerSampleGrads.Testing;

/// <summary>One option value a method may claim, as the label a generated case exercising it carries.</summary>
/// <param name="Label">The label (<see cref="CaseSpec.Exercises"/>): <c>conv2d: axes differ</c>.</param>
/// <param name="Claimed">Whether a method with these claims claims the option.</param>
public sealed record CoverageRow(string Label, Func<MethodClaims, bool> Claimed);

/// <summary>A property suite's generator: what it claims and the float64 and float32 cases it draws.</summary>
/// <param name="Name">The method whose properties draw from it.</param>
/// <param name="Claims">The claims the generators were made for.</param>
public sealed record CoverageColumn(string Name, MethodClaims Claims)
{
    /// <summary>The generators of <see cref="Claims"/>.</summary>
    public CaseGenerators Generators { get; } = CaseGenerators.For(Claims);
}

/// <summary>
/// Which claimed layer options the property generators reach: every option value the engines claim for the layers the
/// generators build, as a table of layer option x method x dtype, each cell the number of generated cases (out of a
/// fixed-seed sample) that exercise it. An empty cell is a claimed option no property ever checks.
/// </summary>
public static class GeneratorCoverage
{
    /// <summary>Cases drawn per generator, spread evenly over FsCheck sizes 0 to 100.</summary>
    public const int Draws = 2000;

    private const ulong Seed = 20261201;

    /// <summary>Every option value the engines claim for the layers and patterns the generators build.</summary>
    public static IReadOnlyList<CoverageRow> Rows { get; } = CreateRows();

    /// <summary>How many of <see cref="Draws"/> cases of <paramref name="generator"/> exercise each label.</summary>
    public static IReadOnlyDictionary<string, int> Count(Gen<CaseSpec> generator)
    {
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        const int sizes = 20;
        for (int step = 0; step < sizes; step++)
        {
            var cases = Gen.Sample(generator, Draws / sizes, new Rnd(Seed + (ulong)step, KitProperties.Gamma),
                step * 100 / (sizes - 1));
            foreach (var spec in cases)
                foreach (var label in spec.Exercises().Distinct())
                    counts[label] = counts.GetValueOrDefault(label) + 1;
        }
        return counts;
    }

    /// <summary>The claimed options no generator of <paramref name="columns"/> reaches, as "option (method,
    /// dtype)".</summary>
    public static IReadOnlyList<string> Gaps(IReadOnlyList<CoverageColumn> columns) =>
    [
        .. from cell in Cells(columns)
           where cell.Claimed && cell.Count == 0
           select $"{cell.Row.Label} ({cell.Column}, {cell.DType})",
    ];

    /// <summary>The table in Markdown: one row per option, one column per method and dtype.</summary>
    public static string Markdown(IReadOnlyList<CoverageColumn> columns)
    {
        var cells = Cells(columns).ToList();
        var headers = columns.SelectMany(c => new[] { $"{c.Name} float64", $"{c.Name} float32" }).ToList();
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"| layer: option | {string.Join(" | ", headers)} |");
        text.AppendLine(CultureInfo.InvariantCulture, $"|---|{string.Concat(headers.Select(_ => "---|"))}");
        foreach (var row in Rows)
        {
            var values = cells.Where(c => c.Row == row)
                .Select(c => !c.Claimed ? "not claimed" : c.Count == 0 ? "**none**"
                    : c.Count.ToString(CultureInfo.InvariantCulture));
            text.AppendLine(CultureInfo.InvariantCulture, $"| {row.Label} | {string.Join(" | ", values)} |");
        }
        return text.ToString();
    }

    private static IEnumerable<(CoverageRow Row, string Column, string DType, bool Claimed, int Count)> Cells(
        IReadOnlyList<CoverageColumn> columns)
    {
        var counts = columns.Select(c => (Column: c,
            Float64: Count(c.Generators.CaseGenerator),
            Float32: Count(c.Generators.Float32CaseGenerator.Select(f => f.Case)))).ToList();
        foreach (var row in Rows)
            foreach (var (column, float64, float32) in counts)
            {
                bool claimed = row.Claimed(column.Claims);
                yield return (row, column.Name, "float64", claimed, float64.GetValueOrDefault(row.Label));
                yield return (row, column.Name, "float32", claimed, float32.GetValueOrDefault(row.Label));
            }
    }

    private static List<CoverageRow> CreateRows()
    {
        var rows = new List<CoverageRow>();
        void Add(string label, Func<MethodClaims, bool> claimed) => rows.Add(new CoverageRow(label, claimed));
        Func<MethodClaims, bool> Layer(Type type) => claims => claims.Claims(type);
        Func<MethodClaims, bool> Pattern(ModelPatterns pattern) => claims => claims.Claims(pattern);

        foreach (var label in new[] { "linear", "linear: 3-d input", "linear: non-square", "linear: no bias" })
            Add(label, Layer(typeof(Linear)));
        Type[] convolutions = [typeof(Conv1d), typeof(Conv2d), typeof(Conv3d)];
        Type[] transposed = [typeof(ConvTranspose1d), typeof(ConvTranspose2d), typeof(ConvTranspose3d)];
        for (int dims = 1; dims <= 3; dims++)
        {
            string layer = $"conv{dims}d";
            var claimed = Layer(convolutions[dims - 1]);
            foreach (var option in GeometryOptions(dims).Concat(["same", "same even", "valid", "padding zeros",
                "padding reflect", "padding replicate", "padding circular"]))
                Add(option.Length == 0 ? layer : $"{layer}: {option}", claimed);
        }
        for (int dims = 1; dims <= 3; dims++)
        {
            string layer = $"convtranspose{dims}d";
            var claimed = Layer(transposed[dims - 1]);
            foreach (var option in GeometryOptions(dims).Concat(["padding zeros", "output padding"]))
                Add(option.Length == 0 ? layer : $"{layer}: {option}", claimed);
        }
        Type[] batchNorms = [typeof(BatchNorm1d), typeof(BatchNorm2d), typeof(BatchNorm3d)];
        Type[] instanceNorms = [typeof(InstanceNorm1d), typeof(InstanceNorm2d), typeof(InstanceNorm3d)];
        for (int dims = 1; dims <= 3; dims++)
        {
            var claimed = Layer(batchNorms[dims - 1]);
            string layer = $"batchnorm{dims}d";
            Add($"{layer}: eval mode", claimed);
            if (dims == 1) Add($"{layer}: features", claimed);
            Add($"{layer}: no affine", claimed);
        }
        for (int dims = 1; dims <= 3; dims++)
        {
            var claimed = Layer(instanceNorms[dims - 1]);
            string layer = $"instancenorm{dims}d";
            Add($"{layer}: affine", claimed);
            Add($"{layer}: no affine", claimed);
            foreach (var tracked in new[] { "tracked", "untracked" })
                foreach (var mode in new[] { "training", "eval" })
                    Add($"{layer}: {tracked} statistics in {mode} mode", claimed);
        }
        Add("groupnorm", Layer(typeof(GroupNorm)));
        Add("groupnorm: one channel per group", Layer(typeof(GroupNorm)));
        Add("groupnorm: several groups of several channels", Layer(typeof(GroupNorm)));
        Add("layernorm", Layer(typeof(LayerNorm)));
        Add("prelu: one slope", Layer(typeof(PReLU)));
        Add("prelu: one slope per channel", Layer(typeof(PReLU)));
        Add("embedding", Layer(typeof(Embedding)));
        Add("embedding: padding_idx", Layer(typeof(Embedding)));
        foreach (var label in new[] { "embeddingbag", "embeddingbag: sum mode", "embeddingbag: mean mode",
            "embeddingbag: per-sample weights", "embeddingbag: padding_idx" })
            Add(label, Layer(typeof(EmbeddingBag)));
        foreach (var (layer, type) in new[] { ("lstm", typeof(LSTM)), ("gru", typeof(GRU)), ("rnn", typeof(RNN)) })
        {
            var options = new[] { "", "several layers", "bidirectional", "sequence-first", "no bias" };
            foreach (var option in type == typeof(RNN) ? [.. options, "relu"] : options)
                Add(option.Length == 0 ? layer : $"{layer}: {option}", Layer(type));
        }
        foreach (var (layer, type) in new[] { ("lstmcell", typeof(LSTMCell)), ("grucell", typeof(GRUCell)),
            ("rnncell", typeof(RNNCell)) })
        {
            Add(layer, Layer(type));
            Add($"{layer}: no bias", Layer(type));
        }
        Add("rnncell: relu", Layer(typeof(RNNCell)));
        foreach (var option in new[] { "", "several heads", "no bias", "add_bias_kv", "add_zero_attn",
            "attention mask" })
            Add(option.Length == 0 ? "multiheadattention" : $"multiheadattention: {option}",
                Layer(typeof(MultiheadAttention)));
        foreach (var (layer, type) in new[] { ("transformerencoderlayer", typeof(TransformerEncoderLayer)),
            ("transformerdecoderlayer", typeof(TransformerDecoderLayer)) })
            foreach (var option in new[] { "", "several heads", "relu", "gelu" })
                Add(option.Length == 0 ? layer : $"{layer}: {option}", Layer(type));
        Add("pattern: residual block", _ => true);
        Add("pattern: module called twice", Pattern(ModelPatterns.WeightSharing));
        Add("pattern: module under two parents", Pattern(ModelPatterns.WeightSharing));
        Add("pattern: tied parameter", claims => claims.Claims(ModelPatterns.TiedParameters)
            && claims.Claims(typeof(Embedding)));
        Add("pattern: sequence-first", Pattern(ModelPatterns.SequenceFirst));
        Add("pattern: shared input", claims => claims.Claims(ModelPatterns.SharedInputs)
            && claims.Claims(typeof(Embedding)));
        foreach (var label in new[] { "loss: class targets", "loss: value targets", "loss: several values per sample",
            "loss: class targets per position", "loss: value targets per position", "batch: N = 1" })
            Add(label, _ => true);
        foreach (var loss in Enum.GetValues<LossKind>())
            foreach (var reduction in new[] { LossReduction.Mean, LossReduction.Sum })
                Add($"loss: {loss}/{reduction}", _ => true);
        return rows;
    }

    private static IEnumerable<string> GeometryOptions(int dims)
    {
        yield return "";
        yield return "stride";
        yield return "dilation";
        yield return "even kernel";
        if (dims > 1) yield return "axes differ";
        yield return "groups";
        yield return "no bias";
    }
}
