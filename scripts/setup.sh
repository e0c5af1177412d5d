#!/usr/bin/env bash
# Installs what pyinspect needs to build and test, from Debian's packages. Idempotent; needs
# root (or sudo) only when something is missing.
set -euo pipefail

# python3-jsonschema: the profile tests check speedscope files against
# tests/integration/speedscope_schema.json; chromium: tests/integration/svg_check.py opens the
# flame graphs in headless Chromium and drives their script.
packages=(build-essential cmake pkg-config libelf-dev libdw-dev libboost-program-options-dev
          nlohmann-json3-dev libspdlog-dev libfmt-dev doctest-dev graphviz gdb python3 binutils
          man-db dpkg-dev file xdot xvfb xauth python3-jsonschema chromium)
# Debian's CPython 3.11 and its debug build + debug symbols, when the release has them: the test
# suite uses them as a static, stripped build with separate debug info and as a debug build.
# python3.11-dev: the release build's headers, which abi.offsets compiles against (the debug
# build's come with python3.11-dbg); libpython3.11-testsuite: CPython's own test modules, which
# the real-world heap test runs in its target.
# python3-numpy: numpy for Debian's python3.11, whose arrays `pyinspect memory` and `heap` size
# (tests/targets/memory.py); libc6-dbg: glibc's debug info, from which `pyinspect memory` reads
# malloc's arenas (without it they are found from the chunk headers; the tests run both ways).
# austin: the sampling profiler bench/record_bench.py compares `pyinspect record` with (Debian's
# 1.0.1, which reads CPython 2.7-3.10).
optional=(python3.11 python3.11-dbg python3.11-dev libpython3.11-testsuite python3-numpy libc6-dbg austin)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
available_optional=()
for p in "${optional[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" && continue
  available_optional+=("$p")
done

if [ ${#missing[@]} -eq 0 ] && [ ${#available_optional[@]} -eq 0 ]; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: need root or sudo to install: ${missing[*]} ${available_optional[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
echo "setup: installing ${missing[*]} ${available_optional[*]}" >&2
$SUDO apt-get update -qq >/dev/null || true
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
for p in "${available_optional[@]}"; do
  if apt-cache show "$p" >/dev/null 2>&1; then
    $SUDO apt-get install -y -qq --no-install-recommends "$p" >/dev/null || echo "setup: could not install optional $p" >&2
  fi
done
