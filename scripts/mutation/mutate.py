#!/usr/bin/env python3
"""A small mutation runner for PerSampleGrads.

Why our own: Stryker.NET 5.1.0 (VSTest runner) activates mutants inside the test host process, but xunit v3 test
projects run their tests in a separate executable, so no mutant was ever active: on GradientComparison.cs and
TolerancePolicy.cs it reported 55 of 55 mutants as survived (0 %), mutants that the Checker tests kill here.

What it does: copies the committed tree (git archive HEAD) to a temporary folder, builds the test project once, then
for each mutant applies one textual change to one line of a source file, recompiles only the mutated assembly (the
compiler's own arguments, read once from MSBuild, through the compiler server), copies it next to the tests and runs a
fast test selection with a timeout. A mutant is 'killed' when the selection fails, 'survived' when it passes,
'timeout' when it runs past the limit, 'stillborn' when it does not compile (left out of the score).

Usage (from the repository root):
  python3 scripts/mutation/mutate.py --files src/PerSampleGrads/Checking/GradientComparison.cs --max 20
  python3 scripts/mutation/mutate.py --preset engines --max-per-file 6 --out mutation-results
Results: OUT/results.json and OUT/results.md (every mutant, its line before and after, its status).
"""

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Binary operators and literals, each replaced by a plausible slip. Patterns need spaces around binary operators
# so that generics, lambdas (=>), unary minus and ++ are left alone.
OPERATORS = [
    ("plus-to-minus", r"(?<=\s)\+(?=\s)", "-"),
    ("minus-to-plus", r"(?<=\s)-(?=\s)", "+"),
    ("times-to-divide", r"(?<=\s)\*(?=\s)", "/"),
    ("divide-to-times", r"(?<=\s)/(?=\s)", "*"),
    ("less-to-less-equal", r"(?<=\s)<(?=\s)", "<="),
    ("less-equal-to-less", r"(?<=\s)<=(?=\s)", "<"),
    ("greater-to-greater-equal", r"(?<=\s)>(?=\s)", ">="),
    ("greater-equal-to-greater", r"(?<=\s)>=(?=\s)", ">"),
    ("equal-to-not-equal", r"(?<=\s)==(?=\s)", "!="),
    ("not-equal-to-equal", r"(?<=\s)!=(?=\s)", "=="),
    ("and-to-or", r"(?<=\s)&&(?=\s)", "||"),
    ("or-to-and", r"(?<=\s)\|\|(?=\s)", "&&"),
    ("true-to-false", r"\btrue\b", "false"),
    ("false-to-true", r"\bfalse\b", "true"),
    ("constant-plus-one", r"(?<![\w.])([0-9])(?![\w.])", None),
]

# A statement that only calls something (no declaration, no return, no control flow): dropping it is a mutant.
# (A path such as 'results[j].Item2.select(0, i).copy_' followed by a call or an assignment: 'double x = ...' and
# 'List<int> x = ...' declare, and are left alone.)
CALL_STATEMENT = re.compile(r"^\s*(?!return\b|var\b|throw\b|using\b|if\b|else\b|for\b|foreach\b|while\b|yield\b)"
                            r"[A-Za-z_][\w.\[\]]*\s*(\(|=[^=>]|\+=|-=|\*=)[^;{}]*;\s*$")

# A parameter with a default value in a signature line (`double termMagnitude = 0)`).
DEFAULT_PARAMETER = re.compile(r"\b[\w<>\[\]?]+\s+\w+\s*=\s*(?!\[)[^=;(){}\[]+[,)]")


def is_default_parameter(line):
    """Whether a line declares a parameter's default value; a local declaration of several variables
    (`long n = x.shape[0], l = ...;`) ends with a semicolon and does not."""
    stripped = line.split("//")[0].rstrip()
    return DEFAULT_PARAMETER.search(line) is not None and (not stripped.endswith(";") or "=>" in stripped)

PRESETS = {
    "checker": {
        "files": ["src/PerSampleGrads/Checking/GradientComparison.cs",
                  "src/PerSampleGrads/Checking/TolerancePolicy.cs",
                  "src/PerSampleGrads/Runs/PrecisionDiagnosis.cs"],
        "tests": ["-trait", "Category=Checker"],
    },
    "oracle": {
        "files": ["src/Oracle/PerSampleGradientOracle.cs", "src/Oracle/ModelCopy.cs", "src/Oracle/LossFunction.cs"],
        # One kind of filter only: xunit ANDs -class with -method.
        "tests": ["-method", "PerSampleGrads.Tests.OracleTests.*", "-method", "PerSampleGrads.Tests.OracleCopyTests.*",
                  "-method", "PerSampleGrads.Tests.BadInputTests.*",
                  "-method", "PerSampleGrads.Tests.RealWorldPatternTests.The_audit_*",
                  "-method", "PerSampleGrads.Tests.HookEngineEquivalenceTests."
                             "Agrees_with_the_float64_oracle_and_leaves_the_model_unchanged"],
    },
    "engines": {
        "files": sorted(str(p) for p in Path("src/PerSampleGrads/Maths").glob("*.cs"))
        + sorted(str(p) for p in Path("src/PerSampleGrads/Engines/Hooks/Rules").glob("*.cs"))
        + sorted(str(p) for p in Path("src/PerSampleGrads/Engines/Functional/Layers").glob("*.cs")),
        "tests": ["-method", "PerSampleGrads.Tests.HookEngineEquivalenceTests."
                             "Agrees_with_the_float64_oracle_and_leaves_the_model_unchanged",
                  "-method", "PerSampleGrads.Tests.FunctionalEngineEquivalenceTests."
                             "Agrees_with_the_float64_oracle_and_leaves_the_model_unchanged",
                  # Maths/ also serves the clipping method (ghost norms) and the in-place products of result reuse.
                  "-method", "PerSampleGrads.Tests.ClippingEquivalenceTests."
                             "Norms_and_clipped_sums_agree_with_the_definition_on_the_float64_oracle",
                  "-method", "PerSampleGrads.Tests.ResultReuseTests."
                             "The_in_place_products_write_the_batched_products_into_memory_filled_with_NaN",
                  # The hook engine's rerun route for layers it computes itself (taken with the caller's hooks on
                  # them).
                  "-method", "PerSampleGrads.Tests.RecordingForwardRouteTests.*",
                  # The fallback for modules of other signatures, and its refusals (Maths/PerSampleRerun).
                  "-method", "PerSampleGrads.Tests.SignatureTests.*",
                  "-method", "PerSampleGrads.Tests.FallbackTests.The_fallback_refuses_a_module_that_mixes_the_"
                             "samples_of_a_batch",
                  "-method", "PerSampleGrads.Tests.FallbackTests.The_one_sample_check_bounds_the_gap_relative_to_"
                             "the_outputs_scale",
                  # A Linear layer written in place (LinearRule's branch from 1 MiB).
                  "-method", "PerSampleGrads.Tests.ResultReuseTests.The_hook_engine_writing_in_place_agrees_with_its_"
                             "fresh_result_on_a_wide_linear_layer",
                  # What the recurrent layout's probe accepts and refuses (Maths/RecurrentLayout, RecurrentUnroll).
                  "-method", "PerSampleGrads.Tests.RecurrentUnrollTests.*",
                  # The recurrent layers' libtorch modules kept between calls.
                  "-method", "*.A_call_after_the_weights_changed_uses_the_new_weights",
                  # What the geometry refuses (no engine calls it with another convolution).
                  "-method", "PerSampleGrads.Tests.ConvolutionGeometryTests.*",
                  # The routes Auto does not pick on small cases: every convolution route, every norm route.
                  "-method", "PerSampleGrads.Tests.FunctionalEngineEquivalenceTests."
                             "Every_convolution_route_agrees_with_the_oracle_on_every_convolution_case",
                  "-method", "PerSampleGrads.Tests.ClippingEquivalenceTests."
                             "Every_norm_route_and_both_clipped_sum_routes_agree_in_float64"],
        # Run only for a mutant that the rest leaves alive (see select).
        "deferred": ["-method", "PerSampleGrads.Tests.ResultReuseTests."
                                "The_hook_engine_writing_in_place_gives_bit_for_bit_its_fresh_result_on_resnet18",
                     # The clipping method's cost rule (reads the kernel's size from Maths/).
                     "-method", "PerSampleGrads.Tests.ClippingEquivalenceTests."
                                "The_cost_rule_picks_ghost_norms_for_resnet18s_inner_convolutions_and_materialises_"
                                "its_stem"],
    },
}

# The rest of Engines/: the engines' frames (HookEngine, FunctionalEngine, ClippingMethod), what they accept
# (EngineSupport, the signatures, the probes), the fallback's owners, the clipping method's norm rules. Killed by the
# engines' equivalence and by the tests of refusals, real-world patterns, the fallback and result reuse.
PRESETS["engine-frames"] = {
    "files": sorted(str(p) for p in Path("src/PerSampleGrads/Engines").rglob("*.cs")
                    if str(p) not in PRESETS["engines"]["files"]),
    "tests": PRESETS["engines"]["tests"] + [
        part for name in ("BadInputTests", "RealWorldPatternTests", "FallbackTests",
                          "ResultReuseTests", "ClippingEquivalenceTests")
        for part in ("-method", f"PerSampleGrads.Tests.{name}.*")],
}


def in_string_or_comment(line, position):
    """True when position lies inside a string literal or after // (a rough scan; good enough for one line)."""
    quote = False
    i = 0
    while i < position:
        c = line[i]
        if c == '"' and (i == 0 or line[i - 1] != "\\"):
            quote = not quote
        elif not quote and line.startswith("//", i):
            return True
        i += 1
    return quote


def candidates(path, text):
    """Every (line number, operator, mutated line) of one file."""
    lines = text.split("\n")
    found = []
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if (not stripped or stripped.startswith(("//", "using ", "namespace ", "[", "*", "/*"))
                or "nameof(" in stripped or stripped.startswith(("public ", "private ", "internal ")) and "=>" not in stripped
                and "=" not in stripped):
            continue
        for name, pattern, replacement in OPERATORS:
            for match in re.finditer(pattern, line):
                if in_string_or_comment(line, match.start()):
                    continue
                # String concatenation ('+ $"..."', '"..." +'): not arithmetic, a mutant would not compile.
                after, before = line[match.end():].lstrip(), line[:match.start()].rstrip()
                if name == "plus-to-minus" and (after[:1] in ('"', "$") or before.endswith('"')):
                    continue
                new = str(int(match.group(1)) + 1) if replacement is None else replacement
                found.append((number, name, line[:match.start()] + new + line[match.end():]))
        previous = next((l.strip() for l in reversed(lines[:number - 1]) if l.strip()), "")
        inside_body = previous.endswith((";", "{", "}")) and not stripped.startswith(
            ("public ", "private ", "internal ", "protected ", "static ", "base(", "this(")) and "=>" not in stripped
        if CALL_STATEMENT.match(line) and inside_body:
            indent = line[:len(line) - len(line.lstrip())]
            found.append((number, "drop-statement", indent + "; // mutant: statement dropped"))
    return found


def run(command, cwd, timeout=None, env=None):
    started = time.monotonic()
    try:
        result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
        return result.returncode, result.stdout + result.stderr, time.monotonic() - started
    except subprocess.TimeoutExpired as expired:
        output = (expired.stdout or b"").decode(errors="replace") if isinstance(expired.stdout, bytes) else (expired.stdout or "")
        return None, output, time.monotonic() - started


# The ResNet-18 case takes about half of the engines' selection, and the rows of each test class run in catalogue
# order, so a mutant the small cases kill would still wait behind it in the classes before. The first pass leaves it
# out (PSG_CASES, read by the tests' data) with the preset's deferred tests; only a mutant that survives the first pass
# pays for the whole selection.
CHEAP_FIRST = "-zoo-resnet18"


def select(executable, tests, deferred, binaries, timeout, env):
    """Runs the test selection: (exit code or None on timeout, output, seconds)."""
    code, output, seconds = run([str(executable), "-stopOnFail", *tests], binaries, timeout,
                                dict(env, PSG_CASES=CHEAP_FIRST))
    if code != 0:
        return code, output, seconds
    code, output, more = run([str(executable), "-stopOnFail", *tests, *deferred], binaries,
                             max(1, timeout - seconds), env)
    return code, output, seconds + more


def project_of(path):
    return "src/Oracle/Oracle.csproj" if path.startswith("src/Oracle/") else "src/PerSampleGrads/PerSampleGrads.csproj"


# MSBuild asked for the compiler's arguments without compiling (ProvideCommandLineArgs, SkipCompilerExecution; the
# project file touched first, so that the compilation is not up to date): the target writes the compiler's folder,
# then the arguments, one per line.
ARGUMENTS_TARGET = """<Project>
  <Target Name="PsgWriteCompilerArguments" DependsOnTargets="Compile">
    <WriteLinesToFile File="$(PsgArgumentsFile)" Lines="$(RoslynTargetsPath);@(CscCommandLineArgs)" Overwrite="true" />
  </Target>
</Project>
"""

# Code-quality analyzers produce only warnings; the source generators (LibraryImport, Json, Regex) are kept.
DROPPED_ARGUMENTS = re.compile(r"^/(analyzerconfig:|doc:|refout:|noconfig)|^/analyzer:.*NetAnalyzers")


class LeanCompiler:
    """One project's compilation as MSBuild would run it, minus MSBuild and the code-quality analyzers: the compiler
    server (csc /shared) with a response file. About 1.2 s instead of 5 s for a build of the engines' assembly."""

    def __init__(self, work, project):
        self.folder = (work / project).parent
        targets, arguments = work / "psg-arguments.targets", work / (Path(project).stem + ".arguments")
        targets.write_text(ARGUMENTS_TARGET)
        (work / project).touch()
        code, output, _ = run(["dotnet", "build", project, "-c", "Debug", "--no-restore", "--no-dependencies",
                               "-t:PsgWriteCompilerArguments", "-p:ProvideCommandLineArgs=true",
                               "-p:SkipCompilerExecution=true",
                               f"-p:CustomAfterMicrosoftCommonTargets={targets}", f"-p:PsgArgumentsFile={arguments}"],
                              work)
        if code != 0 or not arguments.exists():
            sys.exit(f"could not read the compiler's arguments for {project}:\n" + output[-3000:])
        roslyn, *lines = arguments.read_text().splitlines()
        self.compiler = Path(roslyn) / "bincore" / "csc"
        # Written beside MSBuild's own output, which later builds (a mutant's callers) still rely on.
        self.output = work / (Path(project).stem + ".mutant") / next(
            Path(line[len("/out:"):]).name for line in lines if line.startswith("/out:"))
        self.output.parent.mkdir(exist_ok=True)
        kept = [f"/out:{self.output}" if line.startswith("/out:") else line
                for line in lines if not DROPPED_ARGUMENTS.match(line)]
        self.response = work / (Path(project).stem + ".rsp")
        self.response.write_text("\n".join(kept) + "\n")

    def compile(self):
        """(exit code, output, seconds); the assembly is at self.output."""
        return run([str(self.compiler), "/shared", "/noconfig", "/nologo", f"@{self.response}"], self.folder)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), help="files and tests of one area")
    parser.add_argument("--files", nargs="*", default=[], help="source files to mutate (repository paths)")
    parser.add_argument("--tests", nargs=argparse.REMAINDER, default=None,
                        help="arguments to the Equivalence test executable (after every other option)")
    parser.add_argument("--max-per-file", type=int, default=0, help="sample at most this many mutants per file")
    parser.add_argument("--max", type=int, default=0, help="sample at most this many mutants in all")
    parser.add_argument("--seed", type=int, default=20, help="seed of the sample")
    parser.add_argument("--timeout", type=int, default=240, help="seconds per mutant's test run")
    parser.add_argument("--out", default="mutation-results", help="folder for results.json and results.md")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy")
    parser.add_argument("--min-score", type=float, default=0,
                        help="exit with status 1 when the score (percent) is below this")
    parser.add_argument("--shard", default="1/1",
                        help="K/M: run every M-th mutant starting at the K-th (M runners side by side, each its own "
                             "--out; --merge joins them)")
    parser.add_argument("--resume", action="store_true",
                        help="keep the mutants already in --out's results.json (same commit) and run the rest")
    parser.add_argument("--merge", nargs="*", default=None, metavar="DIR",
                        help="join the results.json of these folders into --out (no mutant is run)")
    args = parser.parse_args()
    if args.merge is not None:
        merged = [json.loads((Path(d) / "results.json").read_text()) for d in args.merge]
        out = Path(args.out).resolve()
        out.mkdir(parents=True, exist_ok=True)
        results = sorted((r for m in merged for r in m["results"]), key=lambda r: (r["file"], r["line"]))
        score = write(out, results, sorted({f for m in merged for f in m["files"]}), merged[0]["tests"])
        print(f"mutation score {score:.1f}% over {len(results)} mutants: {out / 'results.md'}", flush=True)
        if score < args.min_score:
            sys.exit(f"mutation score {score:.1f}% is below --min-score {args.min_score}")
        return
    shard, shards = (int(part) for part in args.shard.split("/"))

    files = list(args.files) + (PRESETS[args.preset]["files"] if args.preset else [])
    tests = args.tests if args.tests else (PRESETS[args.preset]["tests"] if args.preset else ["-trait", "Category=Checker"])
    deferred = [] if args.tests or not args.preset else PRESETS[args.preset].get("deferred", [])
    if not files:
        parser.error("name --files or a --preset")
    root = Path(subprocess.check_output(["git", "rev-parse", "--show-toplevel"], text=True).strip())

    mutants = []
    rng = random.Random(args.seed)
    for path in files:
        found = [(path, *c) for c in candidates(path, (root / path).read_text())]
        if args.max_per_file and len(found) > args.max_per_file:
            found = rng.sample(found, args.max_per_file)
        mutants.extend(sorted(found, key=lambda m: m[1]))
    if args.max and len(mutants) > args.max:
        mutants = sorted(rng.sample(mutants, args.max), key=lambda m: (m[0], m[1]))
    mutants = mutants[shard - 1::shards]
    print(f"{len(mutants)} mutants in {len(files)} files; tests: {' '.join(tests)}", flush=True)

    work = Path(tempfile.mkdtemp(prefix="psg-mutation-"))
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    try:
        archive = subprocess.Popen(["git", "archive", "HEAD"], cwd=root, stdout=subprocess.PIPE)
        subprocess.run(["tar", "-x", "-C", str(work)], stdin=archive.stdout, check=True)
        archive.wait()
        # One libtorch thread per test run: the selection's tensors are small, so it runs faster than with two (8.7
        # against 9.8 s, 11 against 17 CPU seconds, 2 cores), and shards side by side do not contend.
        env = dict(os.environ, PSG_DTYPE="float64", DOTNET_CLI_TELEMETRY_OPTOUT="1", OMP_NUM_THREADS="1")
        # MSBuild's rebuilds of a default parameter's callers use the compiler server that csc /shared keeps warm.
        build_env = dict(os.environ, UseSharedCompilation="true", DOTNET_CLI_TELEMETRY_OPTOUT="1")
        code, output, seconds = run(["dotnet", "build", "tests/Equivalence/Equivalence.csproj", "-c", "Debug"], work)
        if code != 0:
            sys.exit("the clean copy does not build:\n" + output[-3000:])
        binaries = work / "tests/Equivalence/bin/Debug/net10.0"
        executable = binaries / "Equivalence"
        # The lean compiler builds every mutant; its clean assemblies are the ones the baseline runs, so a difference
        # from MSBuild's would show here, not as mutants killed by the way they were built.
        compilers = {}
        for project in sorted({project_of(path) for path, *_ in mutants}):
            compilers[project] = LeanCompiler(work, project)
            code, output, _ = compilers[project].compile()
            if code != 0:
                sys.exit(f"the lean compiler fails on the clean {project}:\n" + output[-3000:])
            shutil.copy2(compilers[project].output, binaries / compilers[project].output.name)
        code, output, baseline = run([str(executable), "-stopOnFail", *tests, *deferred], binaries, args.timeout, env)
        if code != 0:
            sys.exit("the test selection fails on the clean copy:\n" + output[-3000:])
        # xunit ANDs filters of different kinds (-class with -method): a selection can match nothing, and then every
        # mutant "survives". The oracle preset did, until this check.
        selected = re.search(r"Total: (\d+)", output)
        if not selected or int(selected.group(1)) == 0:
            sys.exit("the test selection runs no test (filters of different kinds are ANDed by xunit):\n"
                     + output[-1000:])
        print(f"clean copy: built in {seconds:.0f} s, selection passes in {baseline:.0f} s", flush=True)
        # The clean assemblies, put back after every mutant: a mutant in one project must not outlive its run (a
        # later mutant in another project would otherwise run beside it).
        clean = {name: (binaries / name).read_bytes() for name in ("PerSampleGrads.dll", "PerSampleGrads.Oracle.dll")}

        results = []
        if args.resume and (out / "results.json").exists():
            results = json.loads((out / "results.json").read_text())["results"]
            done = {(r["file"], r["line"], r["operator"], r["after"]) for r in results}
            mutants = [m for m in mutants if (m[0], m[1], m[2], m[3].strip()) not in done]
            print(f"resumed: {len(results)} mutants kept, {len(mutants)} to run", flush=True)
        for index, (path, number, operator, mutated) in enumerate(mutants, start=1):
            source = work / path
            original = source.read_text()
            lines = original.split("\n")
            before = lines[number - 1]
            lines[number - 1] = mutated
            source.write_text("\n".join(lines))
            project = project_of(path)
            assembly = "PerSampleGrads.Oracle.dll" if "Oracle" in project else "PerSampleGrads.dll"
            # C# copies a parameter's default value into every call site: such a mutant changes nothing unless the
            # callers (the tests) are rebuilt too, and then rebuilt again without it.
            inlined = is_default_parameter(before)
            try:
                code, output, build_seconds = compilers[project].compile()
                if code == 0 and inlined:
                    code, output, _ = run(["dotnet", "build", "tests/Equivalence/Equivalence.csproj", "-c", "Debug",
                                           "--no-restore", "-p:TreatWarningsAsErrors=false"], work, env=build_env)
                if code != 0:
                    status, test_seconds = "stillborn", 0.0
                else:
                    # With its callers rebuilt, MSBuild's copy is already in place.
                    if not inlined:
                        shutil.copy2(compilers[project].output, binaries / assembly)
                    code, output, test_seconds = select(executable, tests, deferred, binaries, args.timeout, env)
                    status = "timeout" if code is None else "survived" if code == 0 else "killed"
            finally:
                source.write_text(original)
                if inlined:
                    run(["dotnet", "build", "tests/Equivalence/Equivalence.csproj", "-c", "Debug", "--no-restore",
                         "-p:TreatWarningsAsErrors=false"], work)
                for name, content in clean.items():
                    (binaries / name).write_bytes(content)
            results.append({"file": path, "line": number, "operator": operator, "before": before.strip(),
                            "after": mutated.strip(), "status": status,
                            "buildSeconds": round(build_seconds, 1), "testSeconds": round(test_seconds, 1)})
            print(f"[{index}/{len(mutants)}] {status:9} {path}:{number} {operator} ({test_seconds:.0f} s)", flush=True)
            write(out, results, files, tests + deferred)
        score = write(out, results, files, tests + deferred)
        print(f"mutation score {score:.1f}%: {out / 'results.md'}", flush=True)
        if score < args.min_score:
            sys.exit(f"mutation score {score:.1f}% is below --min-score {args.min_score}")
    finally:
        # Side-by-side shards share the compiler server: the last one to finish may stop it, none before.
        if shards == 1:
            run(["dotnet", "build-server", "shutdown"], root)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def write(out, results, files, tests):
    counted = [r for r in results if r["status"] != "stillborn"]
    detected = sum(r["status"] in ("killed", "timeout") for r in counted)
    score = 100.0 * detected / len(counted) if counted else 0.0
    summary = {"files": files, "tests": tests, "mutants": len(results), "stillborn": len(results) - len(counted),
               "killed": sum(r["status"] == "killed" for r in counted),
               "timeout": sum(r["status"] == "timeout" for r in counted),
               "survived": sum(r["status"] == "survived" for r in counted), "score": round(score, 1),
               "results": results}
    (out / "results.json").write_text(json.dumps(summary, indent=2))
    lines = [f"Mutation score {score:.1f}% ({detected} of {len(counted)} detected; "
             f"{summary['stillborn']} did not compile). Tests: `{' '.join(tests)}`.", "",
             "| status | file:line | operator | before | after |", "|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['status']} | {r['file']}:{r['line']} | {r['operator']} | `{r['before']}` | `{r['after']}` |")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    return score


if __name__ == "__main__":
    main()
