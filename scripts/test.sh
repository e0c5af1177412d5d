#!/usr/bin/env bash
# Sets up, builds and runs the whole test suite: unit tests and integration tests on every
# CPython interpreter this machine has. Ends with the list of interpreters tested.
# Environment: BUILD_DIR (default build), PYINSPECT_TEST_PYTHONS (interpreter paths to use
# instead of discovering them), CTEST_ARGS (extra arguments to ctest, e.g. "-R threads").
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
scripts/setup.sh
BUILD_DIR=$BUILD_DIR scripts/build.sh -DPYINSPECT_TESTS=ON
status=0
(cd "$BUILD_DIR" && ctest -j"$(nproc)" --output-on-failure --timeout 900 --output-junit ctest-results.xml ${CTEST_ARGS:-}) || status=$?
python3 scripts/test-summary.py "$BUILD_DIR/ctest-results.xml" "$BUILD_DIR/tests/interpreters.json" || status=1
exit $status
