#!/usr/bin/env python3
"""Finds the CPython interpreters on this machine for the integration tests.

PYINSPECT_TEST_PYTHONS (paths separated by ':' or whitespace) overrides discovery. Otherwise:
pyenv's versions, then pythonX.Y on PATH and in /usr/bin (Debian's static python3.11 and its
debug build python3.11d among them). For every shared build, a copy of its libpython with all
symbols and debug info stripped is added as a further interpreter ("-stripped"), run through
LD_LIBRARY_PATH.

Writes a JSON list to --output; each entry:
  {"id", "path", "version", "major", "minor", "debug_build", "shared", "libpython",
   "stripped_libpython", "env", "gdb_script", "kind"}
A discovered interpreter whose probe does not run is not dropped: its entry has "probe_failed" (the
reason) and "version" null; it gets a CTest entry that fails with that reason
(discover.py --check), and scripts/test-summary.py counts it as failed. One named in
PYINSPECT_TEST_PYTHONS that does not run stops discovery.
"""
import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys

PROBE = r"""
import sys, os, json
maps = open('/proc/self/maps').read()
lib = None
for line in maps.splitlines():
    parts = line.split(None, 5)
    if len(parts) == 6 and 'libpython' in os.path.basename(parts[5]):
        lib = parts[5].strip()
        break
print(json.dumps({
    'version': '%d.%d.%d' % sys.version_info[:3],
    'major': sys.version_info[0], 'minor': sys.version_info[1],
    'debug_build': hasattr(sys, 'gettotalrefcount'),
    'libpython': lib,
    'executable': os.path.realpath(sys.executable),
}))
"""


def candidates():
    env = os.environ.get("PYINSPECT_TEST_PYTHONS")
    if env:
        return [p for p in re.split(r"[:\s]+", env) if p], True
    found = []
    roots = []
    try:
        roots.append(subprocess.check_output(["pyenv", "root"], stderr=subprocess.DEVNULL, text=True).strip())
    except (OSError, subprocess.CalledProcessError):
        pass
    roots += [os.environ.get("PYENV_ROOT", ""), os.path.expanduser("~/.pyenv")]
    for root in roots:
        if root and os.path.isdir(os.path.join(root, "versions")):
            for path in sorted(glob.glob(os.path.join(root, "versions", "*", "bin", "python[23].*"))):
                if re.search(r"python[23]\.\d+[dm]?$", path):
                    found.append(path)
            break
    dirs = os.environ.get("PATH", "").split(":") + ["/usr/bin", "/usr/local/bin"]
    for d in dirs:
        for path in sorted(glob.glob(os.path.join(d, "python[23].*"))):
            if re.search(r"python[23]\.\d+d?$", path) and "shims" not in path:
                found.append(path)
    return found, False


def probe(path):
    """(info, None) if the interpreter runs, else (None, why not)."""
    try:
        p = subprocess.run([path, "-c", PROBE], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    except subprocess.TimeoutExpired:
        return None, "its probe did not end within 60 s"
    except OSError as e:
        return None, "cannot run it: %s" % e
    err = p.stderr.decode("utf-8", "replace").strip()
    tail = (": " + " | ".join(err.splitlines()[-3:])) if err else ""
    if p.returncode != 0:
        how = "died of signal %d" % -p.returncode if p.returncode < 0 else "exited %d" % p.returncode
        return None, "its probe %s%s" % (how, tail)
    try:
        return json.loads(p.stdout.decode()), None
    except ValueError:
        return None, "its probe printed no JSON: %r%s" % (p.stdout[:200], tail)


def failed_entry(path, reason, taken):
    """What is known of an interpreter that does not run: its name's version and where it is."""
    m = re.search(r"python([23])\.(\d+)([dm]?)$", path)
    major, minor, suffix = int(m.group(1)), int(m.group(2)), m.group(3)
    pyenv = re.search(r"/versions/([^/]+)/bin/", path)
    ident = "%s%s-%s" % (pyenv.group(1) if pyenv else "%d.%d" % (major, minor), "d" if suffix == "d" else "",
                         "pyenv" if pyenv else "system")
    base, n = ident, 2
    while ident in taken:
        ident, n = "%s-%d" % (base, n), n + 1
    return {"id": ident, "path": path, "version": None, "major": major, "minor": minor, "debug_build": suffix == "d",
            "shared": False, "libpython": None, "stripped_libpython": None, "env": {}, "gdb_script": None,
            "kind": "does not run", "probe_failed": reason}


def gdb_script_for(path, info):
    """CPython's python-gdb.py: next to a pyenv build, or where Debian's -dbg packages put it."""
    candidates = [os.path.join(os.path.dirname(path), "python%d.%d-gdb.py" % (info["major"], info["minor"])),
                  "/usr/share/gdb/auto-load" + info["executable"] + "-gdb.py"]
    if info["libpython"]:
        candidates.append("/usr/share/gdb/auto-load" + os.path.realpath(info["libpython"]) + "-gdb.py")
    for p in candidates:
        if os.path.exists(p):
            return p
    return None


def make_stripped(entry, outdir):
    lib = entry["libpython"]
    dest_dir = os.path.join(outdir, entry["id"] + "-stripped")
    os.makedirs(dest_dir, exist_ok=True)
    dest = os.path.join(dest_dir, os.path.basename(lib))
    if not os.path.exists(dest) or os.path.getmtime(dest) < os.path.getmtime(lib):
        shutil.copyfile(lib, dest + ".tmp")
        subprocess.check_call(["strip", "--strip-all", "--remove-section=.gnu_debuglink", dest + ".tmp"])
        os.chmod(dest + ".tmp", 0o755)
        os.replace(dest + ".tmp", dest)
    e = dict(entry)
    e["id"] = entry["id"] + "-stripped"
    e["kind"] = "shared, libpython stripped (no symbols table, no debug info)"
    e["env"] = {"LD_LIBRARY_PATH": dest_dir}
    e["stripped_libpython"] = dest
    return e


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--output")
    ap.add_argument("--stripped-dir")
    ap.add_argument("--list-failed", metavar="INTERPRETERS_JSON", help="print the ids of the entries that do not run")
    ap.add_argument("--check", nargs=2, metavar=("INTERPRETERS_JSON", "ID"), help="fail with why ID does not run")
    args = ap.parse_args()
    if args.list_failed:
        with open(args.list_failed) as f:
            for e in json.load(f):
                if e.get("probe_failed"):
                    print(e["id"])
        return 0
    if args.check:
        return check_failed(*args.check)
    if not args.output or not args.stripped_dir:
        ap.error("--output and --stripped-dir are required")
    paths, explicit = candidates()
    seen = set()
    seen_paths = set()
    entries = []
    failed = []
    for path in paths:
        if not os.path.exists(path):  # a dangling link: no interpreter there
            if explicit:
                sys.exit("discover: %s from PYINSPECT_TEST_PYTHONS does not exist" % path)
            continue
        st = os.stat(path)
        if (st.st_dev, st.st_ino) in seen_paths:  # the same file under another name (/bin, hard links)
            continue
        seen_paths.add((st.st_dev, st.st_ino))
        info, why = probe(path)
        if not info:
            if explicit:
                sys.exit("discover: %s from PYINSPECT_TEST_PYTHONS does not run: %s" % (path, why))
            failed.append((path, why))
            continue
        st = os.stat(info["executable"])
        key = (st.st_dev, st.st_ino, info["libpython"])
        if key in seen:
            continue
        seen.add(key)
        origin = "pyenv" if "/versions/" in path else "system"
        ident = "%s%s-%s" % (info["version"], "d" if info["debug_build"] else "", origin)
        shared = bool(info["libpython"])
        entry = {
            "id": ident,
            "path": path,
            "version": info["version"],
            "major": info["major"],
            "minor": info["minor"],
            "debug_build": info["debug_build"],
            "shared": shared,
            "libpython": info["libpython"],
            "stripped_libpython": None,
            "env": {},
            "gdb_script": gdb_script_for(path, info),
            "kind": ("debug build" if info["debug_build"] else "release") + (", shared libpython" if shared else ", static"),
        }
        entries.append(entry)
    for e in list(entries):
        if e["shared"] and not e["debug_build"]:
            entries.append(make_stripped(e, args.stripped_dir))
    for path, why in failed:
        entries.append(failed_entry(path, why, set(e["id"] for e in entries)))
    entries.sort(key=lambda e: (e["major"], e["minor"], e["id"]))
    with open(args.output, "w") as f:
        json.dump(entries, f, indent=1)
    for e in entries:
        print("%s\t%s%s" % (e["id"], e["path"], ("\tDOES NOT RUN: " + e["probe_failed"]) if e.get("probe_failed") else ""))


def check_failed(interpreters, ident):
    """The CTest entry of an interpreter whose probe failed: it fails, saying why."""
    with open(interpreters) as f:
        e = [x for x in json.load(f) if x["id"] == ident][0]
    info, why = probe(e["path"])
    print("FAIL %s (%s) does not run, so none of the tests ran on it: %s" % (ident, e["path"], e["probe_failed"]))
    print("now: " + ("it runs (%s); re-run cmake to test it" % info["version"] if info else why))
    return 1


if __name__ == "__main__":
    sys.exit(main())
