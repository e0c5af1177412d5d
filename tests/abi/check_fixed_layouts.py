#!/usr/bin/env python3
"""The fixed layouts pyinspect uses for structs of extension modules (src/abi/fixed_layouts.cpp,
as `pyinspect abi fixed --python X.Y` prints them) against the DWARF of those modules on one
interpreter, as gdb reads it: for every member fields.def names for a type it marks OUTSIDE
libpython in this version, gdb evaluates the offset (&((T *)0)->member) and sizeof(T) in the
module that defines the type (array, _struct, _ctypes; 2.7's _collections and _io), or in the
interpreter's binary where the module is built in. gdb, the compiler's DWARF and the module are
the independent side; pyinspect is only asked for its table.

    check_fixed_layouts.py --interpreters interpreters.json --python ID --pyinspect build/pyinspect
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
FIELDS_DEF = os.path.join(HERE, "..", "..", "src", "abi", "fields.def")
# Which module defines each type, and how to find its file.
MODULE_OF = {"arrayobject": "array", "arraydescr": "array", "PyStructObject": "_struct", "formatcode": "_struct",
             "StgDictObject": "_ctypes", "StgInfo": "_ctypes", "dequeobject": "_collections",
             "BLOCK": "_collections", "buffered": "_io", "TaskObj": "_asyncio", "futureiterobject": "_asyncio"}


class Failure(Exception):
    pass


def parse_fields_def():
    fields, sizes, outside = [], [], {}
    for line in open(FIELDS_DEF):
        s = line.strip()
        m = re.match(r'FIELD\(\s*(\w+)\s*,\s*"([^"]+)"\s*,\s*"([^"]+)"\s*\)', s)
        if m:
            fields.append((m.group(1), m.group(2), m.group(3).split("|")))
        m = re.match(r'SIZE\(\s*(\w+)\s*,\s*"([^"]+)"\s*\)', s)
        if m:
            sizes.append((m.group(1), m.group(2)))
        m = re.match(r'OUTSIDE\(\s*"([^"]+)"\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\)', s)
        if m:
            outside[m.group(1)] = ((int(m.group(2)), int(m.group(3))), (int(m.group(4)), int(m.group(5))))
    return fields, sizes, outside


def module_file(interp, module):
    """The file that defines `module`: its shared object, or (built in) the interpreter itself."""
    env = dict(os.environ)
    env.update(interp.get("env") or {})
    code = "import %s, sys, os; sys.stdout.write(getattr(%s, '__file__', '') or '')" % (module, module)
    p = subprocess.run([interp["path"], "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                       universal_newlines=True, timeout=60)
    if p.returncode != 0:
        raise Failure("%s cannot import %s: %s" % (interp["path"], module, p.stderr.strip()[-300:]))
    path = p.stdout.strip()
    if path.endswith(".so"):
        return path
    return interp["libpython"] or os.path.realpath(interp["path"])  # built into the interpreter


def gdb_values(binary, exprs):
    """{expression: integer} for each gdb can evaluate in `binary`'s DWARF (None where it cannot)."""
    cmds = []
    for e in exprs:
        cmds += ["-ex", 'printf "=%%ld\\n", (long)(%s)' % e]
    p = subprocess.run(["gdb", "-nx", "-batch", binary] + cmds, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=120)
    # One line per command: "=N", or an error message in its place.
    lines = [l for l in p.stdout.splitlines() if l.startswith("=") or "No symbol" in l or "There is no member" in l
             or "A syntax error" in l or "No struct type" in l or "Cannot" in l]
    out = {}
    for e, l in zip(exprs, lines):
        out[e] = int(l[1:]) if l.startswith("=") else None
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--interpreters", required=True)
    ap.add_argument("--python")
    ap.add_argument("--pyinspect")
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args()
    interps = json.load(open(args.interpreters))
    if args.list:
        for e in interps:
            if not e.get("stripped_libpython") and not e.get("probe_failed"):
                print(e["id"])
        return 0
    interp = [e for e in interps if e["id"] == args.python][0]
    ver = (interp["major"], interp["minor"])
    try:
        if not shutil.which("gdb"):
            raise Failure("gdb is not installed (scripts/setup.sh installs it)")
        table = json.loads(subprocess.check_output([args.pyinspect, "abi", "fixed", "--python", interp["version"]]))
        fields, sizes, outside = parse_fields_def()
        here = dict((t, r) for t, r in outside.items() if r[0] <= ver <= r[1])
        checked, equal, problems, absent = 0, 0, [], []
        by_module = {}
        for fid, ctype, alts in fields:
            if ctype in here:
                by_module.setdefault(MODULE_OF[ctype], []).append(("field", fid, ctype, alts))
        for fid, ctype in sizes:
            if ctype in here:
                by_module.setdefault(MODULE_OF[ctype], []).append(("size", fid, ctype, None))
        for module, items in sorted(by_module.items()):
            binary = module_file(interp, module)
            exprs = []
            for kind, fid, ctype, alts in items:
                for spelled in (ctype, "struct " + ctype):
                    if kind == "size":
                        exprs.append("sizeof(%s)" % spelled)
                    else:
                        exprs += ["&((%s *)0)->%s" % (spelled, a) for a in alts]
            values = gdb_values(binary, exprs)
            for kind, fid, ctype, alts in items:
                got = None
                for spelled in (ctype, "struct " + ctype):
                    cands = ["sizeof(%s)" % spelled] if kind == "size" else ["&((%s *)0)->%s" % (spelled, a) for a in alts]
                    got = next((values[c] for c in cands if values.get(c) is not None), got)
                want = table["sizes" if kind == "size" else "fields"].get(fid)
                if got is None:
                    absent.append("%s (%s in %s)" % (fid, ctype, os.path.basename(binary)))
                    continue
                checked += 1
                if want == got:
                    equal += 1
                else:
                    problems.append("%s: %s in %s's DWARF, %s in pyinspect's fixed layout" % (
                        fid, got, os.path.basename(binary), want))
        print("%s: %d members of extension modules' structs checked against their DWARF, %d equal" % (
            interp["id"], checked, equal))
        if absent:
            print("  not described by the DWARF found (checked nowhere): %s" % ", ".join(absent))
        if problems:
            raise Failure("fixed layouts differ:\n  " + "\n  ".join(problems))
        if checked < 5:
            raise Failure("only %d members could be checked: no DWARF for the extension modules?" % checked)
    except Failure as e:
        print("FAILED on %s: %s" % (interp["id"], e))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
