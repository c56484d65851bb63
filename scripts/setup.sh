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
set -euo pipefail

say() { echo "setup: $*" >&2; }
need_glibcxx=GLIBCXX_3.4.32

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@";
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo "$@";
  else return 99; fi
}

libstdcxx_path() {
  ldconfig -p 2>/dev/null | awk '/libstdc\+\+\.so\.6 .*x86-64/ {print $NF; exit}'
}

has_glibcxx() {
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
  say "libstdc++ lacks $need_glibcxx: installing libstdc++6 from Debian 13 (trixie, $mirror, pinned at 100)"
  if ! as_root true; then
    say "this needs root. Run as root (or with sudo):"
    say "  printf '%s' '$sources' > /etc/apt/sources.list.d/psg-trixie.sources"
    say "  printf '%s' '$pin' > /etc/apt/preferences.d/psg-trixie.pref"
    say "  apt-get update && apt-get install -y -t trixie libstdc++6"
    return 1
  fi
  printf '%s' "$sources" | as_root tee /etc/apt/sources.list.d/psg-trixie.sources >/dev/null
  printf '%s' "$pin" | as_root tee /etc/apt/preferences.d/psg-trixie.pref >/dev/null
  as_root apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q -t trixie libstdc++6 >/dev/null
  has_glibcxx || { say "libstdc++6 from trixie is installed but $need_glibcxx is still missing"; return 1; }
  say "libstdc++ now provides $need_glibcxx"
}

python_for_pytorch() { echo "${PSG_PYTHON:-/usr/bin/python3}"; }

fix_pytorch() {
  local py; py=$(python_for_pytorch)
  if [ "${PSG_SKIP_PYTORCH:-0}" = 1 ]; then say "PSG_SKIP_PYTORCH=1: not checking PyTorch"; return 0; fi
  if [ -x "$py" ] && "$py" -c 'import torch, numpy' 2>/dev/null; then
    say "PyTorch $("$py" -c 'import torch; print(torch.__version__)') found for $py: nothing to do"; return 0
  fi
  if is_debian && [ "$py" = /usr/bin/python3 ] && as_root true; then
    say "installing Debian's python3-torch (CPU) for the PyTorch cross-check"
    # The trixie source may be new: refresh lists only when the package is not known yet.
    apt-cache show python3-torch >/dev/null 2>&1 || as_root apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q --no-install-recommends python3-torch > /tmp/psg-setup-apt.log 2>&1 || tail -20 /tmp/psg-setup-apt.log >&2
    "$py" -c 'import torch, numpy' && { say "PyTorch $("$py" -c 'import torch; print(torch.__version__)') installed"; return 0; }
  fi
  say "missing: a Python with torch and numpy at $py (the PyTorch cross-check needs it)."
  say "On Debian 12: apt-get install --no-install-recommends python3-torch; elsewhere install PyTorch and set PSG_PYTHON."
  say "To run without the cross-check, set PSG_SKIP_PYTORCH=1 (its tests are then reported as skipped)."
  return 1
}

status=0
fix_libstdcxx || status=1
fix_pytorch || status=1
exit $status
