#!/usr/bin/env bash
# CI: the packages work outside the repository. Packs the library, the oracle, the case catalogue, the test kit and the
# psg tool into a temporary folder (a CI-only version, so no stale copy in a NuGet cache can stand in for it); installs
# psg from it into a temporary tool path and runs `psg compare`; builds and runs the kit sample (samples/KitSample)
# from the packages; and has a fresh `dotnet new console` project add the library package and compute per-sample
# gradients.
# Packages restore into a temporary folder, with the machine's NuGet cache as a read-only fallback (TorchSharp and
# libtorch come from there, or from nuget.org).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)

prefix=$(sed -n 's:.*<VersionPrefix>\(.*\)</VersionPrefix>.*:\1:p' Version.props)
version="$prefix-ci.$(date -u +%Y%m%d%H%M%S)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
feed="$work/feed"
cache=$(dotnet nuget locals global-packages --list | sed 's/^global-packages: //')
cat > "$work/nuget.config" <<CONFIG
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <config>
    <add key="globalPackagesFolder" value="$work/packages" />
  </config>
  <packageSources>
    <add key="local" value="$feed" />
    <add key="nuget.org" value="https://api.nuget.org/v3/index.json" />
  </packageSources>
  <fallbackPackageFolders>
    <add key="machine" value="$cache" />
  </fallbackPackageFolders>
</configuration>
CONFIG

step() { printf '\n== packages: %s\n' "$1"; }

step "pack $version"
dotnet build src/PerSampleGrads.Testing -c Release -v quiet -nologo
dotnet build src/psg -c Release -v quiet -nologo
for project in src/Oracle src/PerSampleGrads src/PerSampleGrads.Cases src/PerSampleGrads.Testing src/psg; do
  dotnet pack "$project" -c Release --no-build -o "$feed" -p:PackageVersion="$version" -v quiet -nologo
done
ls -l "$feed"
for id in PerSampleGrads.Oracle PerSampleGrads PerSampleGrads.Cases PerSampleGrads.Testing; do
  files=$(unzip -Z1 "$feed/$id.$version.nupkg")
  grep -qx "README.md" <<<"$files" || { echo "$id: no README in the package"; exit 1; }
  grep -qx "lib/net10.0/$id.xml" <<<"$files" || { echo "$id: no XML docs in the package"; exit 1; }
  test -f "$feed/$id.$version.snupkg" || { echo "$id: no symbol package"; exit 1; }
done
grep -q 'packageType name="DotnetTool"' <<<"$(unzip -p "$feed/psg.$version.nupkg" psg.nuspec)" \
  || { echo "psg: not a .NET tool package"; exit 1; }

step "dotnet tool install psg from the folder, then psg compare"
dotnet tool install psg --version "$version" --tool-path "$work/tool" --configfile "$work/nuget.config"
"$work/tool/psg" compare

step "the kit sample, from the packages"
dotnet restore samples/KitSample --configfile "$work/nuget.config" -p:PerSampleGradsVersion="$version"
dotnet build samples/KitSample --no-restore -c Release -p:PerSampleGradsVersion="$version" -v quiet -nologo
if grep -q '"type": "project"' samples/KitSample/obj/project.assets.json; then
  echo "the sample resolved a project reference instead of the packages"; exit 1
fi
samples/KitSample/bin/Release/net10.0/KitSample

step "a fresh dotnet new console project computes per-sample gradients with the library package"
mkdir "$work/consumer"
cd "$work/consumer"
dotnet new console --name Consumer --output . >/dev/null
dotnet add package PerSampleGrads --version "$version" --no-restore >/dev/null
dotnet add package libtorch-cpu-linux-x64 --version 2.10.0 --no-restore >/dev/null
cat > Program.cs <<'CS'
using PerSampleGrads;
using PerSampleGrads.Engines.Hooks;
using PerSampleGrads.Oracle;
using PerSampleGrads.Checking;
using static TorchSharp.torch;

var model = nn.Sequential(("0", nn.Linear(4, 3)));
var (inputs, targets) = (randn(5, 4), randint(0, 3, [5]));
var loss = LossFunction.CrossEntropy(LossReduction.Mean);
using var grads = new HookEngine().Compute(model, inputs, targets, loss);
using var truth = new PerSampleGradientOracle().Compute(model, inputs, targets, loss);
var comparison = GradientComparison.Compare(grads, truth, TolerancePolicy.ToleranceFor(ScalarType.Float32));
Console.WriteLine($"0.weight: [{string.Join(", ", grads["0.weight"].shape)}], {(comparison.Passed ? "agrees" : "differs")}");
return comparison.Passed ? 0 : 1;
CS
dotnet restore --configfile "$work/nuget.config"
dotnet run --no-restore -c Release
cd "$root"
echo "packages: every check passed ($version)"
