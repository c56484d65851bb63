using System.Reflection;
using System.Text.RegularExpressions;

namespace PerSampleGrads.Tests;

/// <summary>
/// The dependency rules of docs/architecture.md, checked on the assemblies' references (by reflection) and on the
/// source files of src/PerSampleGrads (using directives and qualified names, absolute or relative to the file's
/// namespace), where each folder is one namespace; and the line length of .editorconfig in every C# file.
/// </summary>
[Trait("Category", "Architecture")]
public sealed partial class ArchitectureTests
{
    // What each folder of src/PerSampleGrads may use besides itself, its sub-folders and the oracle assembly.
    // A folder's parent namespace (Engines for Engines/Hooks) is allowed as well: C# resolves it without a using.
    private static readonly Dictionary<string, string[]> MayUse = new()
    {
        ["Checking"] = [],
        ["Maths"] = ["Checking"],
        ["Engines"] = ["Maths", "Checking", "Engines.Probing"],
        ["Engines.Probing"] = ["Maths", "Checking"],
        ["Engines.Hooks"] = ["Maths", "Checking", "Engines.Probing"],
        ["Engines.Functional"] = ["Maths", "Checking", "Engines.Probing"],
        // The clipping method builds on the hook engine's capture (one forward with hooks).
        ["Engines.Clipping"] = ["Maths", "Checking", "Engines.Probing", "Engines.Hooks"],
        ["Conversion"] = [],
        ["Runtime"] = [],
        ["Zoo"] = [],
        ["Interop"] = ["Zoo", "Runtime"],
        ["Runs"] = ["Checking", "Maths", "Engines", "Engines.Hooks", "Engines.Functional",
            "Engines.Clipping", "Engines.Probing", "Conversion", "Runtime", "Zoo", "Interop"],
        ["Benchmarking"] = ["Checking", "Maths", "Engines", "Engines.Hooks", "Engines.Functional",
            "Engines.Clipping", "Engines.Probing", "Conversion", "Runtime", "Zoo", "Interop", "Runs"],
    };

    private static readonly string[] EngineParts = ["Hooks", "Functional", "Clipping", "Probing"];

    private const int MaxLineLength = 120;

    private static string? Repository { get; } = RepositoryRoot();

    [Fact]
    public void The_oracle_assembly_references_no_assembly_of_this_project()
    {
        var oracle = typeof(Oracle.PerSampleGradientOracle).Assembly;
        var ours = oracle.GetReferencedAssemblies().Select(a => a.Name ?? "")
            .Where(name => name.StartsWith("PerSampleGrads", StringComparison.Ordinal) || name == "psg").ToList();
        Assert.True(ours.Count == 0, $"{oracle.GetName().Name} references {string.Join(", ", ours)}: the oracle is "
            + "the ground truth and may depend on TorchSharp only.");
    }

    [Fact]
    public void The_library_references_the_oracle_and_neither_the_test_kit_the_case_catalogue_nor_the_command_line()
    {
        var library = typeof(Engines.Hooks.HookEngine).Assembly;
        var names = library.GetReferencedAssemblies().Select(a => a.Name ?? "").ToList();
        Assert.Contains("PerSampleGrads.Oracle", names);
        Assert.DoesNotContain("PerSampleGrads.Testing", names);
        Assert.DoesNotContain("PerSampleGrads.Cases", names);
        Assert.DoesNotContain("psg", names);
    }

    [Fact]
    public void The_case_catalogue_is_not_in_the_library_and_references_neither_the_test_kit_nor_the_command_line()
    {
        var catalogue = typeof(Cases.CaseCatalogue).Assembly;
        Assert.NotEqual(typeof(Engines.Hooks.HookEngine).Assembly, catalogue);
        var names = catalogue.GetReferencedAssemblies().Select(a => a.Name ?? "").ToList();
        Assert.DoesNotContain("PerSampleGrads.Testing", names);
        Assert.DoesNotContain("psg", names);
    }

    [Fact]
    public void No_type_of_the_shipped_library_carries_a_planted_bug()
    {
        // Planted bugs reach the engines through their public seams (tests/TestSupport/PlantedBugs.cs), never
        // through a switch inside a production type.
        const BindingFlags everything = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance
            | BindingFlags.Static | BindingFlags.DeclaredOnly;
        var library = typeof(Engines.Hooks.HookEngine).Assembly;
        var planted = library.GetTypes()
            .SelectMany(t => t.GetMembers(everything).Select(m => (Type: t, Name: m.Name, Of: MemberType(m)))
                .Append((Type: t, Name: t.Name, Of: t)))
            .Where(m => PlantedBugName().IsMatch(m.Name) || (m.Of is not null && PlantedBugName().IsMatch(m.Of.Name)))
            .Select(m => $"{m.Type.FullName}.{m.Name}").Distinct().ToList();
        Assert.True(planted.Count == 0, "Planted-bug members in the shipped library: " + string.Join(", ", planted));
    }

    private static Type? MemberType(MemberInfo member) => member switch
    {
        FieldInfo f => f.FieldType,
        PropertyInfo p => p.PropertyType,
        _ => null,
    };

    [Fact]
    public void Every_library_file_sits_in_the_namespace_of_its_folder()
    {
        var wrong = LibraryFiles().Where(f => f.Namespace != f.FolderNamespace)
            .Select(f => $"{f.Path}: namespace {f.Namespace}, folder {f.FolderNamespace}").ToList();
        Assert.True(wrong.Count == 0, string.Join("\n", wrong));
    }

    [Fact]
    public void Every_library_folder_uses_only_the_layers_below_it()
    {
        var broken = new List<string>();
        foreach (var file in LibraryFiles())
        {
            string own = LayerOf(file.FolderNamespace);
            if (!MayUse.TryGetValue(own, out var allowed))
            {
                broken.Add($"{file.Path}: folder '{own}' has no row in {nameof(MayUse)} (docs/architecture.md)");
                continue;
            }
            foreach (var used in UsedLayers(file).Distinct())
                if (used != own && !allowed.Contains(used) && !own.StartsWith(used + ".", StringComparison.Ordinal))
                    broken.Add($"{file.Path} ({own}) uses {used}");
        }
        Assert.True(broken.Count == 0, "Dependencies against docs/architecture.md:\n" + string.Join("\n", broken));
    }

    [Fact]
    public void The_functional_and_hook_engines_never_mention_each_other()
    {
        var mentions = LibraryFiles()
            .Where(f => (LayerOf(f.FolderNamespace) == "Engines.Functional" && HooksMention().IsMatch(f.Text))
                || (LayerOf(f.FolderNamespace) == "Engines.Hooks" && FunctionalMention().IsMatch(f.Text)))
            .Select(f => f.Path).ToList();
        Assert.True(mentions.Count == 0, "Engine files naming the other engine's namespace: "
            + string.Join(", ", mentions));
    }

    [Fact]
    public void Every_source_line_is_at_most_120_characters()
    {
        if (Repository is null)
            Assert.Skip($"No PerSampleGrads.sln above {AppContext.BaseDirectory}: no source tree to read.");
        var tooLong = new[] { "src", "tests" }
            .SelectMany(top => Directory.EnumerateFiles(Path.Combine(Repository, top), "*.cs",
                SearchOption.AllDirectories))
            .Where(path => !IsBuildOutput(path))
            .SelectMany(path => File.ReadLines(path).Select((line, index) => (path, line, index)))
            .Where(entry => entry.line.Length > MaxLineLength)
            .Select(entry => $"{Path.GetRelativePath(Repository, entry.path)}:{entry.index + 1} "
                + $"({entry.line.Length} characters)")
            .ToList();
        Assert.True(tooLong.Count == 0, $"Lines over {MaxLineLength} characters (.editorconfig):\n"
            + string.Join("\n", tooLong));
    }

    [Fact]
    public void The_readme_layout_names_every_project_and_every_library_folder()
    {
        if (Repository is null)
            Assert.Skip($"No PerSampleGrads.sln above {AppContext.BaseDirectory}: no source tree to read.");
        var readme = File.ReadAllText(Path.Combine(Repository, "README.md"));
        int start = readme.IndexOf("## Layout", StringComparison.Ordinal);
        Assert.True(start >= 0, "README.md has no '## Layout' section.");
        int end = readme.IndexOf("\n## ", start + 1, StringComparison.Ordinal);
        var layout = end < 0 ? readme[start..] : readme[start..end];
        static IEnumerable<string> Folders(string path) => Directory.EnumerateDirectories(path)
            .Select(Path.GetFileName).OfType<string>().Where(name => name is not ("bin" or "obj"));
        var expected = Folders(Path.Combine(Repository, "src")).Select(name => $"src/{name}/")
            .Concat(Folders(Path.Combine(Repository, "tests")).Select(name => $"tests/{name}/"))
            .Concat(Folders(Path.Combine(Repository, "src", "PerSampleGrads")).Select(name => $"{name}/"))
            .Concat(Folders(Path.Combine(Repository, "src", "PerSampleGrads", "Engines"))
                .Select(name => $"Engines/{name}"));
        var missing = expected.Where(folder => !layout.Contains(folder, StringComparison.Ordinal)).ToList();
        Assert.True(missing.Count == 0, $"README.md's layout does not name: {string.Join(", ", missing)}");
    }

    // The layer a namespace belongs to: its first segment, or two for the engines' parts (Engines.Hooks.Rules ->
    // Engines.Hooks).
    private static string LayerOf(string relativeNamespace)
    {
        var parts = relativeNamespace.Split('.');
        return parts.Length > 1 && parts[0] == "Engines" && EngineParts.Contains(parts[1])
            ? $"Engines.{parts[1]}" : parts[0];
    }

    private static IEnumerable<string> UsedLayers(LibraryFile file)
    {
        string code = WithoutLineComments(file.Text);
        foreach (Match match in AbsoluteName().Matches(code))
        {
            string name = match.Groups[1].Value;
            if (MayUse.ContainsKey(LayerOf(name))) yield return LayerOf(name);
        }
        foreach (Match match in RelativeName().Matches(code))
        {
            string first = match.Groups[1].Value;
            string rest = match.Groups[2].Value;
            if (first == "Engines") yield return LayerOf($"Engines.{rest}");
            else if (MayUse.ContainsKey(first)) yield return first;
            else if (EngineParts.Contains(first) && file.FolderNamespace.StartsWith("Engines",
                StringComparison.Ordinal))
                yield return $"Engines.{first}";
        }
    }

    // Plain // comments are prose; /// documentation keeps its cref references, which the compiler resolves.
    private static string WithoutLineComments(string text) => PlainComment().Replace(text, "");

    private static List<LibraryFile> LibraryFiles()
    {
        if (Repository is null)
            Assert.Skip($"No PerSampleGrads.sln above {AppContext.BaseDirectory}: the dependency rules read the "
                + "source tree, which a published bundle does not have.");
        string root = Path.Combine(Repository, "src", "PerSampleGrads");
        return Directory.EnumerateFiles(root, "*.cs", SearchOption.AllDirectories)
            .Where(path => !IsBuildOutput(path))
            .Select(path =>
            {
                string text = File.ReadAllText(path);
                string folder = Path.GetRelativePath(root, Path.GetDirectoryName(path)!).Replace('/', '.');
                string ns = FileNamespace().Match(text).Groups[1].Value;
                string relative = ns.StartsWith("PerSampleGrads.", StringComparison.Ordinal)
                    ? ns["PerSampleGrads.".Length..] : ns;
                return new LibraryFile(Path.GetRelativePath(Repository, path), relative, folder, text);
            })
            .ToList();
    }

    private static bool IsBuildOutput(string path) =>
        path.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
        || path.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}", StringComparison.Ordinal);

    private static string? RepositoryRoot()
    {
        for (var folder = new DirectoryInfo(AppContext.BaseDirectory); folder is not null; folder = folder.Parent)
            if (File.Exists(Path.Combine(folder.FullName, "PerSampleGrads.sln"))) return folder.FullName;
        return null;
    }

    private sealed record LibraryFile(string Path, string Namespace, string FolderNamespace, string Text);

    [GeneratedRegex(@"(?i)(planted|mutant|\bbug\b|^_bug)")]
    private static partial Regex PlantedBugName();

    [GeneratedRegex(@"^namespace\s+([\w.]+)\s*;", RegexOptions.Multiline)]
    private static partial Regex FileNamespace();

    [GeneratedRegex(@"\bPerSampleGrads\.((?:[A-Z]\w*)(?:\.[A-Z]\w*)*)")]
    private static partial Regex AbsoluteName();

    // A name qualified relative to an enclosing namespace: Engines.Hooks.HookEngine, Checking.TolerancePolicy.
    [GeneratedRegex(@"(?<![\w.])([A-Z]\w*)\.([A-Z]\w*)")]
    private static partial Regex RelativeName();

    [GeneratedRegex(@"(?<!/)//(?!/).*$", RegexOptions.Multiline)]
    private static partial Regex PlainComment();

    [GeneratedRegex(@"Engines\.Hooks|(?<![\w.])Hooks\.[A-Z]")]
    private static partial Regex HooksMention();

    [GeneratedRegex(@"Engines\.Functional|(?<![\w.])Functional\.[A-Z]")]
    private static partial Regex FunctionalMention();
}
