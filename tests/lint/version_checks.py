#!/usr/bin/env python3
"""Fails if code outside src/abi compares CPython versions (docs/architecture.md, principles: one
door per version). Only the abi layer knows version numbers; everything else asks the layout for
a member, a size or a named fact (src/abi/facts.hpp).

Looks, outside comments, for: PyVersion comparisons (at_least, is), a version's major or minor
compared or tested, the old `python2` trait, and version numbers compared with a literal."""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
PATTERNS = [
    (re.compile(r"\bat_least\s*\("), "PyVersion::at_least"),
    (re.compile(r"\bversion\w*\s*(\.|->)\s*is\s*\("), "PyVersion::is"),
    (re.compile(r"\b(major|minor|micro)\b\s*(==|!=|<=|>=|<|>)"), "a major/minor/micro comparison"),
    (re.compile(r"(==|!=|<=|>=|<|>)\s*\w*\.(major|minor|micro)\b"), "a major/minor/micro comparison"),
    (re.compile(r"\bpython2\b"), "a python2 flag"),
    (re.compile(r"\bversion\w*\s*(==|!=|<=|>=|<|>)\s*\d"), "a version compared with a number"),
    (re.compile(r"\bPY_VERSION_HEX\b|\b0x0[23][0-9a-f]{6}\b", re.I), "a PY_VERSION_HEX value"),
]


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)  # strings: messages may name versions
    return re.sub(r"//[^\n]*", "", text)


def main():
    src = os.path.join(ROOT, "src")
    found, files = [], 0
    for dirpath, _, names in os.walk(src):
        rel_dir = os.path.relpath(dirpath, src)
        if rel_dir == "abi" or rel_dir.startswith("abi" + os.sep):
            continue
        for name in sorted(names):
            if not name.endswith((".cpp", ".hpp", ".h")):
                continue
            files += 1
            path = os.path.join(dirpath, name)
            with open(path) as f:
                lines = strip_comments(f.read()).splitlines()
            for i, line in enumerate(lines, 1):
                for rx, what in PATTERNS:
                    if rx.search(line):
                        found.append("%s:%d: %s: %s" % (os.path.relpath(path, ROOT), i, what, line.strip()))
    if files < 20:
        print("only %d source files found under %s: is this the repository?" % (files, src))
        return 1
    print("checked %d files outside src/abi" % files)
    if found:
        print("CPython version checks outside src/abi (make each a named fact in src/abi/facts.hpp):")
        print("\n".join("  " + f for f in found))
        return 1
    print("no version checks outside src/abi")
    return 0


if __name__ == "__main__":
    sys.exit(main())
