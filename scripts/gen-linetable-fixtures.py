#!/usr/bin/env python3
"""Generates tests/unit/data/linetables.json: real line tables and the lines CPython itself
computes from them, for the unit tests of src/runtime/linetable.hpp.

For every CPython interpreter found (pyenv's versions/*/bin/pythonX.Y, /usr/bin/python3.11 if
present, and the paths in PYINSPECT_TEST_PYTHONS or --python), a probe (2.7-compatible) compiles
a fixed set of sample functions and writes, per code object:
  - the raw table: co_lnotab (<=3.9) or co_linetable (3.10+), as hex
  - co_firstlineno and len(co_code)
  - the expected line of every instruction offset, as CPython computes it:
      <=3.9: dis.findlinestarts (the line of the last line start <= offset, which is what
             PyCode_Addr2Line returns); 3.10+: code.co_lines() (None -> -1)
    cross-checked, where ctypes is available, against the interpreter's own PyCode_Addr2Line
    (byte offsets in every version); the generator stops if the two disagree.
On 3.11+ the probe runs a second time with PYTHONNODEBUGRANGES=1, so that the location table
holds its no-column form (code 13) as well.

Expected lines are stored as ranges [start, end, line] over byte offsets; `step` is the distance
between instruction offsets the test checks (1 on 2.7 with its variable-length instructions, 2
from 3.6 on). Re-run after changing the samples: python3 scripts/gen-linetable-fixtures.py
"""
import argparse
import glob
import json
import os
import re
import subprocess
import sys

# Runs inside every target interpreter: must stay valid Python 2.7 and 3.x.
PROBE = r'''
import binascii, dis, json, sys, types

def sample_source():
    parts = []
    parts.append("""import sys

def simple(a, b):
    c = a + b
    return c

def loop(n):
    total = 0
    for i in range(n):
        if i % 2:
            total += i
        else:
            total -= 1
    while total > 0:
        total -= 3
    return total

def multiline(a, b, c):
    x = (a +
         b *
         c)
    y = [a,
         b,
         c]
    return call(x,
                y,
                key=a)

def tryexcept(x):
    try:
        y = 1 / x
    except ZeroDivisionError:
        y = 0
    except (TypeError, ValueError) as e:
        y = -1
    else:
        y += 1
    finally:
        x = None
    return y

def comprehensions(xs):
    a = [x * 2 for x in xs if x]
    b = dict((x, x) for x in xs)
    c = {x: x for x in xs}
    d = {x for x in xs}
    e = [[y for y in range(x)]
         for x in xs]
    return a, b, c, d, e

def lambdas():
    f = lambda x: x + 1
    g = lambda x, y: (x *
                      y)
    return f, g

def deco(fn):
    return fn

@deco
@deco
def decorated(x):
    return x

class Klass(object):
    attr = 1

    def method(self):
        return self.attr

    @staticmethod
    def smethod():
        return 2

def withstmt(path):
    with open(path) as f:
        data = f.read()
    return data

def nested():
    def inner(a):
        return a
    return inner

def generator(n):
    for i in range(n):
        yield i
    yield -1

def empty():
    pass
""")
    # More than 255 lines, a forward jump of more than 127 lines and one of more than 255.
    lines = ["def long_function(x):"]
    for i in range(300):
        lines.append("    x = x + %d" % i)
        if i == 100:
            lines.extend(["    # gap"] * 140)
        if i == 200:
            lines.extend([""] * 300)
    lines.append("    return x")
    parts.append("\n".join(lines) + "\n")
    # Backward line jumps of more than 127 lines: a call whose last argument is far below its
    # first line, and a loop whose body ends far below its header.
    lines = ["def backjump(a):", "    r = call(", "        a,"]
    lines.extend([""] * 200)
    lines.append("        a)")
    lines.append("    for i in range(3):")
    lines.append("        a += 1")
    lines.extend(["        # gap"] * 150)
    lines.append("        a += 2")
    lines.append("    return r")
    parts.append("\n".join(lines) + "\n")
    # One line with more than 255 bytes of bytecode and columns beyond 255.
    parts.append("def wide(a):\n    x = [" + ", ".join(["a"] * 200) + "]\n    return x\n")
    # A loop body on one line, then code at a lower line number (reached by a jump back).
    parts.append("def oneliner(xs):\n    t = 0\n    for x in xs: t += x\n    return t\n")
    return "\n".join(parts)

def table_of(code):
    if hasattr(code, "co_linetable") and sys.version_info >= (3, 10):
        return code.co_linetable
    return code.co_lnotab

def expected_lines(code):
    n = len(code.co_code)
    lines = [None] * n
    if sys.version_info >= (3, 10):
        for start, end, line in code.co_lines():
            for o in range(max(start, 0), min(end, n)):
                lines[o] = -1 if line is None else line
        lines = [-1 if l is None else l for l in lines]
    else:
        starts = list(dis.findlinestarts(code))
        k = 0
        cur = code.co_firstlineno
        for o in range(n):
            while k < len(starts) and starts[k][0] <= o:
                cur = starts[k][1]
                k += 1
            lines[o] = cur
    return lines

def addr2line():
    try:
        import ctypes
        f = ctypes.pythonapi.PyCode_Addr2Line
        f.argtypes = [ctypes.py_object, ctypes.c_int]
        f.restype = ctypes.c_int
        return f
    except Exception:
        return None

def ranges(lines, step):
    out = []
    for o in range(0, len(lines), step):
        if out and out[-1][2] == lines[o] and out[-1][1] == o:
            out[-1][1] = o + step
        else:
            out.append([o, o + step, lines[o]])
    if out:
        out[-1][1] = min(out[-1][1], len(lines))
    return out

def walk(code, prefix):
    yield prefix + code.co_name, code
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            for item in walk(c, prefix + code.co_name + "."):
                yield item

def main():
    step = 1 if sys.version_info < (3, 6) else 2
    a2l = addr2line()
    top = compile(sample_source(), "<linetable-fixture>", "exec")
    codes = []
    mismatches = []
    for name, code in walk(top, ""):
        lines = expected_lines(code)
        entry = {
            "name": name,
            "firstlineno": code.co_firstlineno,
            "code_len": len(code.co_code),
            "table": binascii.hexlify(table_of(code)).decode("ascii"),
            "ranges": ranges(lines, step),
        }
        if a2l is not None:
            for o in range(0, len(lines), step):
                got = a2l(code, o)
                if got != lines[o]:
                    mismatches.append("%s offset %d: co_lines/findlinestarts %d, PyCode_Addr2Line %d"
                                      % (name, o, lines[o], got))
            entry["line_at_minus1"] = a2l(code, -1)
        codes.append(entry)
    sys.stdout.write(json.dumps({
        "python": "%d.%d.%d" % tuple(sys.version_info[:3]),
        "checked_with_addr2line": a2l is not None,
        "mismatches": mismatches,
        "codes": codes,
    }))

main()
'''


def interpreters(extra):
    found = []
    try:
        root = subprocess.check_output(["pyenv", "root"], stderr=subprocess.DEVNULL, text=True).strip()
    except (OSError, subprocess.CalledProcessError):
        root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    for path in sorted(glob.glob(os.path.join(root, "versions", "*", "bin", "python[23].*"))):
        if re.search(r"/python[23]\.\d+$", path):
            found.append(("pyenv", path))
    if os.path.exists("/usr/bin/python3.11"):
        found.append(("system", "/usr/bin/python3.11"))
    env = os.environ.get("PYINSPECT_TEST_PYTHONS", "")
    for path in [p for p in re.split(r"[:\s]+", env) if p] + list(extra):
        found.append(("extra", path))
    return found


def format_of(major, minor):
    if (major, minor) < (3, 6):
        return "lnotab27"
    if (major, minor) < (3, 10):
        return "lnotab36"
    if (major, minor) == (3, 10):
        return "linetable310"
    return "locations311"


def version_key(v):
    return tuple(int(x) for x in v.split("."))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--output", default=os.path.join(here, "..", "tests", "unit", "data", "linetables.json"))
    ap.add_argument("--python", action="append", default=[], help="another interpreter to include")
    args = ap.parse_args()

    entries = []
    for source, path in interpreters(args.python):
        for variant, env_extra in [("default", {}), ("no_debug_ranges", {"PYTHONNODEBUGRANGES": "1"})]:
            env = dict(os.environ)
            env.pop("PYTHONNODEBUGRANGES", None)
            env.update(env_extra)
            try:
                out = subprocess.run([path, "-"], input=PROBE.encode(), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env, check=True).stdout
            except (OSError, subprocess.CalledProcessError) as e:
                sys.exit("probe failed on %s: %s" % (path, getattr(e, "stderr", b"").decode(errors="replace") or e))
            data = json.loads(out)
            major, minor = (int(x) for x in data["python"].split(".")[:2])
            if variant == "no_debug_ranges" and (major, minor) < (3, 11):
                continue  # the option exists from 3.11 on
            if data["mismatches"]:
                sys.exit("%s (%s): co_lines/findlinestarts and PyCode_Addr2Line disagree:\n  %s"
                         % (path, variant, "\n  ".join(data["mismatches"][:20])))
            entries.append({
                "python": data["python"],
                "source": source,
                "variant": variant,
                "format": format_of(major, minor),
                "step": 1 if (major, minor) < (3, 6) else 2,
                "checked_with_addr2line": data["checked_with_addr2line"],
                "codes": data["codes"],
            })
            print("%-8s %-7s %-16s %-13s %3d code objects%s" % (
                data["python"], source, variant, format_of(major, minor), len(data["codes"]),
                "" if data["checked_with_addr2line"] else " (no ctypes: not cross-checked)"))
    if not entries:
        sys.exit("no interpreters found")
    entries.sort(key=lambda e: (version_key(e["python"]), e["source"], e["variant"]))
    doc = {
        "generator": "scripts/gen-linetable-fixtures.py",
        "about": "Line tables compiled by real CPython interpreters and the line of each instruction "
                 "offset as CPython computes it; ranges are [start, end, line] over byte offsets.",
        "versions": entries,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        # One code object per line keeps the file reviewable and diffs small.
        f.write("{\n")
        f.write('  "generator": %s,\n' % json.dumps(doc["generator"]))
        f.write('  "about": %s,\n' % json.dumps(doc["about"]))
        f.write('  "versions": [\n')
        for i, e in enumerate(entries):
            head = {k: v for k, v in e.items() if k != "codes"}
            f.write("    " + json.dumps(head)[:-1] + ', "codes": [\n')
            for j, c in enumerate(e["codes"]):
                f.write("      " + json.dumps(c, separators=(",", ":")) + ("," if j + 1 < len(e["codes"]) else "") + "\n")
            f.write("    ]}" + ("," if i + 1 < len(entries) else "") + "\n")
        f.write("  ]\n}\n")
    print("wrote %s (%d tables)" % (os.path.relpath(args.output), sum(len(e["codes"]) for e in entries)))


if __name__ == "__main__":
    main()
