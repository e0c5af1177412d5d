#!/usr/bin/env python3
"""Installing like a real tool.

  check_packaging.py --build BUILD_DIR --source SOURCE_DIR --check install|deb

install: `cmake --install` into a temporary prefix puts the program, the man page, the bash
completion and the documentation in place; the installed program runs and names the CPython
versions it supports; the man page renders with man(1) and documents every command and every
option each command's --help lists; the completion offers every option each command's --help lists, and every command.
deb: `cpack -G DEB` makes a package whose contents are the same files, whose control data names
its dependencies, and whose extracted program runs.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

COMMANDS = ["stack", "tasks", "heap", "memory", "refs", "record", "top", "info", "dump", "abi"]


def fail(msg):
    print("FAIL packaging: " + msg)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def run(cmd, **kw):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
    check(p.returncode == 0, "%s exited %d: %s" % (" ".join(cmd), p.returncode, p.stderr.decode()[-2000:]))
    return p.stdout.decode()


def help_options(pyinspect, command):
    out = run([pyinspect, command, "--help"])
    opts = set(re.findall(r"^\s+(?:-\w \[ )?(--[a-z][a-z-]*)", out, re.M))
    opts.discard("--pid")
    opts.discard("--action")
    opts.discard("--binary")
    return opts


def completion(completion_file, words):
    script = ('source %s\nCOMP_WORDS=(%s)\nCOMP_CWORD=%d\n_pyinspect\nprintf "%%s\\n" "${COMPREPLY[@]}"\n'
              % (completion_file, " ".join("'%s'" % w for w in words), len(words) - 1))
    return set(run(["bash", "-c", script]).split())


SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def known_versions():
    with open(os.path.join(SOURCE, "src", "abi", "versions.def")) as f:
        return ["%s.%s" % m for m in re.findall(r"^PYVERSION\((\d+), *(\d+)", f.read(), re.M)]


def range_of(versions):
    """"2.7 and 3.6-3.14" from ["2.7", "3.6", ...]: runs of consecutive minors."""
    runs = []
    for v in versions:
        ma, mi = (int(x) for x in v.split("."))
        if runs and runs[-1][1] == (ma, mi - 1):
            runs[-1][1] = (ma, mi)
        else:
            runs.append([(ma, mi), (ma, mi)])
    texts = ["%d.%d" % a if a == b else "%d.%d-%d.%d" % (a + b) for a, b in runs]
    return texts[0] if len(texts) == 1 else ", ".join(texts[:-1]) + " and " + texts[-1]


def check_tree(root, pyinspect):
    for rel in ["bin/pyinspect", "share/man/man1/pyinspect.1.gz", "share/bash-completion/completions/pyinspect",
                "share/doc/pyinspect/README.md", "share/doc/pyinspect/usage.md", "share/doc/pyinspect/safety.md"]:
        check(os.path.exists(os.path.join(root, rel)), "%s not installed" % rel)
    exe = os.path.join(root, "bin", "pyinspect")
    version = run([exe, "--version"])
    check(re.match(r"pyinspect \d+\.\d+\.\d+\n", version), "--version: %r" % version)
    # One list of versions (src/abi/versions.def): --version, the man page, the package's
    # description, completion and the README all say the same.
    known = known_versions()
    m = re.search(r"Supports CPython (.+?) \(", version)
    check(m is not None, "--version names no CPython versions: %r" % version)
    range_text = m.group(1)
    check(range_text == range_of(known), "--version says %r, versions.def gives %r" % (range_text, range_of(known)))
    with open(os.path.join(SOURCE, "README.md")) as f:
        readme = re.sub(r"\s+", " ", f.read())
    check("Works on CPython %s " % range_text in readme, "README.md does not say it works on CPython %s" % range_text)
    man = run(["man", "-l", os.path.join(root, "share/man/man1/pyinspect.1.gz")], env=dict(os.environ, MANWIDTH="100",
                                                                                        MAN_KEEP_FORMATTING="0"))
    man = re.sub(r".\x08", "", man)
    for section in ["NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "EXIT STATUS", "EXAMPLES"]:
        check(re.search(r"^%s" % section, man, re.M), "man page has no %s section" % section)
    for c in COMMANDS:
        check(re.search(r"pyinspect\s+%s" % c, man), "man page does not document `pyinspect %s`" % c)
    check(version.split()[1] in man, "man page does not carry the version %s" % version.split()[1])
    check("(%s;" % range_text in re.sub(r"\s+", " ", man), "man page does not name CPython %s" % range_text)
    # --help lists every exit code docs/exit-codes.md documents.
    with open(os.path.join(SOURCE, "docs", "exit-codes.md")) as f:
        codes = re.findall(r"^\| (\d+) \|", f.read(), re.M)
    usage = run([exe, "--help"])
    check(len(codes) >= 12, "docs/exit-codes.md lists only %s" % codes)
    missing = [c for c in codes if not re.search(r"\b%s\b" % c, usage)]
    check(not missing, "--help does not list the exit codes %s of docs/exit-codes.md" % missing)
    # An option broken at its hyphen by the line fill is one word; spaces a justified line widened, one.
    flat = re.sub(r"\s+", " ", re.sub(r"-\n\s*", "-", man))
    for c in COMMANDS:
        missing = sorted(o for o in help_options(pyinspect, c) if not re.search(re.escape(o) + r"\b", flat))
        check(not missing, "man page does not document `pyinspect %s` %s" % (c, " ".join(missing)))
    comp = os.path.join(root, "share/bash-completion/completions/pyinspect")
    check(set(COMMANDS) <= completion(comp, ["pyinspect", ""]), "completion does not offer every command")
    for c in COMMANDS:
        want = help_options(pyinspect, c)
        got = completion(comp, ["pyinspect", c, "--"] if c != "abi" else ["pyinspect", c, "dump", "--"])
        missing = want - got
        check(not missing, "completion for `%s` lacks %s" % (c, sorted(missing)))
    got = completion(comp, ["pyinspect", "stack", "1", "--python", ""])
    check(got == set(known), "completion of --python: %s, versions.def %s" % (sorted(got), known))
    got = completion(comp, ["pyinspect", "heap", "1", "--by", ""])
    check(got == {"kind", "type", "module", "size"}, "completion of --by: %s" % got)
    got = completion(comp, ["pyinspect", "record", "1", "--format", ""])
    check(got == {"flamegraph", "folded", "speedscope", "json"}, "completion of --format: %s" % got)
    got = completion(comp, ["pyinspect", "top", "1", "--sort", ""])
    check(got == {"own", "total", "own-time", "total-time"}, "completion of --sort: %s" % got)
    print("installed tree ok: program, man page (%d lines), completion for %d commands, docs"
          % (len(man.splitlines()), len(COMMANDS)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--check", choices=["install", "deb"], required=True)
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    pyinspect = os.path.join(build, "pyinspect")
    tmp = tempfile.mkdtemp(prefix="pyinspect-pkg-")
    try:
        if args.check == "install":
            run(["cmake", "--install", build, "--prefix", os.path.join(tmp, "usr")])
            check_tree(os.path.join(tmp, "usr"), pyinspect)
        else:
            run(["cpack", "-G", "DEB", "-B", tmp, "--config", os.path.join(build, "CPackConfig.cmake")], cwd=tmp)
            debs = [f for f in os.listdir(tmp) if f.endswith(".deb")]
            check(len(debs) == 1, "cpack made %s" % debs)
            deb = os.path.join(tmp, debs[0])
            info = run(["dpkg-deb", "-I", deb])
            for field in ["Package: pyinspect", "Depends: ", "Recommends: graphviz", "Architecture: "]:
                check(field in info, "control data lacks %r:\n%s" % (field, info))
            root = os.path.join(tmp, "root")
            run(["dpkg-deb", "-x", deb, root])
            check_tree(os.path.join(root, "usr"), pyinspect)
            print("package %s ok" % debs[0])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("ok packaging.%s" % args.check)


if __name__ == "__main__":
    main()
