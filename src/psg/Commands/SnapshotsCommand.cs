using System.CommandLine;
using System.Text;
using PerSampleGrads.Cli.Runtime;
using PerSampleGrads.Cli.Snapshots;

namespace PerSampleGrads.Cli.Commands;

/// <summary>
/// <c>psg snapshots diff</c> and <c>psg snapshots accept</c>: review and accept the pending snapshot changes that a
/// failing <c>Category=Snapshot</c> test wrote to <c>snapshots/__mismatch__/</c>.
/// </summary>
internal static class SnapshotsCommand
{
    private const string CommandName = "snapshots";
    private const string MismatchFolder = "__mismatch__";

    public static bool IsSnapshotsCommand(Command command) =>
        command.Name == CommandName || command.Parents.OfType<Command>().Any(p => p.Name == CommandName);

    public static Command Create()
    {
        var diff = new Command("diff",
            "Show each pending snapshot change in words (which parameters' per-sample norms or error buckets "
                + "changed, old -> new). Exit code 0: nothing pending, 1: changes pending.");
        var markdown = new Option<bool>("--markdown") { Description = "Write Markdown (for a CI job summary) instead "
            + "of plain text." };
        var folder = Folder();
        diff.Options.Add(markdown);
        diff.Options.Add(folder);
        diff.SetAction(parse => Diff(Resolve(parse.GetValue(folder)), parse.GetValue(markdown)));

        var accept = new Command("accept",
            "Accept pending snapshot changes: move snapshots/__mismatch__/NAME.json over snapshots/NAME.json. Review "
                + "with 'git diff snapshots/' and commit.");
        var names = new Argument<string[]>("names") { Description = "Snapshots to accept (default: every pending "
            + "one).", Arity = ArgumentArity.ZeroOrMore };
        var acceptFolder = Folder();
        accept.Arguments.Add(names);
        accept.Options.Add(acceptFolder);
        accept.SetAction(parse => Accept(Resolve(parse.GetValue(acceptFolder)), parse.GetValue(names) ?? []));

        return new Command(CommandName, "Review and accept pending numeric snapshot changes "
            + "(snapshots/__mismatch__/).") { diff, accept };
    }

    private static Option<DirectoryInfo?> Folder() => new("--folder")
    {
        Description = "The snapshots folder (default: snapshots/ of the repository holding the current directory).",
    };

    private static DirectoryInfo Resolve(DirectoryInfo? given)
    {
        if (given is not null)
            return given.Exists ? given : throw new UsageException($"--folder {given.FullName} does not exist.");
        for (var directory = new DirectoryInfo(Environment.CurrentDirectory); directory is not null;
             directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "PerSampleGrads.sln")))
                return new DirectoryInfo(Path.Combine(directory.FullName, "snapshots"));
        }
        throw new UsageException(
            $"No PerSampleGrads.sln in {Environment.CurrentDirectory} or above: run from the repository, or give "
                + $"--folder.");
    }

    private static List<FileInfo> Pending(DirectoryInfo folder)
    {
        var mismatch = new DirectoryInfo(Path.Combine(folder.FullName, MismatchFolder));
        return mismatch.Exists ? [.. mismatch.GetFiles("*.json").OrderBy(f => f.Name, StringComparer.Ordinal)] : [];
    }

    private static int Diff(DirectoryInfo folder, bool markdown)
    {
        var pending = Pending(folder);
        var differences = pending.Select(file =>
        {
            var committed = Path.Combine(folder.FullName, file.Name);
            var name = Path.GetFileNameWithoutExtension(file.Name);
            try
            {
                var committedText = File.Exists(committed) ? File.ReadAllText(committed) : null;
                return SnapshotDiff.Compare(name, committedText, File.ReadAllText(file.FullName));
            }
            catch (System.Text.Json.JsonException e)
            {
                throw new UsageException($"{file.FullName} or {committed} is not valid JSON: {e.Message}");
            }
        }).ToList();
        Console.Out.Write(markdown ? Markdown(folder, differences) : Text(folder, differences));
        return differences.Count == 0 ? ExitCodes.Agree : ExitCodes.Disagree;
    }

    private static string Text(DirectoryInfo folder, List<SnapshotDifference> differences)
    {
        var text = new StringBuilder();
        if (differences.Count == 0)
            return $"No pending snapshot changes in "
                + $"{Path.Combine(folder.FullName, MismatchFolder)}.{Environment.NewLine}";
        foreach (var d in differences)
        {
            text.AppendLine(d.IsNew ? $"{d.Name}: new snapshot (no committed {d.Name}.json)"
                : d.Changes.Count == 0 ? $"{d.Name}: same numbers, formatting only"
                : $"{d.Name}: {d.Changes.Count} change(s)");
            foreach (var c in d.Changes) text.AppendLine($"  {c.Path}: {c.Description}");
        }
        text.AppendLine($"{differences.Count} pending snapshot(s). Accept with 'psg snapshots accept' (or name "
            + $"them), review 'git diff snapshots/', commit.");
        return text.ToString();
    }

    private static string Markdown(DirectoryInfo folder, List<SnapshotDifference> differences)
    {
        var md = new StringBuilder();
        md.AppendLine("## Numeric snapshots");
        md.AppendLine();
        if (differences.Count == 0)
        {
            md.AppendLine($"No pending snapshot changes in `{MismatchFolder}/`.");
            return md.ToString();
        }
        md.AppendLine($"{differences.Count} snapshot(s) differ from the committed ones (the new files are in the "
            + $"`snapshots-mismatch` artifact).");
        foreach (var d in differences)
        {
            md.AppendLine();
            md.AppendLine($"### `{d.Name}`");
            md.AppendLine();
            if (d.IsNew)
            {
                md.AppendLine("New snapshot: nothing committed under this name.");
                continue;
            }
            if (d.Changes.Count == 0)
            {
                md.AppendLine("Same numbers; only the formatting differs.");
                continue;
            }
            md.AppendLine("| where | change (old -> new) |");
            md.AppendLine("|---|---|");
            foreach (var c in d.Changes) md.AppendLine($"| `{c.Path}` | "
                + $"{c.Description.Replace("|", "\\|", StringComparison.Ordinal)} |");
        }
        md.AppendLine();
        md.AppendLine("If the change is deliberate: run the Snapshot tests locally, `psg snapshots accept`, review "
            + "`git diff snapshots/`, commit.");
        return md.ToString();
    }

    private static string NameOf(FileInfo file) => Path.GetFileNameWithoutExtension(file.Name);

    private static int Accept(DirectoryInfo folder, string[] names)
    {
        var pending = Pending(folder);
        var wanted = names.Select(n => n.EndsWith(".json", StringComparison.Ordinal) ? n[..^5] : n).ToList();
        var unknown = wanted.Where(n => pending.All(f => NameOf(f) != n)).ToList();
        if (unknown.Count > 0)
            throw new UsageException(
                $"No pending snapshot named {string.Join(", ", unknown)}; pending: "
                + $"{(pending.Count == 0 ? "none" : string.Join(", ", pending.Select(NameOf)))}.");
        var chosen = wanted.Count == 0 ? pending : pending.Where(f => wanted.Contains(NameOf(f))).ToList();
        if (chosen.Count == 0)
        {
            Console.Out.WriteLine($"No pending snapshot changes in {Path.Combine(folder.FullName, MismatchFolder)}.");
            return ExitCodes.Agree;
        }
        foreach (var file in chosen)
        {
            var target = Path.Combine(folder.FullName, file.Name);
            File.Move(file.FullName, target, overwrite: true);
            Console.Out.WriteLine($"accepted {Path.GetFileNameWithoutExtension(file.Name)} -> {target}");
        }
        var mismatch = Path.Combine(folder.FullName, MismatchFolder);
        if (Directory.Exists(mismatch) && !Directory.EnumerateFileSystemEntries(mismatch).Any())
            Directory.Delete(mismatch);
        Console.Out.WriteLine($"Review with 'git diff "
            + $"{Path.GetRelativePath(Environment.CurrentDirectory, folder.FullName)}' and commit.");
        return ExitCodes.Agree;
    }
}
