using System.Globalization;
using System.Text.Json;

namespace PerSampleGrads.Cli.Snapshots;

/// <summary>One change between a committed snapshot and its pending replacement, in words.</summary>
/// <param name="Path">Where in the snapshot: <c>Parameters[layer1.0.conv1.weight].PerSampleGradientNorms</c>,
/// <c>MaxRelativeErrorAgainstTheOracle.Hooks</c>.</param>
/// <param name="Description">What changed, old -> new.</param>
internal sealed record SnapshotChange(string Path, string Description);

/// <summary>A pending snapshot (<c>snapshots/__mismatch__/NAME.json</c>) against the committed one.</summary>
/// <param name="Name">The snapshot's name (file name without <c>.json</c>).</param>
/// <param name="IsNew">True when no committed snapshot of that name exists.</param>
/// <param name="Changes">Every difference, in document order.</param>
internal sealed record SnapshotDifference(string Name, bool IsNew, IReadOnlyList<SnapshotChange> Changes);

/// <summary>
/// Compares two snapshot documents field by field. Arrays of objects with a <c>Name</c> are matched by name (a
/// parameter added, removed, or changed); arrays of numbers (each sample's gradient norm) are summarised per array:
/// how many entries changed, and each change old -> new with its relative size, the largest first.
/// </summary>
internal static class SnapshotDiff
{
    /// <summary>Changed numbers listed one by one per array; beyond this, the rest are counted.</summary>
    private const int ListedNumbers = 4;

    public static SnapshotDifference Compare(string name, string? committedJson, string pendingJson)
    {
        using var pending = JsonDocument.Parse(pendingJson);
        if (committedJson is null) return new SnapshotDifference(name, true, []);
        using var committed = JsonDocument.Parse(committedJson);
        var changes = new List<SnapshotChange>();
        Walk("", committed.RootElement, pending.RootElement, changes);
        return new SnapshotDifference(name, false, changes);
    }

    private static void Walk(string path, JsonElement old, JsonElement @new, List<SnapshotChange> changes)
    {
        if (old.ValueKind == JsonValueKind.Object && @new.ValueKind == JsonValueKind.Object)
        {
            var oldFields = old.EnumerateObject().ToDictionary(p => p.Name, p => p.Value);
            var newFields = @new.EnumerateObject().ToDictionary(p => p.Name, p => p.Value);
            foreach (var (field, value) in oldFields)
            {
                var child = Join(path, field);
                if (newFields.TryGetValue(field, out var replacement)) Walk(child, value, replacement, changes);
                else changes.Add(new SnapshotChange(child, "removed"));
            }
            foreach (var field in newFields.Keys.Where(f => !oldFields.ContainsKey(f)))
                changes.Add(new SnapshotChange(Join(path, field), $"added: {Short(newFields[field])}"));
            return;
        }
        if (old.ValueKind == JsonValueKind.Array && @new.ValueKind == JsonValueKind.Array)
        {
            if (IsNamedObjects(old) && IsNamedObjects(@new)) WalkNamed(path, old, @new, changes);
            else if (IsNumbers(old) && IsNumbers(@new)) CompareNumbers(path, old, @new, changes);
            else if (old.GetRawText() != @new.GetRawText())
                changes.Add(new SnapshotChange(path, $"{Short(old)} -> {Short(@new)}"));
            return;
        }
        if (!JsonElement.DeepEquals(old, @new))
            changes.Add(new SnapshotChange(path, $"{Short(old)} -> {Short(@new)}"));
    }

    private static void WalkNamed(string path, JsonElement old, JsonElement @new, List<SnapshotChange> changes)
    {
        var oldItems = old.EnumerateArray().ToDictionary(NameOf, e => e);
        var newItems = @new.EnumerateArray().ToDictionary(NameOf, e => e);
        foreach (var (name, item) in oldItems)
        {
            var child = $"{path}[{name}]";
            if (newItems.TryGetValue(name, out var replacement)) Walk(child, item, replacement, changes);
            else changes.Add(new SnapshotChange(child, "removed"));
        }
        foreach (var name in newItems.Keys.Where(n => !oldItems.ContainsKey(n)))
            changes.Add(new SnapshotChange($"{path}[{name}]", "added"));
        var oldOrder = oldItems.Keys.Where(newItems.ContainsKey).ToList();
        var newOrder = newItems.Keys.Where(oldItems.ContainsKey).ToList();
        if (!oldOrder.SequenceEqual(newOrder))
            changes.Add(new SnapshotChange(path, $"order changed: {string.Join(", ", newOrder)}"));
    }

    private static void CompareNumbers(string path, JsonElement old, JsonElement @new, List<SnapshotChange> changes)
    {
        var a = old.EnumerateArray().Select(e => e.GetDouble()).ToArray();
        var b = @new.EnumerateArray().Select(e => e.GetDouble()).ToArray();
        if (a.Length != b.Length)
        {
            changes.Add(new SnapshotChange(path, $"{a.Length} values -> {b.Length} values"));
            return;
        }
        var changed = Enumerable.Range(0, a.Length).Where(i => a[i] != b[i])
            .Select(i => (Index: i, Old: a[i], New: b[i], Relative: Relative(a[i], b[i])))
            .OrderByDescending(c => c.Relative).ToList();
        if (changed.Count == 0) return;
        // Snapshots hold one gradient norm per sample: name the entry as the sample it is.
        string entry = path.EndsWith("PerSampleGradientNorms", StringComparison.Ordinal) ? "sample " : "entry ";
        var listed = changed.Take(ListedNumbers).Select(c =>
            $"{entry}{c.Index}: {Number(c.Old)} -> {Number(c.New)} ({Change(c.Old, c.New)})");
        var rest = changed.Count > ListedNumbers ? $", and {changed.Count - ListedNumbers} more" : "";
        changes.Add(new SnapshotChange(path, $"{changed.Count} of {a.Length} changed, largest relative change first: "
            + $"{string.Join(", ", listed)}{rest}"));
    }

    private static string Change(double old, double @new) => old == 0
        ? "from 0"
        : "rel. " + ((@new - old) / Math.Abs(old)).ToString("+0.0#e0;-0.0#e0", CultureInfo.InvariantCulture);

    private static double Relative(double old, double @new) =>
        old == 0 ? (@new == 0 ? 0 : double.PositiveInfinity) : Math.Abs(@new - old) / Math.Abs(old);

    private static bool IsNamedObjects(JsonElement array) =>
        array.EnumerateArray().All(e => e.ValueKind == JsonValueKind.Object && e.TryGetProperty("Name", out var n)
                                        && n.ValueKind == JsonValueKind.String)
        && array.EnumerateArray().Select(NameOf).Distinct().Count() == array.GetArrayLength();

    private static bool IsNumbers(JsonElement array) =>
        array.EnumerateArray().All(e => e.ValueKind == JsonValueKind.Number);

    private static string NameOf(JsonElement item) => item.GetProperty("Name").GetString()!;

    private static string Join(string path, string field) => path.Length == 0 ? field : $"{path}.{field}";

    private static string Number(double value) => value.ToString("G6", CultureInfo.InvariantCulture);

    private static string Short(JsonElement value)
    {
        var text = value.ValueKind == JsonValueKind.String ? value.GetString()! : value.GetRawText();
        text = string.Join(' ',
            text.Split((char[])['\n', '\r'], StringSplitOptions.RemoveEmptyEntries).Select(l => l.Trim()));
        return text.Length <= 80 ? text : text[..77] + "...";
    }
}
