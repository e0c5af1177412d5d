"""Shared by the benchmarks: which interpreters to run on, and the heap target they build."""
import glob
import os
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))


def default_pythons(versions=("2.7", "3.9", "3.11", "3.13")):
    """The newest pyenv build of each of `versions` that is installed."""
    root = subprocess.run(["pyenv", "root"], stdout=subprocess.PIPE, text=True).stdout.strip() or os.path.expanduser("~/.pyenv")
    out = []
    for v in versions:
        found = sorted(glob.glob(os.path.join(root, "versions", v + ".*", "bin", "python" + v)))
        if found:
            out.append(found[-1])
    return out


def start_heap_target(python, millions):
    """bench/heap_target.py on `python`, once it has built its heap: (process, its ready line's words)."""
    target = subprocess.Popen([python, os.path.join(HERE, "heap_target.py"), str(millions)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    ready = target.stdout.readline().split()
    if not ready or ready[0] != "ready":
        target.kill()
        target.wait()
        raise SystemExit("heap_target.py on %s did not get ready: %s" % (python, ready))
    return target, ready
