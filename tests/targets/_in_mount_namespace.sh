#!/bin/sh
# Runs a Python target in a new mount namespace in which its interpreter lives under a path that
# exists nowhere else: PYINSPECT_NS_PREFIX is bound to PYINSPECT_NS_HIDDEN on a private tmpfs,
# and the original prefix is covered by an empty tmpfs, so nothing is loaded from there.
# Usage (as an interpreter): _in_mount_namespace.sh script.py [args]
exec unshare --mount --propagation private sh -c '
  mount -t tmpfs none /opt &&
  mkdir -p "$PYINSPECT_NS_HIDDEN" &&
  mount --bind "$PYINSPECT_NS_PREFIX" "$PYINSPECT_NS_HIDDEN" &&
  mount -t tmpfs none "$PYINSPECT_NS_PREFIX" &&
  LD_LIBRARY_PATH="$PYINSPECT_NS_HIDDEN/lib" exec "$PYINSPECT_NS_PYTHON" "$@"' sh "$@"
