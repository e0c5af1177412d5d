#!/usr/bin/env bash
# Regenerates pyabi/cpython-X.Y.json from the DWARF of unstripped CPython builds (pyenv's, by
# default): one table per minor version, made by pyinspect's own `abi dump`.
# Usage: scripts/gen-pyabi.sh [python ...]   (interpreters to use; default: every pyenv version)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/pyinspect ] || scripts/build.sh >/dev/null
pythons=("$@")
if [ ${#pythons[@]} -eq 0 ]; then
  root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
  for d in "$root"/versions/*/bin; do
    p=$(ls "$d" | grep -E '^python[23]\.[0-9]+$' | head -1) && pythons+=("$d/$p")
  done
fi
for py in "${pythons[@]}"; do
  read -r version lib <<<"$("$py" -c '
import sys, os
lib = ""
for line in open("/proc/self/maps"):
    p = line.split(None, 5)
    if len(p) == 6 and "libpython" in os.path.basename(p[5]):
        lib = p[5].strip(); break
sys.stdout.write("%d.%d.%d %s\n" % (sys.version_info[:3] + (lib or os.path.realpath(sys.executable),)))')"
  out="pyabi/cpython-${version%.*}.json"
  build/pyinspect abi dump "$lib" --python "$version" -o "$out"
  echo "$out <- $lib ($version)"
done
