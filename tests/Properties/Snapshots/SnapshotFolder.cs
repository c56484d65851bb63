using System.Text;
using Snapshooter;
using Snapshooter.Core;
using Snapshooter.Core.Serialization;
using Snapshooter.Xunit3;

namespace PerSampleGrads.Tests.Snapshots;

/// <summary>
/// Snapshooter pointed at the repository's top-level <c>snapshots/</c> folder: files are <c>snapshots/NAME.json</c>
/// (Snapshooter's own file handler always adds a <c>__snapshots__</c> folder below the given path, so this class
/// supplies a handler that does not), and a mismatching result is written to <c>snapshots/__mismatch__/NAME.json</c>
/// for comparison (git ignores <c>__mismatch__/</c>). Everything else (serialisation, JSON comparison, the
/// assertion) is Snapshooter's.
/// </summary>
public static class SnapshotFolder
{
    /// <summary>The repository's <c>snapshots/</c> folder (found by walking up to <c>PerSampleGrads.sln</c>).</summary>
    public static string Path { get; } = System.IO.Path.Combine(Repository, "snapshots");

    /// <summary>The repository's root (the folder holding <c>PerSampleGrads.sln</c>).</summary>
    public static string Repository => RepositoryRoot();

    /// <summary>
    /// Compares <paramref name="result"/>, serialised as JSON, with <c>snapshots/NAME.json</c>. A missing file is
    /// written and the test passes, except under CI (<c>CI=true</c>) or Snapshooter's strict mode
    /// (<c>SNAPSHOOTER_STRICT_MODE=on</c>), where a missing snapshot fails: CI must compare, never record.
    /// </summary>
    public static void Match(object result, string name)
    {
        var fullName = new SnapshotFullName($"{name}.json", Path);
        if (!File.Exists(System.IO.Path.Combine(Path, fullName.Filename)) && Strict)
            Assert.Fail($"No snapshot {fullName.Filename} in {Path}: run the Snapshot tests locally once to record " +
                $"it, review it, and commit it.");
        var serializer = new SnapshotSerializer(new GlobalSnapshotSettingsResolver());
        var files = new FlatFileHandler();
        new SnapshotAssert(serializer, files, new SnapshotEnvironmentCleaner(files),
                new JsonSnapshotComparer(new Xunit3Assert(), serializer), new JsonSnapshotFormatter(serializer))
            .AssertSnapshot(result, fullName, new MatchOptions());
    }

    private static bool Strict =>
        string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase)
        || Environment.GetEnvironmentVariable("SNAPSHOOTER_STRICT_MODE") is "on" or "true";

    private static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory =
            directory.Parent)
            if (File.Exists(System.IO.Path.Combine(directory.FullName, "PerSampleGrads.sln"))) return
                directory.FullName;
        throw new InvalidOperationException($"No PerSampleGrads.sln above {AppContext.BaseDirectory}: the snapshot " +
            $"tests run from the repository's build output.");
    }

    // Snapshooter's SnapshotFileHandler with the folder taken as given (no __snapshots__ below it).
    private sealed class FlatFileHandler : ISnapshotFileHandler
    {
        public string SaveNewSnapshot(SnapshotFullName snapshotFullName, string snapshotData) =>
            Write(snapshotFullName.FolderPath, snapshotFullName.Filename, snapshotData);

        public string SaveMismatchSnapshot(SnapshotFullName snapshotFullName, string snapshotData) =>
            Write(System.IO.Path.Combine(snapshotFullName.FolderPath, FileNames.MismatchFolderName),
                snapshotFullName.Filename, snapshotData);

        public string ReadSnapshot(SnapshotFullName snapshotFullName) =>
            TryReadSnapshot(snapshotFullName, out var data) ? data
                : throw new FileNotFoundException($"Snapshot '{snapshotFullName.Filename}' could not be found.");

        // Snapshooter 1.3.1 declares the out parameter non-nullable; like its own handler, this leaves it null when
        // absent.
        public bool TryReadSnapshot(SnapshotFullName snapshotFullName, out string snapshotData)
        {
            var file = System.IO.Path.Combine(snapshotFullName.FolderPath, snapshotFullName.Filename);
            snapshotData = File.Exists(file) ? File.ReadAllText(file, Encoding.UTF8) : null!;
            return snapshotData is not null;
        }

        public void DeleteSnapshot(SnapshotFullName snapshotFullName) =>
            File.Delete(System.IO.Path.Combine(snapshotFullName.FolderPath, snapshotFullName.Filename));

        public void DeleteSnapshotSubfolder(SnapshotFullName snapshotFullName, string subfolderName)
        {
            var folder = System.IO.Path.Combine(snapshotFullName.FolderPath, subfolderName);
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        }

        private static string Write(string folder, string file, string data)
        {
            Directory.CreateDirectory(folder);
            var path = System.IO.Path.Combine(folder, file);
            File.WriteAllText(path, data, new UTF8Encoding(encoderShouldEmitUTF8Identifier: false));
            return path;
        }
    }
}
