#!/usr/bin/env python3
"""Checks pyinspect's CPython layout tables against the C compiler and an interpreter's own headers.

For one interpreter of tests/integration/discover.py's list, this script generates a small C
program from src/abi/fields.def: for every struct member pyinspect reads, `offsetof(T, member)`,
and for every SIZE entry, `sizeof(T)`. It compiles the program against that interpreter's
installed headers (the include directory its own sysconfig names), runs it and compares the
numbers with
  - release builds: the embedded table pyabi/cpython-X.Y.json of the interpreter's minor version;
  - debug builds: what `pyinspect abi dump` reads from the interpreter's own DWARF (the embedded
    tables describe release builds; a debug build may lay objects out otherwise, e.g. with
    Py_TRACE_REFS every object starts with two more pointers, so they are not its reference).

Why this is an independent oracle: the tables are made by pyinspect's own DWARF reader (`abi dump`),
and `abi check` compares them with that same reader, so a bug in the reader (a wrong member
chosen, an offset of a nested member summed wrongly, a typedef resolved to the wrong struct) would
go unseen by both. Here the numbers come from the C compiler applying the C layout rules to the
declarations CPython installs for extension writers; pyinspect's code plays no part in them.

What it cannot check: structs private to one CPython .c file (dequeobject, BLOCK, rangeobject,
propertyobject, arena_object before 3.12, PyDictKeysObject before 3.11, which lives in
Objects/dict-common.h...) are declared in no installed header; they are listed as "not in the
installed headers" and counted, not failed. The table's DWARF is the only source for those.
Members that neither side has (ts_frame on 3.11, co_qualname on 3.10: fields.def lists every
version's members) are counted as absent from both.

Typedef or struct tag: fields.def names either ("PyThreadState", "_gc_runtime_state"), so both
`T` and `struct T` are tried; the typedef wins when both compile. Of a member's `|` alternatives,
the one this version's headers declare is used.

Failures (exit status 1):
  - a member or size both sides know whose numbers differ (named, with both values);
  - a member the table has although the headers declare its struct without it;
  - a member the headers declare (in a struct, and a version, that fields.def says pyinspect reads)
    that the table lacks: pyinspect would treat it as unknown (-1) on that version. fields.def's
    VERSIONS already confine each type to the versions that define it, so no member is expected to
    be missing; EXPECTED_MISSING below would name any that is, with the reason;
  - fewer members verified equal than the floor for the version (MIN_VERIFIED), so that a probe
    which silently compiled nothing cannot pass;
  - no C compiler, no headers for a present interpreter, or a compiler error the script cannot
    pin to one generated line: each says what to install or what went wrong.

    tests/abi/check_offsets.py --interpreters build/tests/interpreters.json --python ID
        [--pyinspect build/pyinspect] [--table FILE]
    tests/abi/check_offsets.py --interpreters ... --list     (the ids CTest registers)

--table replaces the reference table (to show that an altered table is caught).
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FIELDS_DEF = os.path.join(ROOT, "src", "abi", "fields.def")
TABLES = os.path.join(ROOT, "pyabi")

# Floors of members verified equal per version: the counts measured on CPython 2.7.18 (160),
# 3.6.15 (171), 3.7-3.9 (192-195), 3.10.13 (203), 3.11.2 and 3.11.7 (230), 3.12.1 (249) and 3.13.0
# (252), less a margin for patch releases. Near enough that losing one internal header's worth of
# members (pycore_frame.h alone holds 13) fails, instead of passing on what remained; an entry
# removed from fields.def may need its floor lowered.
MIN_VERIFIED = {(2, 7): 150, (3, 6): 160, (3, 7): 182, (3, 8): 184, (3, 9): 185, (3, 10): 193,
                (3, 11): 218, (3, 12): 237, (3, 13): 240}
MIN_VERIFIED_DEFAULT = 200

# Members the headers declare but the tables may lack, with the reason: none so far. (A member
# appears here only when fields.def's VERSIONS or comments say pyinspect does not read it there.)
EXPECTED_MISSING = {}

# Headers left out of the probe: py_curses.h pulls in the curses library, whose macros could
# rename identifiers used below, and declares nothing pyinspect reads.
EXCLUDED_HEADERS = {"py_curses.h"}

MAX_ROUNDS = 8


class CheckError(Exception):
    pass


def parse_fields_def(path):
    """The FIELD, SIZE and VERSIONS lines of fields.def; a line that starts like one of them but
    does not parse is an error, so that a change of format cannot quietly shrink the check."""
    field_re = re.compile(r'FIELD\(\s*(\w+)\s*,\s*"([^"]+)"\s*,\s*"([^"]+)"\s*\)')
    size_re = re.compile(r'SIZE\(\s*(\w+)\s*,\s*"([^"]+)"\s*\)')
    ver_re = re.compile(r'(VERSIONS|OUTSIDE)\(\s*"([^"]+)"\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\)')
    ident = re.compile(r"^[A-Za-z_]\w*$")
    member = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
    fields, sizes, versions, outside = [], [], {}, {}
    seen = set()
    with open(path) as f:
        for n, line in enumerate(f, 1):
            s = line.strip()
            if not s or s.startswith("//"):
                continue
            where = "%s:%d" % (path, n)
            if s.startswith("FIELD("):
                m = field_re.match(s)
                if not m:
                    raise CheckError("%s: cannot parse %r" % (where, s))
                fid, ctype, paths = m.groups()
                alts = paths.split("|")
                if not ident.match(ctype) or not all(member.match(a) for a in alts):
                    raise CheckError("%s: unexpected type or member spelling in %r" % (where, s))
                fields.append((fid, ctype, alts))
            elif s.startswith("SIZE("):
                m = size_re.match(s)
                if not m or not ident.match(m.group(2)):
                    raise CheckError("%s: cannot parse %r" % (where, s))
                fid, ctype = m.groups()
                sizes.append((fid, ctype))
            elif s.startswith(("VERSIONS(", "OUTSIDE(")):
                # OUTSIDE: the versions in which a type lives in an extension module, never in
                # libpython's headers or the tables (tests/abi/check_fixed_layouts.py checks those).
                m = ver_re.match(s)
                if not m:
                    raise CheckError("%s: cannot parse %r" % (where, s))
                a, b, c, d = (int(x) for x in m.groups()[2:])
                (versions if m.group(1) == "VERSIONS" else outside)[m.group(2)] = ((a, b), (c, d))
            else:
                raise CheckError("%s: unexpected line %r" % (where, s))
            if not s.startswith(("VERSIONS(", "OUTSIDE(")):
                if fid in seen:
                    raise CheckError("%s: id %s appears twice" % (where, fid))
                seen.add(fid)
    if not fields or not sizes:
        raise CheckError("%s: no FIELD or SIZE lines found" % path)
    return fields, sizes, versions, outside


def in_versions(versions, ctype, ver):
    lo, hi = versions.get(ctype, ((0, 0), (99, 99)))
    return lo <= ver <= hi


def find_compiler():
    """The compiler command and its flags. Every error must be reported, not the first 20 or so
    (the probe drops each line that fails), which gcc and clang spell differently."""
    for cc in [os.environ.get("CC"), "cc", "gcc", "clang"]:
        if cc and shutil.which(cc.split()[0]):
            try:
                banner = subprocess.check_output(cc.split() + ["--version"], stderr=subprocess.STDOUT,
                                                 universal_newlines=True)
            except (OSError, subprocess.CalledProcessError):
                continue
            no_limit = "-ferror-limit=0" if "clang" in banner else "-fmax-errors=0"
            return cc.split() + ["-w", "-O0", no_limit]
    raise CheckError("no C compiler found (tried $CC, cc, gcc, clang): install one, e.g. "
                     "`apt-get install build-essential` (scripts/setup.sh does)")


INCLUDE_PROBE = ("import sysconfig, json\n"
                 "p = sysconfig.get_paths()\n"
                 "print(json.dumps([p.get('include'), p.get('platinclude')]))\n")


def header_dirs(interp):
    env = dict(os.environ)
    env.update(interp.get("env") or {})
    try:
        out = subprocess.check_output([interp["path"], "-c", INCLUDE_PROBE], env=env, timeout=60)
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        raise CheckError("cannot ask %s for its include directory: %s" % (interp["path"], e))
    dirs = []
    for d in json.loads(out.decode()):
        if d and d not in dirs:
            dirs.append(d)
    main = next((d for d in dirs if os.path.exists(os.path.join(d, "Python.h"))), None)
    if main is None:
        hint = "the development headers of this interpreter"
        if interp["path"].startswith("/usr/"):
            pkg = "python%d.%d" % (interp["major"], interp["minor"])
            # Debian ships a debug build's headers with its -dbg package, a release build's with -dev.
            hint = "Debian's %s-%s (scripts/setup.sh installs it)" % (pkg, "dbg" if interp["debug_build"] else "dev")
        raise CheckError("%s has no Python.h in %s: install %s" % (interp["path"], " or ".join(dirs), hint))
    return main, dirs


def headers_to_include(main):
    """Python.h, then every other header of the include directory, then every internal one.

    Python.h leaves some declarations out (frameobject.h before 3.11, structmember.h before 3.12),
    and internal structs (_PyRuntimeState, PyInterpreterState from 3.8, _PyInterpreterFrame,
    PyDictKeysObject from 3.11, _obmalloc_state...) move between internal headers from one version
    to the next while new headers appear in every release. Rather than keep a per-version list of
    which header declares what, the probe includes all of them and drops those the compiler rejects
    (one that needs a library's header first, such as pyexpat.h, or a file the installation lacks,
    such as Debian's pydtrace_probes.h): it follows every version, including ones not released yet,
    with no list to maintain. On CPython 3.7-3.13 all the internal headers compile together; the
    dropped headers are printed, and a lost internal header shows as members "not in the installed
    headers" and, past a few, as a count under the version's floor.
    """
    tops = sorted(h for h in os.listdir(main)
                  if h.endswith(".h") and h != "Python.h" and h not in EXCLUDED_HEADERS)
    internal = []
    idir = os.path.join(main, "internal")
    if os.path.isdir(idir):
        internal = sorted("internal/" + h for h in os.listdir(idir)
                          if h.endswith(".h") and os.path.isfile(os.path.join(idir, h)))
    return ["Python.h"] + tops + internal


def candidates(fields, sizes, wanted):
    """Every expression worth trying for the ids in `wanted`: sizeof of their types, spelt as a
    typedef and as a struct tag (fields.def names either), and offsetof of each alternative
    member path."""
    types = []
    for fid, ctype, *_ in fields + sizes:
        if fid in wanted and ctype not in types:
            types.append(ctype)
    cands = []
    for t in types:
        for spelling in (t, "struct " + t):
            cands.append((("type", t, spelling), "sizeof(%s)" % spelling))
    for fid, ctype, alts in fields:
        if fid not in wanted:
            continue
        for j, a in enumerate(alts):
            for spelling in (ctype, "struct " + ctype):
                cands.append((("field", fid, j, spelling), "offsetof(%s, %s)" % (spelling, a)))
    return cands


def generate(headers, cands):
    # Py_BUILD_CORE: the internal headers refuse to compile without it, and libpython itself, the
    # binary whose DWARF the tables come from, is compiled with it.
    lines = ["#define Py_BUILD_CORE 1"]
    line_of = {}
    for h in headers:
        lines.append('#include "%s"' % h)
        line_of[len(lines)] = ("include", h)
    lines += ["#include <stddef.h>", "#include <stdio.h>"]
    # One function per expression: gcc reports an undeclared identifier only once per function,
    # and an error stays on the line of the expression that caused it.
    for i, (_, expr) in enumerate(cands):
        lines.append('static void c%d(void) { printf("%d %%zu\\n", (size_t)(%s)); }' % (i, i, expr))
        line_of[len(lines)] = ("cand", i)
    lines.append("int main(void) {")
    lines += ["  c%d();" % i for i in range(len(cands))]
    lines += ["  return 0;", "}", ""]
    return "\n".join(lines), line_of


DIAG = re.compile(r"^(.*?):(\d+):(?:\d+:)? (?:fatal )?error: (.*)$")
INCLUDED = re.compile(r"^(?:In file included|\s+) from (.*?):(\d+)[:,]$")


def error_lines(stderr, src_name):
    """Line of the generated file -> first error message, for every error the compiler printed.
    An error inside a header is charged to the #include line that brought the header in: gcc
    prints the chain of includes ("In file included from ...") when it changes, and the last link
    of it in the generated file is that line."""
    bad = {}
    top = None
    unattributed = []
    for line in stderr.splitlines():
        m = INCLUDED.match(line)
        if m:
            if os.path.basename(m.group(1)) == src_name:
                top = int(m.group(2))
            continue
        m = DIAG.match(line)
        if not m:
            continue
        if os.path.basename(m.group(1)) == src_name:
            n = int(m.group(2))
        elif top is not None:
            n = top
        else:
            unattributed.append(line)
            continue
        bad.setdefault(n, m.group(3))
    return bad, unattributed


def probe_headers(cc, main, dirs, cands, workdir):
    """Compiles and runs the probe, dropping the includes, then the expressions, the compiler
    rejects. Returns ({candidate index: value}, {dropped header: error}, rounds)."""
    headers = headers_to_include(main)
    active = list(range(len(cands)))
    dropped = {}
    src_name = "layout_probe.c"
    src = os.path.join(workdir, src_name)
    exe = os.path.join(workdir, "layout_probe")
    flags = ["-I" + d for d in dirs]
    for rounds in range(1, MAX_ROUNDS + 1):
        text, line_of = generate(headers, [cands[i] for i in active])
        with open(src, "w") as f:
            f.write(text)
        p = subprocess.run(cc + flags + [src_name, "-o", exe], cwd=workdir,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
        if p.returncode == 0:
            out = subprocess.check_output([exe], universal_newlines=True)
            values = {}
            for line in out.splitlines():
                i, v = line.split()
                values[active[int(i)]] = int(v)
            if len(values) != len(active):
                raise CheckError("the probe printed %d values for %d expressions" % (len(values), len(active)))
            return values, dropped, rounds
        bad, unattributed = error_lines(p.stderr, src_name)
        if unattributed or not bad:
            raise CheckError("the compiler failed with errors not tied to one generated line (%s):\n%s"
                             % (" ".join(cc + flags + [src]), "\n".join(p.stderr.splitlines()[-30:])))
        # A header that fails can leave the compiler in a state where every later line fails too,
        # so while any include is rejected, only includes are dropped.
        bad_includes = [n for n in bad if line_of.get(n, ("",))[0] == "include"]
        if bad_includes:
            for n in bad_includes:
                h = line_of[n][1]
                dropped[h] = bad[n]
                headers.remove(h)
            continue
        bad_cands = set()
        for n in bad:
            kind = line_of.get(n)
            if not kind or kind[0] != "cand":
                raise CheckError("compiler error on generated line %d, not an include or an expression: %s"
                                 % (n, bad[n]))
            bad_cands.add(active[kind[1]])
        active = [i for i in active if i not in bad_cands]
    raise CheckError("the probe still did not compile after %d rounds (headers dropped so far: %s); the "
                     "last errors:\n%s" % (MAX_ROUNDS, " ".join(sorted(dropped)) or "none",
                                           "\n".join(p.stderr.splitlines()[-20:])))


def header_layout(cands, values, fields, sizes, wanted):
    """({id: value from the headers}, set of types the headers declare completely,
    {id: member path chosen}). A type's typedef spelling is preferred to its struct tag."""
    spelling = {}
    field_value = {}
    for i, ((kind, *key), _) in enumerate(cands):
        if i not in values:
            continue
        if kind == "type" and key[0] not in spelling:
            spelling[key[0]] = (key[1], values[i])
        elif kind == "field":
            field_value[tuple(key)] = values[i]
    got, chosen = {}, {}
    for fid, ctype, alts in fields:
        if fid not in wanted or ctype not in spelling:
            continue
        # The member is whichever alternative this version's headers declare.
        for j, a in enumerate(alts):
            v = field_value.get((fid, j, spelling[ctype][0]))
            if v is not None:
                got[fid], chosen[fid] = v, a
                break
    for fid, ctype in sizes:
        if fid in wanted and ctype in spelling:
            got[fid] = spelling[ctype][1]
    return got, set(spelling), chosen


def reference(interp, args):
    """The numbers to check and where they come from."""
    if args.table:
        path = args.table
    elif interp["debug_build"]:
        if not args.pyinspect:
            raise CheckError("%s is a debug build: its reference is `pyinspect abi dump` of its own DWARF; "
                             "pass --pyinspect" % interp["id"])
        binary = interp.get("libpython") or os.path.realpath(interp["path"])
        p = subprocess.run([args.pyinspect, "abi", "dump", binary, "--python", interp["version"]],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
        if p.returncode != 0:
            raise CheckError("`pyinspect abi dump %s` failed: %s" % (binary, p.stderr.strip()))
        return json.loads(p.stdout), "`pyinspect abi dump %s` (its DWARF)" % binary
    else:
        path = os.path.join(TABLES, "cpython-%d.%d.json" % (interp["major"], interp["minor"]))
        if not os.path.exists(path):
            raise CheckError("no embedded table %s for CPython %d.%d" % (path, interp["major"], interp["minor"]))
    with open(path) as f:
        t = json.load(f)
    shown = os.path.relpath(path, ROOT) if os.path.abspath(path).startswith(ROOT + os.sep) else path
    return t, "%s (CPython %s, %s)" % (shown, t.get("version"), t.get("origin"))


def check(interp, args):
    t0 = time.time()
    ver = (interp["major"], interp["minor"])
    fields, sizes, versions, outside = parse_fields_def(args.fields_def)
    fields = [f for f in fields if not (f[1] in outside and in_versions(outside, f[1], ver))]
    sizes = [z for z in sizes if not (z[1] in outside and in_versions(outside, z[1], ver))]
    cc = find_compiler()
    main, dirs = header_dirs(interp)
    ref, ref_name = reference(interp, args)
    ref_all = dict(ref.get("fields", {}))
    ref_all.update(ref.get("sizes", {}))
    # Every id whose type this version defines (fields.def's VERSIONS), and those outside VERSIONS
    # that the reference has all the same: a number the table carries is worth checking.
    wanted = set()
    for fid, ctype, *_ in fields + sizes:
        if in_versions(versions, ctype, ver) or ref_all.get(fid, -1) >= 0:
            wanted.add(fid)
    cands = candidates(fields, sizes, wanted)
    with tempfile.TemporaryDirectory(prefix="pyinspect-offsets-") as work:
        values, dropped, rounds = probe_headers(cc, main, dirs, cands, work)
    got, declared, chosen = header_layout(cands, values, fields, sizes, wanted)

    equal, differ, not_in_headers, table_only, headers_only, neither = [], [], [], [], [], []
    outside, outside_equal = [], []
    entries = [(fid, ctype, alts) for fid, ctype, alts in fields] + [(fid, ctype, None) for fid, ctype in sizes]
    for fid, ctype, alts in entries:
        r = ref_all.get(fid)
        if r is not None and r < 0:
            r = None
        h = got.get(fid)
        if not in_versions(versions, ctype, ver):
            if r is not None and h is not None:
                (outside_equal if h == r else differ).append((fid, "sizeof(%s)" % ctype if not alts else
                                                             "offsetof(%s, %s)" % (ctype, chosen[fid]), h, r))
            elif r is not None:
                outside.append(fid)
            continue
        what = ("offsetof(%s, %s)" % (ctype, chosen[fid])) if alts and fid in chosen else \
               ("sizeof(%s)" % ctype if not alts else "%s.%s" % (ctype, "|".join(alts)))
        if h is not None and r is not None:
            (equal if h == r else differ).append((fid, what, h, r))
        elif h is None and ctype not in declared:
            (not_in_headers if r is not None else neither).append((fid, ctype))
        elif h is None:
            (table_only if r is not None else neither).append((fid, what, r))
        elif fid in EXPECTED_MISSING:
            neither.append((fid, ctype))
        else:
            headers_only.append((fid, what, h))

    floor = MIN_VERIFIED.get(ver, MIN_VERIFIED_DEFAULT)
    print("abi.offsets@%s: CPython %s%s, headers %s" % (interp["id"], interp["version"],
                                                       " (debug build)" if interp["debug_build"] else "", main))
    print("  reference: %s" % ref_name)
    print("  probe: %d headers included, %d dropped; %d expressions, %d compiled; %d compiler runs, %.1fs"
          % (len(headers_to_include(main)) - len(dropped), len(dropped), len(cands), len(values), rounds,
             time.time() - t0))
    for h, e in sorted(dropped.items()):
        print("    dropped %s: %s" % (h, e))
    print("  verified equal: %d (floor %d)" % (len(equal), floor))
    print("  not in the installed headers: %d: %s" % (
        len(not_in_headers), " ".join("%s(%s)" % (fid, t) for fid, t in not_in_headers) or "-"))
    print("  absent from both headers and reference (not in this version): %d: %s"
          % (len(neither), " ".join(e[0] for e in neither) or "-"))
    if outside_equal:
        print("  outside fields.def's VERSIONS for %d.%d but in the reference, verified equal too: %s"
              % (ver + (" ".join(e[0] for e in outside_equal),)))
    if outside:
        print("  outside fields.def's VERSIONS for %d.%d, in the reference, not in the headers: %s"
              % (ver + (" ".join(outside),)))
    print("  differ: %d" % len(differ))
    failures = []
    for fid, what, h, r in differ:
        failures.append("%s: %s is %d in the headers, %d in the reference" % (fid, what, h, r))
    for fid, what, r in table_only:
        failures.append("%s: the reference has %d, but the headers declare no member %s" % (fid, r, what))
    for fid, what, h in headers_only:
        failures.append("%s: the headers declare %s = %d, the reference lacks it" % (fid, what, h))
    if len(equal) < floor:
        failures.append("only %d members verified equal, fewer than the floor of %d for %d.%d: "
                        "the probe compiled too little" % ((len(equal), floor) + ver))
    for f in failures:
        print("  FAIL " + f)
    print("  %s" % ("FAILED" if failures else "ok"))
    return not failures


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--interpreters", required=True, help="interpreters.json from tests/integration/discover.py")
    ap.add_argument("--python", help="id of the interpreter to check (default: all)")
    ap.add_argument("--pyinspect", help="pyinspect binary, for the DWARF of debug builds")
    ap.add_argument("--table", help="compare with this table instead of the usual reference")
    ap.add_argument("--fields-def", default=FIELDS_DEF)
    ap.add_argument("--list", action="store_true",
                    help="print the ids to register: all but the -stripped copies, whose headers and "
                         "table are their twin's")
    args = ap.parse_args()
    with open(args.interpreters) as f:
        interps = json.load(f)
    if args.list:
        for e in interps:
            if not e.get("stripped_libpython"):
                print(e["id"])
        return 0
    chosen = [e for e in interps if args.python in (None, e["id"])]
    if not chosen:
        print("check_offsets: no interpreter %s in %s" % (args.python, args.interpreters))
        return 1
    ok = True
    for e in chosen:
        try:
            ok = check(e, args) and ok
        except CheckError as err:
            print("abi.offsets@%s: FAILED: %s" % (e["id"], err))
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
