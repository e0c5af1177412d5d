#!/usr/bin/env bash
# Sets up and builds pyinspect, starts the bundled example (examples/worker_pool.py) on a
# CPython of this machine, shows its threads' stacks with `pyinspect stack`, and stops it.
# PYTHON=/path/to/python picks the interpreter (default: python3 on PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh >/dev/null
PYTHON=${PYTHON:-$(command -v python3 || command -v python)}
coproc EXAMPLE { exec "$PYTHON" -u examples/worker_pool.py; }
pid=$EXAMPLE_PID
trap 'kill $pid 2>/dev/null || true' EXIT
read -r -t 30 ready _ <&"${EXAMPLE[0]}" || { echo "demo: the example did not start" >&2; exit 1; }
echo "\$ pyinspect stack $pid      # $PYTHON examples/worker_pool.py"
build/pyinspect stack "$pid"
