#!/usr/bin/env bash
# Bundle the project's executables (the command-line program and the xunit v3 test projects) so they run on a
# Linux CUDA machine that has no .NET SDK and takes its libtorch from an installed PyTorch.
#
# Usage, from the project's root:   scripts/cuda/pack.sh [DIR]        (DIR defaults to .gpu)
# It writes DIR/bundle.tar.xz (the .NET runtime + every published executable, without libtorch's CPU binaries)
# and DIR/run.sh, and adds DIR to .git/info/exclude. DIR then travels to the CUDA machine, where
#   DIR/run.sh list                      names what is in the bundle
#   DIR/run.sh NAME [ARGS...]            runs one of them, e.g.  DIR/run.sh Equivalence -trait Category=Equivalence
set -euo pipefail
declare -A first
root=$(git rev-parse --show-toplevel)
cd "$root"
dir=${1:-.gpu}
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

# Every project that builds an executable (OutputType Exe): the command line and the xunit v3 test projects.
mapfile -t projects < <(git ls-files '*.csproj' | while read -r p; do
  if grep -qiE '<OutputType>\s*Exe\s*</OutputType>' "$p"; then echo "$p"; fi
done)
[ ${#projects[@]} -gt 0 ] || { echo "pack.sh: no executable project found under $root" >&2; exit 2; }

for p in "${projects[@]}"; do
  name=$(basename "$p" .csproj)
  echo "pack.sh: publishing $name" >&2
  dotnet publish "$p" -c Release -r linux-x64 --self-contained false \
    -o "$stage/app/$name" -v quiet -nologo >&2
done

# Drop libtorch's CPU binaries: on the CUDA machine the installed PyTorch's torch/lib provides libtorch.
nuget=${NUGET_PACKAGES:-$HOME/.nuget/packages}
mapfile -t cpu_libs < <(ls "$nuget"/libtorch-cpu-linux-x64/*/runtimes/linux-x64/native/ 2>/dev/null | sort -u)
for lib in "${cpu_libs[@]}"; do find "$stage/app" -name "$lib" -delete; done
rm -rf "$stage"/app/*/cpu
# Nothing for other operating systems, and one copy of each file that several executables share (hard links).
find "$stage/app" -depth \( -name Microsoft.CodeCoverage -o -path '*/runtimes/win*' -o -path '*/runtimes/osx*' \
  -o -name '*.dylib' \) -exec rm -rf {} +
find "$stage/app" -type f -printf '%s %p\n' | sort -n | while read -r size path; do
  key=$size-$(cksum < "$path" | cut -d' ' -f1)
  if [ -n "${first[$key]:-}" ]; then ln -f "${first[$key]}" "$path"; else first[$key]=$path; fi
done

# The .NET runtime that this machine's SDK runs on, so the CUDA machine needs no .NET install.
dotnet_root=$(dirname "$(readlink -f "$(command -v dotnet)")")
runtime=$(dotnet --list-runtimes | awk '$1=="Microsoft.NETCore.App"{v=$2} END{print v}')
mkdir -p "$stage/dotnet/shared/Microsoft.NETCore.App"
cp -a "$dotnet_root/dotnet" "$dotnet_root/host" "$stage/dotnet/"
cp -a "$dotnet_root/shared/Microsoft.NETCore.App/$runtime" "$stage/dotnet/shared/Microsoft.NETCore.App/"

rm -rf "$dir"; mkdir -p "$dir"
tar -C "$stage" -cf - app dotnet | xz -T0 -6 > "$dir/bundle.tar.xz"
cp "$(dirname "$(readlink -f "$0")")/run.sh" "$dir/run.sh"; chmod +x "$dir/run.sh"
grep -qxF "/$dir/" .git/info/exclude 2>/dev/null || echo "/$dir/" >> .git/info/exclude
size=$(du -m "$dir/bundle.tar.xz" | cut -f1)
echo "pack.sh: $dir/bundle.tar.xz is ${size} MiB with: $(ls "$stage/app" | tr '\n' ' ')" >&2
[ "$size" -lt 60 ] || echo "pack.sh: warning: over 60 MiB; a copy of the working tree for a remote machine may be limited to 64 MiB" >&2
