#!/usr/bin/env python3
"""One integration test on one interpreter: run_test.py --interpreters F --python ID --test NAME.

Every expected value comes from outside pyinspect: the target's own sys._current_frames()
(targets/_park.py), its threading names and native ids, or gdb's py-bt with CPython's own
python-gdb.py."""
import argparse
import collections
import json
import os
import re
import select
import shutil
import subprocess
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Target, TestFailure, check, compare_stacks, compare_thread, load_interpreter,  # noqa: E402
                     run_pyinspect, stack_json, wait_running)

TESTS = {}


def test(name, min_version=(2, 7), applies=None):
    def deco(fn):
        TESTS[name] = (fn, min_version, applies or (lambda interp: True))
        return fn
    return deco


def stack_test(script, **kw):
    def run(ctx):
        with Target(ctx.interp, script) as t:
            if t.report["gil_holder"]:
                # The main thread dropped the GIL to park; under load the spinner may take a
                # while to be scheduled and pick it up.
                holder = [th for th in t.report["threads"] if th["ident"] == t.report["gil_holder"]][0]
                wait_running(t.pid, holder["native_id"])
            got = stack_json(ctx.pyinspect, t.pid)
            compare_stacks(t.report, got, **kw)
    return run


test("threads")(stack_test("threads.py"))
test("deep")(stack_test("deep.py"))
test("busy")(stack_test("busy.py"))
test("many-threads")(stack_test("many_threads.py"))
test("coroutines", (3, 6))(stack_test("coroutines.py"))


@test("nonblocking")
def nonblocking(ctx):
    with Target(ctx.interp, "threads.py") as t:
        got = stack_json(ctx.pyinspect, t.pid, ["--nonblocking"])
        check(got["paused"] is False, "--nonblocking reported a pause")
        compare_stacks(t.report, got)


@test("embedded-tables")
def embedded_tables(ctx):
    """--no-dwarf: the layout must come from the tables in the binary and still be right."""
    with Target(ctx.interp, "threads.py") as t:
        if ctx.interp["debug_build"]:
            code, out, err = run_pyinspect(ctx.pyinspect, ["stack", str(t.pid), "--no-dwarf"], check_exit=False)
            check(code == 6 and "debug build" in err, "debug build without DWARF: exit %d, %r" % (code, err))
            return
        got = stack_json(ctx.pyinspect, t.pid, ["--no-dwarf"])
        check("embedded table" in got["python"]["layout_source"], "layout source %r" % got["python"]["layout_source"])
        compare_stacks(t.report, got)


@test("find-interpreter")
def find_interpreter(ctx):
    """Each way of finding the interpreter list that applies to this build finds the same one."""
    v = (ctx.interp["major"], ctx.interp["minor"])
    methods = ["scan"]
    if v >= (3, 7):
        methods.append("runtime")
    else:
        methods.append("code")
        if not ctx.interp.get("stripped_libpython"):
            methods.append("symbol")
    # A way that does not apply to this version is refused in one line that says why (exit 5).
    absent = "symbol" if v >= (3, 7) else "runtime"
    with Target(ctx.interp, "threads.py") as t:
        for m in methods:
            got = stack_json(ctx.pyinspect, t.pid, ["--find-interpreter", m])
            compare_stacks(t.report, got)
        code, _, err = run_pyinspect(ctx.pyinspect, ["stack", str(t.pid), "--find-interpreter", absent],
                                     check_exit=False)
        lines = err.strip().splitlines()
        want = "symbol interp_head" if absent == "symbol" else "no _PyRuntime"
        check(code == 5 and len(lines) == 1 and ("method '%s'" % absent) in lines[0] and want in lines[0],
              "--find-interpreter %s: exit %d, %r" % (absent, code, err))


@test("text")
def text_output(ctx):
    """The text form shows the same threads and frames, innermost first."""
    with Target(ctx.interp, "threads.py") as t:
        _, out, _ = run_pyinspect(ctx.pyinspect, ["--color=never", "stack", str(t.pid)])
        blocks = re.split(r"^(?=Thread )", out, flags=re.M)
        check(blocks[0].startswith("Process %d: " % t.pid), "header: %r" % blocks[0][:200])
        check("CPython " + t.report["version"] in blocks[0], "header lacks version: %r" % blocks[0][:200])
        seen = {}
        for b in blocks[1:]:
            m = re.match(r'Thread (\d+) "([^"]*)" \(([^)]*)\)\n', b)
            check(m is not None, "thread header: %r" % b[:200])
            frames = re.findall(r"^    (\S.*) \((.*):(\d+|\?)\)$", b, flags=re.M)
            seen[m.group(2)] = (int(m.group(1)), frames)
        for exp in t.report["threads"]:
            check(exp["name"] in seen, "thread %s missing from text output" % exp["name"])
            native, frames = seen[exp["name"]]
            if exp["native_id"]:
                check(native == exp["native_id"], "%s: TID %d" % (exp["name"], native))
            want = [(f["function"], f["file"], str(f["line"])) for f in exp["frames"]]
            check(frames == want, "%s: text frames %s != %s" % (exp["name"], frames, want))


@test("subinterpreters", (3, 6))
def subinterpreters(ctx):
    with Target(ctx.interp, "subinterpreters.py") as t:
        got = stack_json(ctx.pyinspect, t.pid)
        check(got["interpreters"] == 2, "expected 2 interpreters, got %d" % got["interpreters"])
        main_threads = [th for th in got["threads"] if th["interpreter_id"] == 0]
        sub_threads = [th for th in got["threads"] if th["interpreter_id"] != 0]
        # The main interpreter: exactly what it reported about itself.
        main_report = dict(t.report)
        compare_stacks(main_report, dict(got, threads=main_threads))
        # The subinterpreter: the thread that runs its code, frames as it reported them.
        sub_exp = t.report["extra"]["subinterpreter_frames"]
        runner = [th for th in t.report["threads"] if th["ident"] == t.report["extra"]["runner"]][0]
        matches = [th for th in sub_threads if [(f["function"], f["file"], f["line"]) for f in th["frames"]] ==
                   [(f["function"], f["file"], f["line"]) for f in sub_exp]]
        check(len(matches) == 1, "no subinterpreter thread with frames %s; got %s" %
              (sub_exp, [th["frames"] for th in sub_threads]))
        if runner["native_id"]:
            check(matches[0]["native_id"] == runner["native_id"],
                  "subinterpreter thread TID %s != runner %s" % (matches[0]["native_id"], runner["native_id"]))


@test("d-state")
def d_state(ctx):
    """A thread in uninterruptible sleep cannot be stopped: the pause must not wait its full
    timeout for it (2 s) but leave it after a short grace, and say which thread was not stopped;
    its stack is still read (it does not change while it sleeps)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    check(cc is not None, "no C compiler to build targets/_vfork_hold.c (build-essential)")
    import tempfile
    build = tempfile.mkdtemp(prefix="pyinspect-vfork-")
    lib = os.path.join(build, "libvforkhold.so")
    here = os.path.dirname(os.path.abspath(__file__))
    subprocess.check_call([cc, "-shared", "-fPIC", "-O1", "-o", lib, os.path.join(here, "..", "targets", "_vfork_hold.c")])
    try:
        with Target(ctx.interp, "dstate.py", args=[lib]) as t:
            held = [th for th in t.report["threads"] if th["name"] == "in-vfork"][0]
            tid = held["native_id"]
            # Handshake: the kernel says the thread is in D.
            deadline = time.time() + 60
            while open("/proc/%d/task/%d/stat" % (t.pid, tid)).read().rsplit(")", 1)[1].split()[0] != "D":
                check(time.time() < deadline, "the thread never entered uninterruptible sleep")
                select.select([], [], [], 0.01)
            got = stack_json(ctx.pyinspect, t.pid)
            compare_stacks(t.report, got, check_gil=False)
            check(got["threads_not_stopped"] == 1, "threads_not_stopped %s" % got["threads_not_stopped"])
            for th in got["threads"]:
                want = th["native_id"] != tid
                check(th["stopped"] is want, "thread %s: stopped %s, expected %s" % (th["native_id"], th["stopped"], want))
            check(got["pause_us"] < 500000, "the pause lasted %.0f ms: it waited for the sleeping thread" % (
                got["pause_us"] / 1000))
            print("pause %.1f ms with a thread in D" % (got["pause_us"] / 1000))
            _, out, _ = run_pyinspect(ctx.pyinspect, ["--color=never", "stack", str(t.pid)])
            check(re.search(r'^Thread %d "in-vfork" \(disk-sleep, not stopped\)$' % tid, out, re.M) is not None,
                  "the text does not say the thread was not stopped:\n" + out)
            check("1 thread did not stop" in out, "no line about the thread that did not stop:\n" + out)
            h = heap_json(ctx, t.pid, "--top", "1")
            check(any("did not stop" in w for w in h["warnings"]), "heap does not say a thread did not stop: %s" % h["warnings"])
    finally:
        shutil.rmtree(build, ignore_errors=True)


def parse_py_bt(text):
    """gdb py-bt output -> {LWP: [(function, file, line), ...]} (innermost first)."""
    threads = {}
    current = None
    for line in text.splitlines():
        m = re.match(r'^Thread \d+ \(Thread 0x[0-9a-f]+ \(LWP (\d+)\)', line)
        if m:
            current = threads.setdefault(int(m.group(1)), [])
            continue
        m = re.match(r'^\s+File "(.*)", line (\d+), in (\S+)$', line)
        if m and current is not None:
            current.append((m.group(3), m.group(1), int(m.group(2))))
    return threads


@test("abi-check", applies=lambda interp: not interp.get("stripped_libpython"))
def abi_check(ctx):
    """The table built into pyinspect for this version equals the interpreter's own DWARF."""
    binary = ctx.interp["libpython"] or os.path.realpath(ctx.interp["path"])
    code, out, err = run_pyinspect(ctx.pyinspect, ["abi", "check", binary, "--python", ctx.interp["version"]],
                                   check_exit=False)
    print(out + err)
    check(code == 0, "abi check exited %d" % code)
    if not ctx.interp["debug_build"]:
        check("matches embedded table" in out, "unexpected abi check output")
    code, out, err = run_pyinspect(ctx.pyinspect, ["abi", "check", binary, "--python", ctx.interp["version"], "--json"],
                                   check_exit=False)
    doc = json.loads(out)
    check(code == 0 and doc["differences"] == [], "abi check --json: exit %d, %r" % (code, doc["differences"][:3]))
    check(doc["version"] == ctx.interp["version"] and doc["debug_build"] == ctx.interp["debug_build"],
          "abi check --json describes %s (debug %s)" % (doc["version"], doc["debug_build"]))
    if ctx.interp["debug_build"]:
        return
    check(doc["matches"] is True, "abi check --json: matches is %r" % doc["matches"])
    # Checked against another version's table (the repository's pyabi/ file, made from that
    # version's own DWARF): the differences it reports are exactly the members whose offsets differ
    # between this binary's DWARF (as `abi dump` gives it) and that file.
    major, minor = ctx.interp["version"].split(".")[:2]
    other = "3.9" if (major, minor) != ("3", "9") else "3.10"
    table_path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "pyabi", "cpython-%s.json" % other)
    with open(table_path) as f:
        table = json.load(f)
    _, out, _ = run_pyinspect(ctx.pyinspect, ["abi", "dump", binary, "--python", other + ".0"])
    dwarf = json.loads(out)
    code, out, _ = run_pyinspect(ctx.pyinspect, ["abi", "check", binary, "--python", other + ".0", "--json"],
                                 check_exit=False)
    doc = json.loads(out)
    expected = {}
    for kind in ("fields", "sizes"):
        for key in set(table[kind]) | set(dwarf[kind]):
            if table[kind].get(key) != dwarf[kind].get(key):
                expected[key] = (dwarf[kind].get(key), table[kind].get(key))
    got = dict((d["id"], (d["dwarf"], d["other"])) for d in doc["differences"] if d["kind"] == "table")
    check(expected, "this binary's layout equals the %s table: pick another version for the test" % other)
    check(got == expected, "abi check against the %s table: %d differences, expected %d; first mismatches %r" % (
        other, len(got), len(expected), sorted(set(got.items()) ^ set(expected.items()))[:4]))
    check(code == 1 and doc["matches"] is False, "abi check with differences: exit %d, matches %r" % (code, doc["matches"]))


@test("gdb", applies=lambda interp: not interp.get("stripped_libpython"))
def gdb_oracle(ctx):
    """The same stacks as gdb's py-bt (CPython's own python-gdb.py), thread by thread."""
    script = ctx.interp.get("gdb_script")
    check(script is not None and shutil.which("gdb") is not None,
          "no gdb or no python-gdb.py next to %s" % ctx.interp["path"])
    with Target(ctx.interp, "threads.py") as t:
        gdb = subprocess.run(["gdb", "-nx", "-batch", "-p", str(t.pid), "-ex", "source " + script,
                              "-ex", "thread apply all py-bt"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             timeout=300)
        expected = parse_py_bt(gdb.stdout.decode("utf-8", "replace"))
        check(expected, "gdb py-bt printed no Python frames:\n%s" % gdb.stderr.decode()[-2000:])
        got = stack_json(ctx.pyinspect, t.pid)
        by_tid = dict((th["native_id"], th) for th in got["threads"])
        own = dict((th["native_id"], th) for th in t.report["threads"])
        # gdb printing no frames for a thread is the oracle saying nothing: accepted only where the
        # target itself (sys._current_frames()) has no Python frames on that thread.
        for th in t.report["threads"]:
            check(th["native_id"] is not None, "the target did not report the native id of thread %s" % th["name"])
            if th["frames"]:
                check(expected.get(th["native_id"]),
                      "the target has %d Python frames on thread %s (LWP %d), gdb py-bt printed %s" % (
                          len(th["frames"]), th["name"], th["native_id"],
                          "none" if th["native_id"] in expected else "no such thread"))
        for tid, frames in expected.items():
            if not frames:
                mine = own.get(tid)
                check(not mine or not mine["frames"], "gdb py-bt printed no frames for LWP %d, which the target "
                      "says runs %d Python frames" % (tid, len(mine["frames"]) if mine else 0))
                continue
            check(tid in by_tid, "gdb shows Python frames for LWP %d, pyinspect has no such thread" % tid)
            # py-bt names functions by co_name; compare names, files and lines.
            act = [(f["name"], f["file"], f["line"]) for f in by_tid[tid]["frames"]]
            check([a[:2] for a in act] == [g[:2] for g in frames],
                  "LWP %d: pyinspect %s\n  gdb py-bt %s" % (tid, act, frames))
            for i, (a, g) in enumerate(zip(act, frames)):
                if a[2] == g[2]:
                    continue
                # python-gdb.py of 3.6-3.9 reads co_lnotab's line steps as unsigned and so gets
                # lines wrong after a backwards step; the target's own f_lineno settles it.
                mine = own.get(tid)
                truth = mine["frames"][i]["line"] if mine and i < len(mine["frames"]) else None
                check(truth == a[2], "LWP %d frame %d: pyinspect line %d, gdb py-bt %d, the target itself %s" %
                      (tid, i, a[2], g[2], truth))
                print("note: LWP %d frame %d (%s): gdb py-bt says line %d, the target itself and pyinspect %d" %
                      (tid, i, a[0], g[2], a[2]))


@test("mount-namespace", applies=lambda interp: "/versions/" in interp["path"] and not interp.get("stripped_libpython"))
def mount_namespace(ctx):
    """A target in another mount namespace, whose binaries are at paths that do not exist in
    ours: pyinspect must reach them through /proc/PID/root."""
    check(os.geteuid() == 0 and shutil.which("unshare"), "needs root and unshare(1) to make a mount namespace")
    prefix = os.path.dirname(os.path.dirname(os.path.realpath(ctx.interp["path"])))
    hidden = "/opt/pyinspect-mntns-%d" % os.getpid()
    check(not os.path.exists(hidden), hidden + " exists")
    interp = dict(ctx.interp)
    # Inside the namespace: an empty tmpfs on /opt, the interpreter's prefix bound below it.
    wrapper = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "targets", "_in_mount_namespace.sh")
    interp["path"] = wrapper
    interp["env"] = dict(ctx.interp.get("env") or {}, PYINSPECT_NS_PREFIX=prefix, PYINSPECT_NS_HIDDEN=hidden,
                         PYINSPECT_NS_PYTHON=os.path.realpath(ctx.interp["path"]).replace(prefix, hidden, 1))
    with Target(interp, "threads.py") as t:
        maps = open("/proc/%d/maps" % t.pid).read()
        check(hidden in maps, "the target does not run from the hidden prefix")
        got = stack_json(ctx.pyinspect, t.pid)
        compare_stacks(t.report, got)
        check(got["python"]["binary"].startswith(hidden), "binary %s" % got["python"]["binary"])
        # Native frames: the binaries are opened through the target's root, so the interpreter's
        # own C frames are named from its symbols (those of the hidden copy, not ours).
        native = stack_json(ctx.pyinspect, t.pid, ["--native", "--no-cache"])
        named = [f for th in native["threads"] for f in th["frames"]
                 if f["kind"] == "native" and (f["library"] or "").startswith(hidden) and f["symbol"]]
        check(named, "--native: no named C frame in the hidden prefix's binaries")
        compare_stacks(t.report, {"pid": native["pid"], "python": native["python"], "threads": [
            dict(th, frames=[f for f in th["frames"] if f["kind"] == "python"]) for th in native["threads"]
            if th.get("python", True)]})


def heap_json(ctx, pid, *args):
    _, out, _ = run_pyinspect(ctx.pyinspect, ["heap", str(pid), "--json"] + list(args))
    return json.loads(out)


def check_by_type(theirs, mine):
    """Every type: at least what the target saw, and where the counts are equal, exactly the same
    total size (sys.getsizeof, object for object). A couple of objects held only by C module state
    (posix's, _functools') are out of anyone's reach from outside."""
    problems = []
    for kind, (n, size) in sorted(theirs.items()):
        got = mine.get(kind, (0, 0))
        if got[0] < n - 2:
            problems.append("%s: pyinspect found %d, the target %d" % (kind, got[0], n))
        elif got[0] == n and got[1] != size:
            problems.append("%s: %d objects, size %d here, %d in the target" % (kind, n, got[1], size))
    check(not problems, "\n  ".join(["census differs:"] + problems))


@test("heap-census")
def heap_census(ctx):
    """pyinspect heap --by type against the target's own census (gc.get_objects(), closure over
    gc.get_referents(), sys.getsizeof; targets/census.py)."""
    with Target(ctx.interp, "census.py") as t:
        c = t.report["extra"]["census"]
        j = heap_json(ctx, t.pid, "--by", "type", "--top", "0")
        mine = dict((r["kind"], (r["count"], r["size"])) for r in j["rows"])
        check(j["total_objects"] == sum(v[0] for v in mine.values()), "rows do not add up to total_objects")
        check(j["total_size"] == sum(v[1] for v in mine.values()), "rows do not add up to total_size")
        # The classes the target made: exact counts and sizes.
        for kind, n in c["made"].items():
            want = c["by_type"][kind]
            check(mine.get(kind) == (want[0], want[1]),
                  "%s: pyinspect %s, the target %s (made %d)" % (kind, mine.get(kind), want, n))
        # Every type: at least what the target saw (pyinspect also finds what gc.get_referents
        # cannot reach: interned strings, code objects' name tuples...), and where the counts are
        # equal, exactly the same total size, object for object (sys.getsizeof).
        check_by_type(c["by_type"], mine)
        # Totals: within 1% of the target's own, in bytes (the objects only pyinspect sees are
        # small: names and tables), leaving out the report the target made after measuring.
        payload = t.payload_len + (37 if ctx.interp["major"] == 2 else 33)
        total = j["total_size"] - payload
        check(abs(total - c["size"]) <= 0.01 * c["size"],
              "total size %d (without the %d-byte report) vs the target's %d" % (total, payload, c["size"]))
        check(j["total_objects"] >= c["objects"] - 5, "objects %d < the target's %d" % (j["total_objects"], c["objects"]))
        print("objects: target %d, pyinspect %d (+%.1f%%); bytes: target %d, pyinspect %d (+%.2f%%)" % (
            c["objects"], j["total_objects"], 100.0 * (j["total_objects"] - c["objects"]) / c["objects"],
            c["size"], total, 100.0 * (total - c["size"]) / c["size"]))
        # The 64 MiB string is the largest object, and gc.garbage is what the target says.
        j2 = heap_json(ctx, t.pid, "--largest", "3")
        big = j2["largest"][0]
        check(big["kind"] == "str" and big["size"] >= 64 << 20 and big["repr"].startswith("'xxxx"),
              "largest object: %s" % big)
        check(j2["memory"]["garbage_count"] == c["garbage"],
              "gc.garbage: pyinspect %d, the target %d" % (j2["memory"]["garbage_count"], c["garbage"]))
        pm = c.get("pymalloc")
        got = j2["memory"].get("pymalloc")
        statics = ctx.interp["major"] == 2 or ctx.interp["minor"] <= 11  # arenas in static variables
        if ctx.interp.get("stripped_libpython") and statics:
            # Without a symbol table pymalloc's static state cannot be found: it must say so.
            why = j2["memory"].get("pymalloc_unknown") or ""
            check(got is None and "no symbol table" in why, "stripped build: pymalloc %s, reason %r" % (got, why))
            print("pymalloc not read, as it says: %s" % why)
        elif pm is None:
            # 2.7 has no sys._debugmallocstats to compare with: what pyinspect read must hold.
            check(got is not None and got["arenas"] > 0 and got["pool_bytes_used"] > 0, "pymalloc: %s" % got)
            print("pymalloc (no sys._debugmallocstats to compare with): %s" % got)
        else:
            check(got is not None, "pymalloc state not found: %s" % j2["memory"].get("pymalloc_unknown"))
            check(got["arenas"] == pm["arenas allocated current"], "arenas %d vs %d" % (got["arenas"], pm["arenas allocated current"]))
            for mine_key, theirs in (("pool_bytes_used", "bytes in allocated blocks"), ("pool_bytes_free", "bytes in available blocks")):
                # Measured a moment apart (the target builds its report in between).
                check(abs(got[mine_key] - pm[theirs]) <= 0.05 * pm[theirs] + 262144,
                      "%s %d vs sys._debugmallocstats %d" % (mine_key, got[mine_key], pm[theirs]))
        if ctx.interp["major"] == 2:
            check(c["garbage"] == 100 and j2["memory"]["garbage"][0]["kind"] == "__main__.WithDel",
                  "2.7 uncollectable cycles: %s" % j2["memory"]["garbage"])


def read_listing(path):
    """ "address size type" lines (the target's census, or pyinspect heap --list-objects) ->
    {address: (type, size or None)}."""
    objects = {}
    with open(path) as f:
        for line in f:
            addr, size, kind = line.rstrip("\n").split(" ", 2)
            objects[int(addr, 16)] = (kind, None if size == "-" else int(size))
    return objects


@test("heap-real-world")
def heap_real_world(ctx):
    """A heap as a real program leaves it (targets/realworld.py: thirty standard-library modules,
    four of CPython's own test modules run in-process, ctypes, decimal, struct, deques) against the
    classic in-process census (gc.get_objects() and the closure over gc.get_referents()): every type
    at least as many objects as the target counts, every object the target counts found, under its
    type, with the size sys.getsizeof gives it; and pyinspect's account of the objects it finds
    beyond those."""
    with Target(ctx.interp, "realworld.py", timeout=300) as t:
        x = t.report["extra"]
        print("imported %d modules; ran %s" % (len(x["imported"]), x["tests_run"]))
        check(sum(x["tests_run"].values()) > 100, "the target ran too few tests: %s" % x["tests_run"])
        # Handshake: the listing appears once the target's census is done (it then runs nothing).
        deadline = time.time() + 300
        while not os.path.exists(x["listing"]):
            check(t.proc.poll() is None, "the target exited during its census")
            check(time.time() < deadline, "the target's census did not finish")
            select.select([], [], [], 0.05)
        theirs = read_listing(x["listing"])
        c = {"objects": len(theirs), "by_type": collections.Counter(kind for kind, _ in theirs.values())}
        check(len(theirs) > 10000, "the target listed only %d objects" % len(theirs))
        listing = os.path.join(t.dir, "pyinspect.txt")
        j = heap_json(ctx, t.pid, "--by", "type", "--top", "0", "--list-objects", listing)
        mine = read_listing(listing)
        check(len(mine) == j["total_objects"], "--list-objects wrote %d objects, the census counts %d" % (
            len(mine), j["total_objects"]))
        by_type = dict((r["kind"], r["count"]) for r in j["rows"])
        problems, missing, reused = [], collections.Counter(), 0
        for kind, n in sorted(c["by_type"].items()):
            if by_type.get(kind, 0) < n:
                problems.append("%s: pyinspect counts %d, the target %d" % (kind, by_type.get(kind, 0), n))
        wrong_size = []
        with open(x["listing"] + ".tmp.dead") as f:
            dead = set(int(line, 16) for line in f)
        for addr, (kind, size) in theirs.items():
            got = mine.get(addr)
            if got is None and addr in dead:
                print("a dead weakref only the target's census held is gone: %#x" % addr)
            elif got is None:
                missing[kind] += 1
            elif got[0] != kind:
                reused += 1  # freed and reused since the target's census (its report's own objects)
            elif got[1] != size:
                wrong_size.append("%s at %#x: pyinspect %s, sys.getsizeof %d" % (kind, addr, got[1], size))
        check(reused == 0, "%d objects of the target's census are of another type in pyinspect's" % reused)
        if missing:
            problems.append("objects of the target's census pyinspect did not find: %s" % dict(missing.most_common(12)))
        if wrong_size:
            problems.append("%d sizes differ from sys.getsizeof: %s" % (len(wrong_size), wrong_size[:12]))
        check(not problems, "\n  ".join(["census differs:"] + problems))
        # Where the objects beyond the target's own census come from.
        found = dict((f["how"], f) for f in j["found_through"])
        check(sum(f["objects"] for f in j["found_through"]) == j["total_objects"], "found_through does not add up")
        gc_seen = found["gc"]["objects"]
        check(gc_seen >= c["objects"], "pyinspect's gc-visible part has %d objects, the target's census %d" % (
            gc_seen, c["objects"]))
        print("objects: target's census %d; pyinspect %d, of which %d as gc sees them (+%.1f%%) and %s" % (
            c["objects"], j["total_objects"], gc_seen, 100.0 * (gc_seen - c["objects"]) / c["objects"],
            ", ".join("%d %s" % (f["objects"], f["how"]) for f in j["found_through"] if f["how"] != "gc" and f["objects"])))
        check(gc_seen <= c["objects"] * 1.05 + 100,
              "pyinspect's gc-visible part (%d) is much larger than the target's census (%d): references marked "
              "visible that gc.get_referents does not report" % (gc_seen, c["objects"]))


@test("heap-sizes")
def heap_sizes(ctx):
    """One object of every kind sizes.cpp treats apart (targets/sizes.py), each with the size
    sys.getsizeof gives it in the target; the one whose class defines __sizeof__ in Python is
    listed with its size unknown, and says why."""
    with Target(ctx.interp, "sizes.py") as t:
        probes = t.report["extra"]["probes"]
        listing = os.path.join(t.dir, "objects.txt")
        j = heap_json(ctx, t.pid, "--top", "1", "--list-objects", listing)
        mine = read_listing(listing)
        problems = []
        for addr, (label, size, tname) in sorted(probes.items(), key=lambda kv: kv[1][0]):
            got = mine.get(int(addr, 16))
            if got is None:
                problems.append("%s (%s): not found" % (label, tname))
            elif label == "python __sizeof__ (unknown)":
                if got[1] is not None:
                    problems.append("%s: pyinspect gives %s, but only running __sizeof__ would tell" % (label, got[1]))
            elif got[1] != size:
                problems.append("%s (%s): pyinspect %s, sys.getsizeof %d" % (label, tname, got[1], size))
        check(not problems, "\n  ".join(["%d of %d objects differ:" % (len(problems), len(probes))] + problems))
        check(any("Python" in why for why in j["unknown_size_reasons"]), "unknown sizes: %s" % j["unknown_size_reasons"])
        for name in t.report["extra"]["unmirrored"]:
            check(j["unmirrored_sizeof_types"].get(name, 0) >= 1, "%s has a C __sizeof__ pyinspect does not mirror, "
                  "but is not listed as such: %s" % (name, j["unmirrored_sizeof_types"]))
        print("%d objects, every size as sys.getsizeof gives it" % len(probes))


@test("heap-text")
def heap_text(ctx):
    """The guppy-style table: header, rows that add up, percentages, and the groupings."""
    with Target(ctx.interp, "census.py") as t:
        _, out, _ = run_pyinspect(ctx.pyinspect, ["--color=never", "heap", str(t.pid), "--top", "5"])
        lines = out.splitlines()
        m = re.match(r"Partition of a set of (\d+) objects\. Total size = (\d+) bytes\.$", lines[0])
        check(m is not None, "header: %r" % lines[0])
        total_n, total_s = int(m.group(1)), int(m.group(2))
        check(lines[1].split() == ["Index", "Count", "%", "Size", "%", "Cumulative", "%", "Kind", "(class", "/", "dict",
                                   "of", "class)"], "column header: %r" % lines[1])
        cum = 0
        for i in range(5):
            f = lines[2 + i].split(None, 7)
            idx, n, pn, size, ps, cu, pc, kind = int(f[0]), int(f[1]), int(f[2]), int(f[3]), int(f[4]), int(f[5]), int(f[6]), f[7]
            cum += size
            check(idx == i and cu == cum, "row %d: %r" % (i, lines[2 + i]))
            check(abs(pn - 100.0 * n / total_n) <= 0.5 and abs(ps - 100.0 * size / total_s) <= 0.5,
                  "row %d percentages: %r" % (i, lines[2 + i]))
        check(lines[2].split()[-1] == "str", "the largest kind is not str: %r" % lines[2])
        check(lines[7].startswith("<") and "more rows" in lines[7], "no '<N more rows>' line: %r" % lines[7])
        check(re.search(r"^Process RSS .* Python objects ", out, re.M) is not None, "no memory summary:\n" + out)
        if ctx.interp["major"] == 2:
            check(re.search(r"gc\.garbage holds 100 uncollectable objects: 100 __main__\.WithDel", out) is not None,
                  "2.7: gc.garbage not reported:\n" + out)
        # Kinds: instances' dicts are "dict of <class>" where the instances have dict objects.
        kinds = dict((r["kind"], r["count"]) for r in heap_json(ctx, t.pid, "--top", "0")["rows"])
        check(kinds.get("__main__.ObjectA") == 2000, "ObjectA kind: %s" % kinds.get("__main__.ObjectA"))
        dicts = kinds.get("dict of __main__.ObjectA", 0)
        if (ctx.interp["major"], ctx.interp["minor"]) < (3, 11):
            check(dicts == 2000, "dict of __main__.ObjectA: %d" % dicts)
        else:
            check(dicts == 0, "3.11+ instances keep attributes without dicts; pyinspect shows %d dicts" % dicts)
        mods = dict((r["kind"], r["count"]) for r in heap_json(ctx, t.pid, "--by", "module", "--top", "0")["rows"])
        check(mods.get("__main__", 0) >= 3500 + 100 * (ctx.interp["major"] == 2), "--by module __main__: %s" % mods.get("__main__"))
        by_size = heap_json(ctx, t.pid, "--by", "size", "--top", "0")
        check(sum(r["count"] for r in by_size["rows"]) == by_size["total_objects"] and
              all(r["size"] == int(r["kind"]) * r["count"] for r in by_size["rows"]), "--by size rows")


@test("heap-nonblocking")
def heap_nonblocking(ctx):
    """--nonblocking on a quiet target gives the same census, without stopping it."""
    with Target(ctx.interp, "census.py") as t:
        c = t.report["extra"]["census"]
        j = heap_json(ctx, t.pid, "--by", "type", "--top", "0", "--nonblocking")
        check(j["paused"] is False and j["pause_us"] == 0, "--nonblocking paused the target")
        mine = dict((r["kind"], (r["count"], r["size"])) for r in j["rows"])
        for kind in c["made"]:
            check(mine.get(kind) == tuple(c["by_type"][kind]), "%s: %s vs %s" % (kind, mine.get(kind), c["by_type"][kind]))


@test("heap-bigbuf")
def heap_bigbuf(ctx):
    """A heap that is mostly data buffers (targets/bigbuf.py): the buffers are left out of the copy
    (copied bytes well below the target's RSS), the census is still the target's own, and the
    objects only a 34 MiB list refers to are all found, read from the copy (its item array was
    copied, not taken for data: nothing was read live after the pause)."""
    with Target(ctx.interp, "bigbuf.py") as t:
        c = t.report["extra"]["census"]
        j = heap_json(ctx, t.pid, "--by", "type", "--top", "0", "--largest", "10")
        m = j["memory"]
        data = c["buffer_bytes"]
        check(m["left_out_bytes"] >= 0.9 * data, "left out %d bytes of the %d in buffers" % (m["left_out_bytes"], data))
        check(m["copied_bytes"] + 0.9 * data <= c["rss"], "copied %d bytes of an RSS of %d with %d in buffers" % (
            m["copied_bytes"], c["rss"], data))
        check(m["live_read_bytes"] == 0 and m["live_read_ranges"] == 0,
              "%d bytes read live from %d ranges left out" % (m["live_read_bytes"], m["live_read_ranges"]))
        check(not [w for w in j["warnings"] if "read live" in w], "warnings: %s" % j["warnings"])
        mine = dict((r["kind"], (r["count"], r["size"])) for r in j["rows"])
        item = c["item_kind"]
        check(mine.get(item) == tuple(c["by_type"][item]) and c["by_type"][item][0] == c["items"],
              "%s: pyinspect %s, the target %s" % (item, mine.get(item), c["by_type"][item]))
        check_by_type(c["by_type"], mine)
        total = j["total_size"] - t.payload_len
        check(abs(total - c["size"]) <= 0.01 * c["size"], "total size %d vs the target's %d" % (total, c["size"]))
        # The biggest objects, their sizes from their headers (in the pages kept of each buffer).
        big = {}
        for o in j["largest"]:
            big.setdefault(o["kind"], o)  # the largest of each kind
        check(c["blob_kind"] in big and big[c["blob_kind"]]["size"] == c["blob_size"] and
              "ZZZZ" in big[c["blob_kind"]]["repr"], "largest: %s" % j["largest"])
        check(big.get("list", {}).get("size") == c["list_size"], "largest: %s" % j["largest"])
        print("copied %d MiB of an RSS of %d MiB, %d MiB left out in %d ranges; %d objects, %s: %d" % (
            m["copied_bytes"] >> 20, c["rss"] >> 20, m["left_out_bytes"] >> 20, m["left_out_ranges"],
            j["total_objects"], item, mine[item][0]))


def memory_json(ctx, pid, *args):
    _, out, _ = run_pyinspect(ctx.pyinspect, ["memory", str(pid), "--json"] + list(args))
    return json.loads(out)


def near(got, want, what, rel=0.05, floor=1 << 20):
    """got within rel of want, or within floor bytes (small quantities)."""
    check(abs(got - want) <= max(rel * want, floor),
          "%s: pyinspect %d, the target's own figure %d (%+.1f%%)" % (what, got, want,
                                                                      100.0 * (got - want) / max(want, 1)))


@test("memory")
def memory(ctx):
    """pyinspect memory against what the target built and its own figures (targets/memory.py):
    each category within 5% (or 1 MiB) of the target's sys.getsizeof sums, _debugmallocstats,
    mallinfo2 and smaps; the categories add up to the RSS within 2%. The same of its cores:
    pyinspect dump's, gdb's gcore's, the kernel's (docs/memory.md, "Core files")."""
    check_memory(ctx, ctx.interp, cores=("dump", "gcore", "kernel"))


@test("memory-malloc", (3, 6))
def memory_malloc(ctx):
    """The same with PYTHONMALLOC=malloc: no pymalloc, every object in glibc's chunks; the
    allocator is named as such."""
    interp = dict(ctx.interp)
    interp["env"] = dict(ctx.interp.get("env") or {}, PYTHONMALLOC="malloc")
    check_memory(ctx, interp)


def check_memory(ctx, interp, cores=("dump",)):
    """The account of the live target (and with --no-dwarf), then of its cores: "dump"
    (pyinspect dump's), "gcore" (gdb's, which holds every page, touched or not), "kernel" (the
    kernel's, of the target killed by SIGABRT: last)."""
    import core_tests
    malloc_only = (interp.get("env") or {}).get("PYTHONMALLOC") == "malloc"
    with Target(interp, "memory.py", timeout=300) as t:
        x = t.report["extra"]
        runs = [("", memory_json(ctx, t.pid), None)]
        if not ctx.interp["debug_build"]:
            # Without libc's debug info: malloc's arenas found from the chunk headers.
            runs.append((" (--no-dwarf)", memory_json(ctx, t.pid, "--no-dwarf"), None))
        if x["ndarray_sizeof"] is not None:
            listing = os.path.join(t.dir, "objects.txt")
            heap_json(ctx, t.pid, "--top", "1", "--list-objects", listing)
            sizes = [size for (tname, size) in read_listing(listing).values() if tname == "numpy.ndarray"]
            check(x["ndarray_sizeof"] in sizes, "numpy.ndarray: sys.getsizeof %d, pyinspect heap gives %s" %
                  (x["ndarray_sizeof"], sizes))
        # Its cores, after the live runs: the same account, less what a core cannot hold
        # (docs/memory.md, "Core files").
        with core_tests.scratch() as d:
            for kind in cores:
                core = os.path.join(d, kind + ".core")
                if kind == "dump":
                    core_tests.dump(ctx, t.pid, core)
                elif kind == "gcore":
                    core_tests.gcore(t.pid, core)
                else:
                    core = core_tests.kernel_core_of(t, d)
                    if core is None:
                        continue
                j = memory_json(ctx, core)
                check(j["core"] == core and j["core_sparse"] == (kind != "gcore"),
                      "memory of the %s core: core %r, core_sparse %r" % (kind, j["core"], j["core_sparse"]))
                runs.append((" (%s core)" % kind, j, kind))
                os.unlink(core)
        for how, j, of_core in runs:
            if not of_core:
                check(j["core"] is None, "core%s: %r" % (how, j["core"]))
            cats = dict((c["name"], c) for c in j["categories"])
            for name in ("python_objects", "object_buffers", "pymalloc_free", "malloc_free", "malloc_unowned",
                         "thread_stacks", "code_and_libraries", "other"):
                check(name in cats, "no category %s%s" % (name, how))
            total = sum(c["bytes"] for c in j["categories"])
            print("%s%s: RSS %d bytes; %s; warnings %s" % (ctx.interp["id"], how, j["rss_bytes"], ", ".join(
                "%s %d" % (c["name"], c["bytes"]) for c in j["categories"]), j["warnings"]))
            anon_rss = x["smaps"]["rss"] - x["smaps"]["files"]
            if of_core == "gcore":
                # Every page of its writable mappings, touched or not: at least what was resident.
                check(j["rss_bytes"] >= anon_rss * 0.98, "memory in the gcore core%s: %d, less than the target's "
                      "RSS less its files' %d" % (how, j["rss_bytes"], anon_rss))
            elif of_core:
                # What was resident, less the files' pages a core leaves out (their code): their
                # data the process wrote is in it (the kernel's: the whole of each data mapping
                # written), a few MiB of libraries' data at most.
                near(j["rss_bytes"], anon_rss, "memory in the core, against the target's RSS less its files'" + how,
                     rel=0.02, floor=8 << 20)
                check(cats["code_and_libraries"]["bytes"] <= x["smaps"]["files"] + (8 << 20), "code_and_libraries%s: "
                      "%d, more than the files' RSS %d" % (how, cats["code_and_libraries"]["bytes"], x["smaps"]["files"]))
            else:
                near(j["rss_bytes"], x["smaps"]["rss"], "RSS" + how, rel=0.02)
            near(total, j["rss_bytes"], "sum of the categories" + how, rel=0.02, floor=0)
            want_buffers = sum(x["buffers"].values())
            near(cats["object_buffers"]["bytes"], want_buffers, "object_buffers" + how)
            # The target sees what gc reaches; pyinspect also what only other references reach
            # (docs/heap.md, "Counting like gc"): the part gc sees must match, the rest only add.
            po = cats["python_objects"]
            near(po["detail"]["gc_visible_sizeof_bytes"], x["object_bytes"],
                 "sys.getsizeof of the objects gc reaches" + how)
            check(po["bytes"] >= x["object_bytes"] - want_buffers - (1 << 20),
                  "python_objects%s: %d, less than the target's gc-reachable objects less their buffers (%d)"
                  % (how, po["bytes"], x["object_bytes"] - want_buffers))
            near(po["bytes"] + want_buffers, po["detail"]["sizeof_bytes"], "python_objects + buffers against the "
                 "sum of sys.getsizeof" + how, rel=0.001, floor=0)
            if of_core != "gcore":  # (gcore's: the stacks whole)
                near(cats["thread_stacks"]["bytes"], x["smaps"]["stacks"], "thread_stacks" + how)
            check(cats["thread_stacks"]["count"] == 3, "thread_stacks%s: %d stacks, the target has 3 threads"
                  % (how, cats["thread_stacks"]["count"]))
            if not of_core:
                near(cats["code_and_libraries"]["bytes"], x["smaps"]["files"], "code_and_libraries" + how)
            mf = cats["malloc_free"]
            check(not j["malloc"]["unknown"], "glibc malloc not read%s: %s" % (how, j["malloc"]["unknown"]))
            if x["mallinfo2"]:
                d = mf["detail"]
                near(d["bins_bytes"] + d["top_bytes"] + d["fastbins_bytes"], x["mallinfo2"]["fordblks"],
                     "malloc free chunks (bins, top, fastbins) against mallinfo2's fordblks" + how)
                u = cats["malloc_unowned"]["detail"]
                near(u["heap_in_use_bytes"] + d["tcache_bytes"], x["mallinfo2"]["uordblks"],
                     "malloc chunks in use (tcache included, as mallinfo2 counts them) against uordblks" + how)
            # The freed, touched blocks are resident free memory inside the heap.
            check(mf["bytes"] >= x["freed_bytes"] * 0.95, "malloc_free%s: %d bytes, the target freed %d bytes of "
                  "touched blocks inside the heap" % (how, mf["bytes"], x["freed_bytes"]))
            un = cats["malloc_unowned"]["bytes"]
            check(x["unowned_expected"] <= un <= x["unowned_expected"] + max(0.05 * j["rss_bytes"], 8 << 20),
                  "malloc_unowned%s: %d bytes; the target keeps %d bytes no object points to" %
                  (how, un, x["unowned_expected"]))
            pf = cats["pymalloc_free"]
            print("%s%s: pymalloc figures %s, the target's %s" % (ctx.interp["id"], how, pf["detail"], x["pymalloc"]))
            if malloc_only:
                check("PYTHONMALLOC=malloc" in j["allocator"] and pf["bytes"] == 0 and pf["count"] == 0,
                      "PYTHONMALLOC=malloc%s: allocator %r, pymalloc_free %d bytes in %d arenas"
                      % (how, j["allocator"], pf["bytes"], pf["count"]))
            elif x["pymalloc"]:
                # (A libpython stripped of every symbol before 3.12 keeps the arena table in a static
                # variable nothing names: it is found among malloc's chunks.)
                check(pf["count"] == x["pymalloc"].get("arenas", pf["count"]), "pymalloc_free%s: %d arenas, "
                      "_debugmallocstats says %s" % (how, pf["count"], x["pymalloc"].get("arenas")))
                near(pf["detail"]["free_block_bytes"], x["pymalloc"]["available_blocks"],
                     "pymalloc free blocks against _debugmallocstats" + how)
                # Unused pools count only as far as they are resident (a pool never carved out of
                # its arena has no page yet): between the free blocks and free blocks + unused pools.
                lo, hi = x["pymalloc"]["available_blocks"], x["pymalloc"]["available_blocks"] + x["pymalloc"]["unused_pools"]
                slack = max(0.05 * hi, 1 << 20)
                check(lo - slack <= pf["bytes"] and (of_core == "gcore" or pf["bytes"] <= hi + slack),
                      "pymalloc_free%s: %d, _debugmallocstats says %d in available blocks and %d in unused pools"
                      % (how, pf["bytes"], lo, hi - lo))
            print("%s%s: RSS %d MiB; %s" % (ctx.interp["id"], how, j["rss_bytes"] >> 20, ", ".join(
                "%s %.1f MiB" % (c["name"], c["bytes"] / 1048576.0) for c in j["categories"])))


@test("heap-growth")
def heap_growth(ctx):
    """--growth: a string that grows (the seed's second leak) is what grew."""
    with Target(ctx.interp, "growing.py") as t:
        j = json.loads(run_pyinspect(ctx.pyinspect, ["heap", str(t.pid), "--growth", "1", "--json", "--by", "type"])[1])
        top = j["rows"][0]
        check(top["kind"] == "str" and top["size_change"] > 0, "largest growth: %s" % top)
        # The target appends 100 KiB every 20 ms: at least 1 MiB in a second, give or take.
        check(top["size_change"] >= 1 << 20, "str grew by only %d bytes" % top["size_change"])


@test("heap-retained")
def heap_retained(ctx):
    """--retained and the retained size refs prints, against the sums of sys.getsizeof the target
    computes over structures it built (targets/retained.py): a cache dict whose contents nothing
    else refers to, and two holders sharing one big string, which neither retains and the list
    holding them both does."""
    with Target(ctx.interp, "retained.py") as t:
        x = t.report["extra"]
        check(not x["problems"], "the target's structures are not what it meant to build: %s" % x["problems"])
        j = heap_json(ctx, t.pid, "--retained", "--top", "50")
        check(j["reachable_objects"] + j["unreachable_objects"] == j["total_objects"],
              "reachable %d + unreachable %d != %d" % (j["reachable_objects"], j["unreachable_objects"], j["total_objects"]))
        check(j["reachable_size"] + j["unreachable_size"] == j["total_size"], "sizes do not add up")
        rows = dict((r["address"], r) for r in j["retained"])
        sizes = [r["retained_size"] for r in j["retained"]]
        check(sizes == sorted(sizes, reverse=True), "rows not largest first: %s" % sizes)
        # The cache: exactly itself and its contents, with the chain refs --chain gives.
        c = x["cache"]
        row = rows.get(c["id"])
        check(row is not None, "CACHE (%#x) is not among the rows: %s" % (c["id"], [(hex(a), r["chain"]) for a, r in rows.items()]))
        check((row["retained_size"], row["retained_count"]) == (c["size"], c["count"]),
              "CACHE retains %d bytes in %d objects, the target counts %d in %d" % (
                  row["retained_size"], row["retained_count"], c["size"], c["count"]))
        check(row["kind"] == "dict" and row["size"] == c["own"], "CACHE row: %s" % row)
        check(row["chain"] == "sys.modules['__main__'].__dict__['CACHE']", "CACHE chain %r" % row["chain"])
        check(j["retained"][0]["address"] == c["id"], "the first row is not CACHE: %s" % j["retained"][0])
        # It is most of the heap: a leak suspect, said as the issue words it.
        suspects = dict((s["address"], s) for s in j["leak_suspects"])
        check(c["id"] in suspects, "CACHE (%d of %d bytes) is no leak suspect: %s" % (c["size"], j["total_size"], j["leak_suspects"]))
        want = "Leak suspect: sys.modules['__main__'].__dict__['CACHE'] (dict, %s items) retains " % format(c["items"], ",")
        check(suspects[c["id"]]["text"].startswith(want), "suspect line %r, expected %r..." % (suspects[c["id"]]["text"], want))
        share = 100.0 * c["size"] / j["total_size"]
        check(suspects[c["id"]]["text"].endswith("(%d%%)" % round(share)), "share: %r, %.1f%%" % (suspects[c["id"]]["text"], share))
        for s in j["leak_suspects"]:
            check(s["retained_size"] > 0.1 * j["total_size"], "suspect below 10%%: %s" % s)
        # The shared string hangs from PAIR: the holders' nearest common dominator. PAIR passes
        # nearly all it retains on to it, so the string is listed and PAIR is not (docs/heap.md).
        s = x["shared"]
        row = rows.get(s["id"])
        check(row is not None, "SHARED (%#x) is not among the rows" % s["id"])
        check(row["dominator"] == x["pair"]["id"], "SHARED's dominator %s, expected PAIR %#x" % (row["dominator"], x["pair"]["id"]))
        check((row["retained_size"], row["retained_count"]) == (s["size"], 1), "SHARED row: %s" % row)
        check(row["chain"] == "sys.modules['__main__'].__dict__['PAIR'][0].shared", "SHARED chain %r" % row["chain"])
        check(x["pair"]["id"] not in rows, "PAIR is listed although SHARED is nearly all it retains")
        # refs --address: each holder retains itself and its own strings, not SHARED; PAIR all.
        for name in ("h1", "h2", "pair", "cache"):
            o = x[name]
            r = refs_json(ctx, t.pid, "--address", hex(o["id"]), "--max-depth", "0")
            start = [n for n in r["nodes"] if n["start"]][0]
            check((start.get("retained_size"), start.get("retained_count")) == (o["size"], o["count"]),
                  "refs --address %s: retains %s bytes in %s objects, the target counts %d in %d" % (
                      name, start.get("retained_size"), start.get("retained_count"), o["size"], o["count"]))
        check(x["h1"]["size"] + x["h2"]["size"] + s["size"] < x["pair"]["size"], "the target's sums do not nest")
        # --chain prints it too, in text and JSON.
        _, out, _ = run_pyinspect(ctx.pyinspect, ["--color=never", "refs", str(t.pid), "--address", hex(c["id"]), "--chain"])
        check("retains %d bytes" % c["size"] in out and "in %d objects" % c["count"] in out, "refs --chain text:\n" + out)
        # The text table: the suspect line and the chain.
        _, out, _ = run_pyinspect(ctx.pyinspect, ["--color=never", "heap", str(t.pid), "--retained", "--top", "5"])
        check(want in out and "sys.modules['__main__'].__dict__['PAIR'][0].shared" in out, "heap --retained text:\n" + out)
        # Questions that do not go together, and a --top that would print millions of chains.
        for bad in (["--by", "type"], ["--largest", "3"], ["--top", "0"]):
            code, _, err = run_pyinspect(ctx.pyinspect, ["heap", str(t.pid), "--retained"] + bad, check_exit=False)
            check(code == 2 and len(err.strip().splitlines()) == 1, "--retained %s: exit %d, %r" % (" ".join(bad), code, err))
        print("CACHE retains %d bytes in %d objects (%.0f%% of %d); PAIR %d, each holder %d and %d" % (
            c["size"], c["count"], share, j["total_size"], x["pair"]["size"], x["h1"]["size"], x["h2"]["size"]))


@test("info")
def info(ctx):
    with Target(ctx.interp, "threads.py") as t:
        _, out, _ = run_pyinspect(ctx.pyinspect, ["info", str(t.pid), "--json"])
        j = json.loads(out)
        check(j["python"]["version"] == t.report["version"], "version %s" % j["python"]["version"])
        check(j["threads"] == len(t.report["threads"]), "threads %s != %d" % (j["threads"], len(t.report["threads"])))
        check(j["python"]["shared_library"] == ctx.interp["shared"], "shared_library %s" % j["python"]["shared_library"])
        want_binary = ctx.interp["stripped_libpython"] or ctx.interp["libpython"] or os.path.realpath(ctx.interp["path"])
        check(os.path.realpath(j["python"]["binary"]) == os.path.realpath(want_binary),
              "binary %s != %s" % (j["python"]["binary"], want_binary))
        check(j["python"]["debug_build"] == ctx.interp["debug_build"], "debug_build %s" % j["python"]["debug_build"])
        if ctx.interp.get("stripped_libpython"):
            check(j["python"]["debug_file"] is None and j["python"]["layout_source"].endswith("embedded table"),
                  "stripped libpython: layout %s, debug file %s" % (j["python"]["layout_source"], j["python"]["debug_file"]))
        _, text, _ = run_pyinspect(ctx.pyinspect, ["info", str(t.pid)])
        check("CPython " + t.report["version"] in text, "text info lacks the version:\n" + text)


def refs_json(ctx, pid, *args):
    _, out, _ = run_pyinspect(ctx.pyinspect, ["refs", str(pid), "--json"] + list(args))
    return json.loads(out)


def neighbours(j, start_id, backwards=False):
    """The start node's direct neighbours in a refs --json answer: {address: label}, and the
    "more references" node's count, if any."""
    nodes = dict((n["id"], n) for n in j["nodes"])
    start = [n for n in j["nodes"] if n["start"] and n["address"] == start_id]
    check(len(start) == 1, "start object %#x not among the nodes" % start_id)
    sid = start[0]["id"]
    found, more = {}, 0
    for e in j["edges"]:
        near, far = (e["to"], e["from"]) if backwards else (e["from"], e["to"])
        if near != sid:
            continue
        if nodes[far].get("more"):
            more += nodes[far]["more"]
        else:
            found[nodes[far]["address"]] = e["label"]
    return found, more


@test("refs-graph")
def refs_graph(ctx):
    """refs / --backrefs against the target's own gc.get_referents / gc.get_referrers, edge labels
    the target's structure implies, and a 1000-item list that collapses (targets/refs.py)."""
    with Target(ctx.interp, "refs.py") as t:
        x = t.report["extra"]
        objs = x["objects"]
        ignore = set(x["ignore"])
        problems = []
        for name, o in sorted(objs.items()):
            j = refs_json(ctx, t.pid, "--address", hex(o["id"]), "--max-depth", "1", "--too-many", "100000")
            check(j["matched"] == 1 and j["mode"] == "refs", "%s: %s" % (name, j["matched"]))
            got, more = neighbours(j, o["id"])
            # What gc.get_referents() gives, but a dict's string keys (they label the edges).
            want = set(o["referents"]) - set(o["str_keys"])
            if name == "big":
                want = set(x["big_ids"])
            missing = want - set(got)
            extra = set(got) - set(o["referents"])
            if missing:
                problems.append("%s: pyinspect lacks referents %s (types %s)" % (
                    name, sorted(missing), [o["referent_types"][o["referents"].index(m)] for m in missing]))
            if extra:
                problems.append("%s: pyinspect has referents the target does not: %s" % (name, sorted(extra)))
            # Backwards: every referrer the target knows of, and besides those only the test's
            # own bookkeeping and frames.
            j = refs_json(ctx, t.pid, "--address", hex(o["id"]), "--backrefs", "--max-depth", "1", "--too-many", "100000")
            got_back, _ = neighbours(j, o["id"], backwards=True)
            kinds = dict((n["address"], n["kind"]) for n in j["nodes"])
            missing = set(o["referrers"]) - set(got_back)
            if missing:
                problems.append("%s: pyinspect lacks referrers %s" % (name, sorted(missing)))
            extra = [a for a in set(got_back) - set(o["referrers"]) - ignore if kinds[a] != "frame"]
            if extra:
                problems.append("%s: pyinspect has referrers the target does not: %s" % (
                    name, [(hex(a), kinds[a]) for a in extra]))
        check(not problems, "\n  ".join(["graph differs:"] + problems))

        # Labels the structure implies.
        def label(start, to, *args):
            j = refs_json(ctx, t.pid, "--address", hex(start), "--max-depth", "1", "--too-many", "100000", *args)
            got, _ = neighbours(j, start)
            check(to in got, "%#x does not refer to %#x" % (start, to))
            return got[to]
        leaf = objs["leaf"]["id"]
        check(label(objs["items"]["id"], leaf) == "[3]", "items -> leaf")
        new_dicts = ctx.interp["major"] == 3 and ctx.interp["minor"] >= 11
        if "a.__dict__" in objs:
            check(label(objs["a"]["id"], objs["a.__dict__"]["id"]) == "__dict__", "a -> a.__dict__")
            check(label(objs["a.__dict__"]["id"], objs["b"]["id"]) == "['b']", "a.__dict__ -> b")
            check(label(objs["registry.__dict__"]["id"], objs["items"]["id"]) == "['items']", "registry.__dict__ -> items")
        elif new_dicts and objs["b"]["id"] in objs["a"]["referents"]:
            check(label(objs["a"]["id"], objs["b"]["id"]) == "b", "a -> b")
        check(label(objs["bound"]["id"], objs["service"]["id"]) in ("__self__", "im_self"), "bound -> self")
        cell = objs["cell"]["id"]
        closure = [r for r, ty in zip(objs["counter"]["referents"], objs["counter"]["referent_types"]) if ty == "tuple"]
        check(any(label(c, cell) == "[0]" for c in closure), "counter's closure -> cell")
        check(label(objs["counter"]["id"], closure[0]) in ("__closure__", "func_closure"), "counter -> __closure__")
        check(label(cell, objs["cell"]["referents"][0]) == "cell_contents", "cell -> contents")

        # The 1000-item list collapses: 10 items shown, in order, and "990 more references".
        big = objs["big"]["id"]
        j = refs_json(ctx, t.pid, "--address", hex(big), "--max-depth", "1")
        got, more = neighbours(j, big)
        check(more == 990, "BIG: %d more references, expected 990" % more)
        check(sorted(got.items(), key=lambda kv: int(kv[1][1:-1])) == [(x["big_ids"][i], "[%d]" % i) for i in range(10)],
              "BIG: first ten items %s" % sorted(got.values()))

        # --type, bare and qualified; the count of matches; an unknown type.
        j = refs_json(ctx, t.pid, "--type", "Leaf", "--max-objects", "2")
        check(j["matched"] == 5 and len(j["starts"]) == 2, "--type Leaf: matched %d, starts %d" % (j["matched"], len(j["starts"])))
        j = refs_json(ctx, t.pid, "--type", "__main__.Registry")
        check(j["matched"] == 1, "--type __main__.Registry matched %d" % j["matched"])
        code, _, err = run_pyinspect(ctx.pyinspect, ["refs", str(t.pid), "--type", "NoSuchClass"], check_exit=False)
        check(code == 11 and "NoSuchClass" in err and len(err.strip().splitlines()) == 1, "unknown --type: %d %r" % (code, err))


@test("refs-chain")
def refs_chain(ctx):
    """--chain against the shortest backward chain the target finds itself (breadth first over
    gc.get_referrers up to a module, as objgraph.find_backref_chain)."""
    with Target(ctx.interp, "refs.py") as t:
        x = t.report["extra"]
        leaf = x["objects"]["leaf"]["id"]
        j = refs_json(ctx, t.pid, "--address", hex(leaf), "--chain")
        c = j["chain"]
        check(c["found"], "no chain found")
        addr = dict((n["id"], n["address"]) for n in j["nodes"])
        path = [addr[n] for n in c["path"]]
        want = [o["id"] for o in x["chain"]]
        check(path[0] not in want and path[1:] == want,
              "chain %s, the target's %s" % ([hex(a) for a in path], [(hex(o["id"]), o["type"]) for o in x["chain"]]))
        check(c["text"] == "sys.modules['__main__'].__dict__['REGISTRY'].items[3]", "chain text %r" % c["text"])
        _, out, _ = run_pyinspect(ctx.pyinspect, ["--color=never", "refs", str(t.pid), "--address", hex(leaf), "--chain"])
        check(c["text"] in out, "text output lacks the chain:\n" + out)
        # The cycle is held by no root (on 2.7 only by gc.garbage, which does not count).
        a = x["objects"]["a"]["id"]
        _, out, _ = run_pyinspect(ctx.pyinspect, ["refs", str(t.pid), "--address", hex(a), "--chain"])
        if ctx.interp["major"] == 2:
            check("sys.modules['gc'].__dict__['garbage'][" in out, "2.7: the chain to a cycle in gc.garbage:\n" + out)
        else:
            check("No chain" in out, "3.x: an unreachable cycle has no chain:\n" + out)


@test("refs-cycles")
def refs_cycles(ctx):
    """--cycles: the seed's leak, ObjectA <-> ObjectB with __del__; on 2.7 kept in gc.garbage
    for good, on 3.x unreachable (the target disabled its collector) and collectable."""
    with Target(ctx.interp, "refs.py") as t:
        x = t.report["extra"]
        objs = x["objects"]
        j = refs_json(ctx, t.pid, "--type", "ObjectA", "--cycles")
        check(j["matched"] == 1 and len(j["cycles"]) == 1, "cycles: %s" % j.get("cycles"))
        cyc = j["cycles"][0]
        addr = dict((n["id"], n["address"]) for n in j["nodes"])
        members = set(addr[m] for m in cyc["members"])
        # a, b and their __dict__s where the target has them as objects.
        want = set([objs["a"]["id"], objs["b"]["id"]])
        for name in ("a", "b"):
            o = objs[name]
            want |= set(r for r, ty in zip(o["referents"], o["referent_types"]) if ty == "dict")
        check(members == want and cyc["count"] == len(want), "cycle members %s, expected %s" % (
            sorted(hex(m) for m in members), sorted(hex(m) for m in want)))
        check(cyc["finalizer"], "the cycle's __del__ not seen")
        if ctx.interp["major"] == 2:
            check(x["garbage"] and cyc["in_garbage"] and not cyc["collectable"] and not cyc["reachable"],
                  "2.7: %s (gc.garbage holds %s)" % (cyc, x["garbage"]))
        else:
            check(not x["garbage"] and not cyc["in_garbage"] and cyc["collectable"] and not cyc["reachable"],
                  "3.x: %s" % cyc)
        _, out, _ = run_pyinspect(ctx.pyinspect, ["--color=never", "refs", str(t.pid), "--type", "ObjectA", "--cycles"])
        check(re.search(r"Cycle 1: %d objects" % len(want), out) and "has __del__" in out, "text:\n" + out)
        if ctx.interp["major"] == 2:
            check("In gc.garbage" in out and "does not free cycles whose objects define __del__" in out, "text:\n" + out)
        # Not in a cycle: a Leaf (its class is not counted).
        j = refs_json(ctx, t.pid, "--address", hex(objs["leaf"]["id"]), "--cycles")
        check(j["cycles"] == [], "a Leaf in a cycle: %s" % j["cycles"])


@test("refs-dot")
def refs_dot(ctx):
    """DOT that Graphviz accepts and xdot opens, with the same nodes and edges as --json; --svg
    renders it; unwritable paths fail cleanly."""
    dot = shutil.which("dot")
    check(dot is not None, "Graphviz's dot is not installed (scripts/setup.sh installs it)")
    xdot, xvfb_run = shutil.which("xdot"), shutil.which("xvfb-run")
    check(xdot is not None and xvfb_run is not None, "xdot or xvfb-run is not installed (scripts/setup.sh installs them)")
    with Target(ctx.interp, "refs.py") as t:
        d = t.report["extra"]["objects"]
        out_dir = t.dir
        opened = []  # (DOT path, its --json) for xdot below
        for mode in ([], ["--backrefs"], ["--chain"], ["--cycles"]):
            start = d["leaf"]["id"] if mode != ["--cycles"] else d["a"]["id"]
            path = os.path.join(out_dir, "g%d.dot" % len(opened))
            svg = os.path.join(out_dir, "g.svg")
            run_pyinspect(ctx.pyinspect, ["refs", str(t.pid), "--address", hex(start), "--dot", path, "--svg", svg] + mode)
            j = refs_json(ctx, t.pid, "--address", hex(start), *mode)
            text = open(path).read()
            p = subprocess.run([dot, "-Tplain", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
            check(p.returncode == 0 and not p.stderr, "dot rejects %s: %s" % (mode, p.stderr))
            plain = p.stdout.splitlines()
            n_nodes = sum(1 for ln in plain if ln.startswith("node "))
            n_edges = sum(1 for ln in plain if ln.startswith("edge "))
            check(n_nodes == len(j["nodes"]) and n_edges == len(j["edges"]),
                  "%s: dot has %d nodes, %d edges; json %d, %d" % (mode, n_nodes, n_edges, len(j["nodes"]), len(j["edges"])))
            check(("%x" % start) in text, "the start object is not in the DOT")
            with open(svg) as f:
                check("<svg" in f.read(), "--svg did not write an SVG")
            opened.append((path, j))
        # Each file opens in xdot: its widget, under a virtual display, with no error to show.
        with open(xdot) as f:
            xdot_python = f.readline()[2:].strip()  # xdot's own interpreter, from its #! line
        # A display number of its own (tests run in parallel; -a moves on from a taken one), and a
        # second try should two servers still race for it.
        for attempt in range(2):
            p = subprocess.run([xvfb_run, "-a", "-n", str(100 + (os.getpid() + attempt * 7919) % 20000), xdot_python,
                                os.path.join(os.path.dirname(os.path.abspath(__file__)), "xdot_open.py")]
                               + [path for path, _ in opened],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=120)
            if p.returncode == 0 or "Xvfb failed to start" not in p.stderr:
                break
        check(p.returncode == 0, "xdot_open.py exited %d: %s" % (p.returncode, p.stderr[-2000:]))
        for (path, j), r in zip(opened, json.loads(p.stdout)):
            check(r["opened"] and not r["errors"], "xdot cannot open %s: %s" % (os.path.basename(path), r["errors"]))
            check(r["nodes"] == len(j["nodes"]) and r["edges"] == len(j["edges"]),
                  "xdot shows %d nodes, %d edges; json has %d, %d" % (r["nodes"], r["edges"], len(j["nodes"]), len(j["edges"])))
        code, _, err = run_pyinspect(ctx.pyinspect, ["refs", str(t.pid), "--type", "Leaf", "--dot", "/nonexistent/dir/g.dot"],
                                     check_exit=False)
        check(code == 9 and len(err.strip().splitlines()) == 1, "unwritable --dot: %d %r" % (code, err))


class Ctx(object):
    pass


# The profiler's tests (record, top) live in profile_tests.py.
import profile_tests  # noqa: E402
profile_tests.register(test)
# The native-frame tests (stack --native) live in native_tests.py.
import native_tests  # noqa: E402
native_tests.register(test)
# stack --locals: locals_tests.py.
import locals_tests  # noqa: E402
locals_tests.register(test)
# What blocked threads wait for: locks_tests.py.
import locks_tests  # noqa: E402
locks_tests.register(test)
# pyinspect tasks: tasks_tests.py.
import tasks_tests  # noqa: E402
tasks_tests.register(test)

import core_tests  # noqa: E402
core_tests.register(test)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--interpreters", required=True)
    ap.add_argument("--python")
    ap.add_argument("--test")
    ap.add_argument("--pyinspect")
    ap.add_argument("--list", action="store_true", help="print 'interpreter test' for every applicable pair")
    args = ap.parse_args()
    if args.list:
        with open(args.interpreters) as f:
            for interp in json.load(f):
                if interp.get("probe_failed"):  # it has its own failing entry (discover.py --check)
                    continue
                for name, (_, min_version, applies) in sorted(TESTS.items()):
                    if (interp["major"], interp["minor"]) >= min_version and applies(interp):
                        print("%s %s" % (interp["id"], name))
        return 0
    ctx = Ctx()
    ctx.interp = load_interpreter(args.interpreters, args.python)
    ctx.pyinspect = os.path.abspath(args.pyinspect)
    fn, min_version, applies = TESTS[args.test]
    if (ctx.interp["major"], ctx.interp["minor"]) < min_version or not applies(ctx.interp):
        print("not applicable to %s" % ctx.interp["id"])
        return 0
    try:
        fn(ctx)
    except TestFailure as e:
        print("FAIL %s on %s (%s): %s" % (args.test, ctx.interp["id"], ctx.interp["path"], e))
        return 1
    except Exception:
        traceback.print_exc()
        return 1
    print("ok %s on %s" % (args.test, ctx.interp["id"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
