#!/usr/bin/env bash
# One-time machine setup for PerSampleGrads on Linux x64. Idempotent: a second run checks and does nothing.
#
#  1. TorchSharp 0.107's native library (libLibTorchSharp.so) needs GLIBCXX_3.4.32 from libstdc++.
#     Debian 12 ("bookworm") ships 3.4.30. On Debian 12 this script adds Debian 13 ("trixie") as an apt source
#     on the same mirror as the machine's own Debian source, pinned at priority 100 (so nothing else is taken
#     from it unless asked for), and installs libstdc++6 from it. That upgrades libc6 and the GCC runtime
#     libraries and removes nothing.
#  2. The PyTorch cross-check (Category=PyTorchParity, `compare --reference pytorch`) needs a Python with torch
#     and numpy: on Debian 12 that is `python3-torch` (CPU, 1.13.1), installed without recommends.
#
# Elsewhere, or without root, it prints exactly what is missing and how to get it, and exits 1.
#
# The build runs it once per machine before its first compilation (Directory.Build.targets, from src/Oracle), so
# `dotnet run` and `dotnet test` need no separate step. Concurrent runs wait for each other (flock).
# PSG_SETUP_SIMULATE_MISSING=1 simulates a fresh machine without root: both prerequisites are reported missing and
# nothing is installed (the build's own test uses it).
# PSG_SETUP_REPORT=FILE (set by the build) receives the closing summary instead of the terminal: what is missing and
# the command to run on failure, what was installed on success.
set -euo pipefail

say() { echo "setup: $*" >&2; }
need_glibcxx=GLIBCXX_3.4.32
simulate_missing=${PSG_SETUP_SIMULATE_MISSING:-0}
needs_root=0   # 1 when root (or password-less sudo) would have installed what is missing
missing=()     # what is missing, for the closing summary
installed=()   # what this run installed, for the closing summary
apt_wait=(-o DPkg::Lock::Timeout=300)

as_root() {
  if [ "$simulate_missing" = 1 ]; then return 99;
  elif [ "$(id -u)" = 0 ]; then "$@";
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo "$@";
  else return 99; fi
}

libstdcxx_path() {
  ldconfig -p 2>/dev/null | awk '/libstdc\+\+\.so\.6 .*x86-64/ {print $NF; exit}'
}

has_glibcxx() {
  [ "$simulate_missing" != 1 ] || return 1
  local lib; lib=$(libstdcxx_path)
  [ -n "$lib" ] && grep -qa "$need_glibcxx" "$lib"
}

is_debian() { [ -r /etc/os-release ] && (. /etc/os-release; [ "${ID:-}" = debian ]); }

# The URI of the machine's main Debian archive (not the security one), from deb822 or one-line sources.
debian_mirror() {
  local f uri=""
  for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    uri=$(awk 'BEGIN{RS=""; FS="\n"}
      { u=""; s=""; for (i=1;i<=NF;i++) { if ($i ~ /^URIs:/) { sub(/^URIs:[ \t]*/,"",$i); split($i,a," "); u=a[1] }
                                          if ($i ~ /^Suites:/) s=$i }
        if (u != "" && s ~ /(^|[ \t])bookworm([ \t]|$)/) { print u; exit } }' "$f")
    [ -n "$uri" ] && { echo "$uri"; return; }
  done
  if [ -r /etc/apt/sources.list ]; then
    awk '$1=="deb" && $3=="bookworm" {print $2; exit}' /etc/apt/sources.list
  fi
}

fix_libstdcxx() {
  if has_glibcxx; then say "libstdc++ provides $need_glibcxx: nothing to do"; return 0; fi
  local mirror=""
  # Debian 12 is recognised by its apt sources: /etc/os-release says trixie once base-files comes from there.
  is_debian && mirror=$(debian_mirror)
  if [ -z "$mirror" ]; then
    missing+=("$need_glibcxx in libstdc++ (for TorchSharp's native library)")
    say "missing: $need_glibcxx in $(libstdcxx_path || echo 'libstdc++.so.6 (not found)')."
    say "TorchSharp 0.107 needs libstdc++ from GCC 13 or newer. Install it with your distribution's package manager"
    say "(Debian 13 / Ubuntu 24.04 and newer ship it); on Debian 12 this script does it when it can read the"
    say "bookworm mirror from /etc/apt/sources.list(.d). Then run this script again."
    return 1
  fi
  local sources="Types: deb
URIs: $mirror
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
" pin="Package: *
Pin: release n=trixie
Pin-Priority: 100
"
  if ! as_root true; then
    missing+=("$need_glibcxx in $(libstdcxx_path) (for TorchSharp's native library)")
    say "missing: $need_glibcxx in $(libstdcxx_path) (TorchSharp 0.107's native library needs it)."
    say "Installing libstdc++6 from Debian 13 (trixie, pinned at 100) needs root; as root this script runs:"
    needs_root=1
    say "  printf '%s' '$sources' > /etc/apt/sources.list.d/psg-trixie.sources"
    say "  printf '%s' '$pin' > /etc/apt/preferences.d/psg-trixie.pref"
    say "  apt-get update && apt-get install -y -t trixie libstdc++6"
    return 1
  fi
  say "libstdc++ lacks $need_glibcxx: installing libstdc++6 from Debian 13 (trixie, $mirror, pinned at 100)"
  printf '%s' "$sources" | as_root tee /etc/apt/sources.list.d/psg-trixie.sources >/dev/null
  printf '%s' "$pin" | as_root tee /etc/apt/preferences.d/psg-trixie.pref >/dev/null
  as_root apt-get "${apt_wait[@]}" update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive as_root apt-get "${apt_wait[@]}" install -y -q -t trixie libstdc++6 >/dev/null
  if ! has_glibcxx; then
    missing+=("$need_glibcxx, even after installing libstdc++6 from trixie")
    say "libstdc++6 from trixie is installed but $need_glibcxx is still missing"; return 1
  fi
  say "libstdc++ now provides $need_glibcxx"
  installed+=("libstdc++6 from Debian 13 (trixie, pinned at 100), for $need_glibcxx")
}

python_for_pytorch() { echo "${PSG_PYTHON:-/usr/bin/python3}"; }

has_pytorch() { [ "$simulate_missing" != 1 ] && [ -x "$1" ] && "$1" -c 'import torch, numpy' 2>/dev/null; }

fix_pytorch() {
  local py; py=$(python_for_pytorch)
  if [ "${PSG_SKIP_PYTORCH:-0}" = 1 ]; then say "PSG_SKIP_PYTORCH=1: not checking PyTorch"; return 0; fi
  if has_pytorch "$py"; then
    say "PyTorch $("$py" -c 'import torch; print(torch.__version__)') found for $py: nothing to do"; return 0
  fi
  if is_debian && [ "$py" = /usr/bin/python3 ] && as_root true; then
    say "installing Debian's python3-torch (CPU) for the PyTorch cross-check"
    # The trixie source may be new: refresh lists only when the package is not known yet.
    apt-cache show python3-torch >/dev/null 2>&1 || as_root apt-get "${apt_wait[@]}" update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive as_root apt-get "${apt_wait[@]}" install -y -q --no-install-recommends \
      python3-torch > /tmp/psg-setup-apt.log 2>&1 || tail -20 /tmp/psg-setup-apt.log >&2
    if "$py" -c 'import torch, numpy'; then
      say "PyTorch $("$py" -c 'import torch; print(torch.__version__)') installed"
      installed+=("Debian's python3-torch, for the PyTorch cross-check")
      return 0
    fi
  fi
  missing+=("torch and numpy for $py (for the PyTorch cross-check; PSG_SKIP_PYTORCH=1 goes without it)")
  say "missing: a Python with torch and numpy at $py (the PyTorch cross-check needs it)."
  if is_debian && [ "$py" = /usr/bin/python3 ] && ! as_root true; then needs_root=1; fi
  say "On Debian 12: apt-get install --no-install-recommends python3-torch; elsewhere install PyTorch and set PSG_PYTHON."
  say "To run without the cross-check, set PSG_SKIP_PYTORCH=1 (its tests are then reported as skipped)."
  return 1
}

# One run at a time, across builds and clones: apt holds a machine-wide lock and the checks would race.
lock=${TMPDIR:-/tmp}/psg-setup.lock
if command -v flock >/dev/null 2>&1 && { exec 9>>"$lock"; } 2>/dev/null; then
  flock -w 900 9 || say "another set-up has held $lock for 15 minutes: going on without waiting"
fi
if [ "$simulate_missing" = 1 ]; then
  say "PSG_SETUP_SIMULATE_MISSING=1: simulating a machine without $need_glibcxx, without PyTorch and without root"
fi

status=0
fix_libstdcxx || status=1
fix_pytorch || status=1
report() { if [ -n "${PSG_SETUP_REPORT:-}" ]; then echo "$1" > "$PSG_SETUP_REPORT"; else say "$1"; fi; }
if [ "$status" = 0 ] && [ ${#installed[@]} -gt 0 ]; then
  summary="Installed $(printf '%s; ' "${installed[@]}")"
  report "${summary%; }."
fi
if [ "$status" != 0 ]; then
  summary="Missing: $(printf '%s; ' "${missing[@]}")"
  summary=${summary%; }.
  if [ "$needs_root" = 1 ]; then
    script=$(readlink -f "$0")
    summary+=" Installing it needs root: run \`sudo bash $script\` (as root: \`bash $script\`), then build again."
  else
    summary+=" The set-up's lines above say how to install it here."
  fi
  report "$summary"
fi
exit $status
