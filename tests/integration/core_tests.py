"""Core files, registered into run_test.py: `pyinspect dump`'s, gdb's gcore's and the kernel's.
Stack, heap and refs of a core are judged against what the target said of itself before it
was dumped (targets/threads.py, census.py, refs.py: sys._current_frames(), its own census by
gc and sys.getsizeof, its own reference cycle), and gdb must read dump's cores; a crash
(targets/crash.py) must name the thread, the signal and the Python line the target reported
just before it crashed; heap --diff must see what a target that grows (targets/growing.py) adds."""
import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from harness import Target, check, compare_stacks, compare_thread, run_pyinspect

CORE_PATTERN = "/proc/sys/kernel/core_pattern"


@contextlib.contextmanager
def scratch():
    d = tempfile.mkdtemp(prefix="pyinspect-cores-")
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def dump(ctx, pid, path):
    _, _, err = run_pyinspect(ctx.pyinspect, ["dump", str(pid), "-o", path], timeout=300)
    m = re.search(r"the target was paused ([0-9.]+) ms", err)
    check(m is not None and os.path.getsize(path) > 0, "dump said: %r" % err)
    return float(m.group(1))


def gcore(pid, path):
    check(shutil.which("gdb") is not None, "no gdb (apt-get install gdb) to write a gcore")
    r = subprocess.run(["gdb", "-nx", "-batch", "-p", str(pid), "-ex", "gcore " + path],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600)
    check(os.path.exists(path), "gdb's gcore wrote nothing:\n%s" % r.stderr.decode(errors="replace")[-2000:])


def cores_of(ctx, t, d):
    """The parked target `t` dumped by pyinspect and by gcore: [(label, path)]."""
    mine = os.path.join(d, "dump.core")
    theirs = os.path.join(d, "gcore.core")
    pause_ms = dump(ctx, t.pid, mine)
    gcore(t.pid, theirs)
    print("dump: %.1f MiB, paused %.1f ms; gcore: %.1f MiB" % (
        os.path.getsize(mine) / 1048576.0, pause_ms, os.path.getsize(theirs) / 1048576.0))
    return [("dump", mine), ("gcore", theirs)]


def all_cores(ctx, t, d):
    """dump's and gcore's cores of the parked target `t`, then the kernel's (which kills it: the
    last), as (label, path); the kernel's is left out, with the reason printed, where the core
    pattern cannot be set."""
    for label, path in cores_of(ctx, t, d):
        yield label, path
    path = kernel_core_of(t, d)
    if path:
        yield "kernel", path


def core_segments(path):
    """The PT_LOAD program headers of an ELF core, as readelf lists them."""
    r = subprocess.run(["readelf", "-lW", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
    return [l for l in r.stdout.splitlines() if l.split()[:1] == ["LOAD"]]


def pyjson(ctx, args):
    return json.loads(run_pyinspect(ctx.pyinspect, args + ["--json"], timeout=300)[1])


def build_id(path):
    """The build-id binutils' readelf reads in the file's notes (hex), or None."""
    check(shutil.which("readelf") is not None, "no readelf (apt-get install binutils)")
    out = subprocess.run(["readelf", "-n", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE).stdout.decode()
    m = re.search(r"Build ID: ([0-9a-f]+)", out)
    return m.group(1) if m else None


def core_stack(ctx):
    """Each thread's Python stack from a core (dump's, gcore's, then the kernel's when the target
    is killed by SIGABRT), as the target saw it; no crash signal for a core of a running process;
    gdb lists every thread of dump's core."""
    with Target(ctx.interp, "threads.py") as t, scratch() as d:
        for label, path in cores_of(ctx, t, d):
            got = pyjson(ctx, ["stack", path])
            check(got["paused"] is False and got["core"] is not None and got["core"]["path"] == path,
                  "%s: core %s, paused %s" % (label, got["core"], got["paused"]))
            check(got["core"]["signal"] is None, "%s: a core of a running process says %s" % (label, got["core"]))
            try:
                compare_stacks(t.report, got)
            except Exception as e:
                raise type(e)("%s core: %s" % (label, e))
            print("%s core: %d threads, the target's own stacks" % (label, len(got["threads"])))
            if label == "dump":
                # --json: what it wrote, against the file and the target's threads.
                again = os.path.join(d, "again.core")
                j = json.loads(run_pyinspect(ctx.pyinspect, ["dump", str(t.pid), "-o", again, "--json"], timeout=300)[1])
                st = os.stat(again)
                want_threads = len(t.report["threads"])
                check(j["core"] == again and j["pid"] == t.pid and j["file_bytes"] == st.st_size and
                      0 < j["written_bytes"] <= st.st_size and j["threads"] == want_threads and j["pause_us"] > 0 and
                      j["mappings"] == len(core_segments(again)) and j["warnings"] == [],
                      "dump --json: %s; the file %d bytes, %d segments; the target %d threads" % (
                          j, st.st_size, len(core_segments(again)), want_threads))
                os.unlink(again)
                r = subprocess.run(["gdb", "-nx", "-batch", t.report["executable"], path, "-ex", "info threads"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
                lwps = set(int(x) for x in re.findall(r"LWP (\d+)", r.stdout.decode()))
                want = set(th["native_id"] for th in t.report["threads"])
                check(want <= lwps, "gdb's info threads on dump's core: LWPs %s, the target's threads %s\n%s" % (
                    sorted(lwps), sorted(want), r.stdout.decode()[-2000:]))
                print("gdb reads dump's core: %d threads" % len(lwps))
                # Another executable given for the one the process ran: its build-id (in the
                # core, from the ELF header page dump keeps) differs, and pyinspect says so.
                ids = [build_id(f) for f in (os.path.realpath(t.report["executable"]), "/bin/true")]
                code, _, err = run_pyinspect(ctx.pyinspect, ["stack", path, "--exe", "/bin/true"], check_exit=False)
                want = "(build-id %s here, %s in the core)" % (ids[1], ids[0])
                check(ids[0] and ids[1] and want in err, "--exe /bin/true: exit %d, %r; expected %r" % (code, err, want))
                print("--exe of another binary: warned, build-ids %s (here) and %s (in the core)" % (ids[1], ids[0]))
        # Last, the kernel's core of it, killed by SIGABRT where it was parked.
        path = kernel_core_of(t, d)
        if path:
            got = pyjson(ctx, ["stack", path])
            check(got["core"]["signal"] == signal.SIGABRT and got["core"]["thread"] in
                  set(th["native_id"] for th in t.report["threads"]), "kernel core: %s" % got["core"])
            try:
                compare_stacks(t.report, got)
            except Exception as e:
                raise type(e)("kernel core: %s" % e)
            print("kernel core: %d threads, the target's own stacks; SIGABRT received by thread %d" % (
                len(got["threads"]), got["core"]["thread"]))


def core_heap(ctx):
    """The census of each core (dump's, gcore's, the kernel's) is the target's own (exact types
    it made; every type at least what it saw) and equals the census of the live process; refs
    of each finds the target's cycle, and the graph refs draws of the live process."""
    check_by_type = sys.modules["__main__"].check_by_type  # the heap tests' comparison (run_test.py)
    with Target(ctx.interp, "census.py") as t, scratch() as d:
        c = t.report["extra"]["census"]
        live = pyjson(ctx, ["heap", str(t.pid), "--by", "type", "--top", "0"])
        live_rows = dict((r["kind"], (r["count"], r["size"])) for r in live["rows"])
        for label, path in all_cores(ctx, t, d):
            j = pyjson(ctx, ["heap", path, "--by", "type", "--top", "0"])
            mine = dict((r["kind"], (r["count"], r["size"])) for r in j["rows"])
            check(j["core"] == path and not j["paused"], "%s: core %s" % (label, j["core"]))
            for kind, n in c["made"].items():
                want = c["by_type"][kind]
                check(mine.get(kind) == (want[0], want[1]),
                      "%s core: %s: pyinspect %s, the target %s (made %d)" % (label, kind, mine.get(kind), want, n))
            check_by_type(c["by_type"], mine)
            diff = sorted(k for k in set(mine) | set(live_rows) if mine.get(k) != live_rows.get(k))
            check(not diff, "%s core vs the live process: %s" % (
                label, ["%s %s/%s" % (k, mine.get(k), live_rows.get(k)) for k in diff[:10]]))
            print("%s core: %d objects, %d bytes, as the live process" % (label, j["total_objects"], j["total_size"]))
    with Target(ctx.interp, "refs.py") as t, scratch() as d:
        objs = t.report["extra"]["objects"]
        want = set([objs["a"]["id"], objs["b"]["id"]])
        for name in ("a", "b"):
            o = objs[name]
            want |= set(r for r, ty in zip(o["referents"], o["referent_types"]) if ty == "dict")
        def graph(j):
            addr = dict((n["id"], n["address"]) for n in j["nodes"])
            return (sorted((n["address"], n["type"]) for n in j["nodes"]),
                    sorted((addr[e["from"]], addr[e["to"]]) for e in j["edges"]))
        live = graph(pyjson(ctx, ["refs", str(t.pid), "--type", "ObjectA", "--max-depth", "3"]))
        for label, path in all_cores(ctx, t, d):
            j = pyjson(ctx, ["refs", path, "--type", "ObjectA", "--cycles"])
            check(j["matched"] == 1 and len(j["cycles"]) == 1, "%s core: cycles: %s" % (label, j.get("cycles")))
            addr = dict((n["id"], n["address"]) for n in j["nodes"])
            members = set(addr[m] for m in j["cycles"][0]["members"])
            check(members == want, "%s core: cycle members %s, the target's %s" % (
                label, sorted(hex(m) for m in members), sorted(hex(m) for m in want)))
            g = graph(pyjson(ctx, ["refs", path, "--type", "ObjectA", "--max-depth", "3"]))
            check(g == live, "%s core: refs' graph differs from the live process's: %d/%d nodes, %d/%d edges" % (
                label, len(g[0]), len(live[0]), len(g[1]), len(live[1])))
            print("refs on %s's core: the target's cycle of %d objects; the live graph, %d nodes and %d edges" % (
                label, len(want), len(g[0]), len(g[1])))


def heap_diff(ctx):
    """--diff of two dumps of a target whose string grows by 100 KiB every 20 ms: str grew by
    at least 1 MiB in a second, and the largest new object is that string; --diff CORE PID too."""
    with Target(ctx.interp, "growing.py") as t, scratch() as d:
        a, b = os.path.join(d, "a.core"), os.path.join(d, "b.core")
        dump(ctx, t.pid, a)
        time.sleep(1.0)
        dump(ctx, t.pid, b)
        for second in (b, str(t.pid)):
            j = pyjson(ctx, ["heap", "--diff", a, second, "--by", "type"])
            top = j["rows"][0]
            check(top["kind"] == "str" and top["size_change"] >= 1 << 20, "%s: largest growth %s" % (second, top))
            new = j["new_objects"]["largest"]
            check(new and new[0]["kind"] == "str" and new[0]["size"] >= 1 << 20 and new[0]["repr"].startswith("'"),
                  "%s: the largest new object %s" % (second, new[:1]))
            print("--diff %s: str %+d bytes; largest new object a str of %d bytes" % (
                "two dumps" if second == b else "a dump and the process", top["size_change"], new[0]["size"]))


@contextlib.contextmanager
def kernel_pattern(d):
    """The kernel's cores written to `d` (core.PID) for the while, under the lock, the machine's
    pattern restored after. Yields the reason it cannot be set, or None."""
    with open(os.path.join(tempfile.gettempdir(), "pyinspect-core-pattern.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with open(CORE_PATTERN) as f:
                old = f.read().rstrip("\n")
            with open(CORE_PATTERN, "w") as f:
                f.write(os.path.join(d, "core.%p"))
        except OSError as e:
            yield "the core pattern cannot be set for the test (%s)" % e
            return
        try:
            yield None
        finally:
            with open(CORE_PATTERN, "w") as f:
                f.write(old)


def kernel_core(t, d, signo, trigger, what):
    """The kernel's core of the target `t`, which `trigger()` makes die of `signo`: its path in
    `d`, or None with the reason printed when the core pattern cannot be set."""
    import resource
    with kernel_pattern(d) as why:
        if why:
            print("%s: skipped: %s" % (what, why))
            return None
        resource.prlimit(t.pid, resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        trigger()
        t.proc.wait(timeout=120)
        check(t.proc.returncode == -signo, "the target exited with %s, not signal %d" % (t.proc.returncode, signo))
        path = os.path.join(d, "core.%d" % t.pid)
        deadline = time.time() + 30
        while not os.path.exists(path) and time.time() < deadline:
            time.sleep(0.05)
        check(os.path.exists(path), "no kernel core at %s after signal %d: %s" % (path, signo, os.listdir(d)))
        return path


def kernel_core_of(t, d):
    """A kernel core of the parked target `t`, killed by SIGABRT (its default action dumps it
    without running any of its code)."""
    return kernel_core(t, d, signal.SIGABRT, lambda: os.kill(t.pid, signal.SIGABRT), "kernel core")


def crash(ctx, mode, signo, function):
    with scratch() as d:
        with Target(ctx.interp, "crash.py", args=(mode,)) as t:
            r = t.report
            check(r["core_limit"] != 0, "the target could not raise its core size limit")
            path = kernel_core(t, d, signo, lambda: open(os.path.join(t.dir, "go"), "w").close(),
                               "kernel core (%s)" % mode)
            if path is None:
                return
        got = pyjson(ctx, ["stack", path])
        c = got["core"]
        check(c["signal"] == signo and c["thread"] == r["crash_native_id"],
              "%s: the core says %s; the target crashed with signal %d in thread %s" % (
                  mode, c, signo, r["crash_native_id"]))
        if signo == signal.SIGSEGV:
            check(c["address"] == 0, "SIGSEGV reading address 0: the core says address %s" % c["address"])
        by_tid = dict((th["native_id"], th) for th in got["threads"])
        crashed = by_tid.get(r["crash_native_id"])
        check(crashed is not None, "no thread %s in %s" % (r["crash_native_id"], sorted(by_tid)))
        check(crashed["name"] == r["crash_name"], "crashed thread named %r, the target's %r" % (
            crashed["name"], r["crash_name"]))
        compare_thread({"frames": r["crash_frames"]}, crashed, "crashed thread")
        top = crashed["frames"][0]
        check(top["function"] == function, "crashed in %s, expected %s" % (top["function"], function))
        for other in r["threads"]:
            if other["native_id"] in by_tid and other["native_id"] != r["crash_native_id"]:
                compare_thread(other, by_tid[other["native_id"]], "thread %s" % other["name"])
        if signo == signal.SIGSEGV:
            # --native: the crashed thread's C frames, innermost at the pc gdb reads in the same
            # core (its symbol may be an alias of gdb's: memcpy and memmove share their code),
            # then the Python frame that called it.
            r2 = subprocess.run(["gdb", "-nx", "-batch", ctx.interp["path"], path, "-ex", "p/x $pc"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
            m = re.search(r"^\$1 = (0x[0-9a-f]+)", r2.stdout.decode(), re.M)
            check(m is not None, "gdb printed no pc for the kernel core:\n%s" % r2.stdout.decode()[-1500:])
            nat = pyjson(ctx, ["stack", path, "--native"])
            th = [x for x in nat["threads"] if x["native_id"] == r["crash_native_id"]][0]
            kinds = [f["kind"] for f in th["frames"]]
            check(th["frames"] and th["frames"][0]["kind"] == "native" and th["frames"][0]["address"] == int(m.group(1), 16)
                  and th["frames"][0]["symbol"], "--native: innermost frame %s, gdb's pc %s" % (th["frames"][:1], m.group(1)))
            py_at = kinds.index("python") if "python" in kinds else -1
            check(py_at > 0 and th["frames"][py_at]["function"] == function,
                  "--native: the first Python frame %s, expected %s" % (th["frames"][py_at:py_at + 1], function))
            print("kernel core --native: %s at gdb's pc %s, %d C frames, then %s" % (
                th["frames"][0]["symbol"], m.group(1), py_at, function))
        _, out, _ = run_pyinspect(ctx.pyinspect, ["--color=never", "stack", path])
        want = "killed by %s" % ("SIGABRT" if signo == signal.SIGABRT else "SIGSEGV")
        check(want in out and ("in thread %d" % r["crash_native_id"]) in out, "text:\n" + out[:1500])
        print("kernel core (%s): %s in thread %d %r at %s (%s:%d)" % (
            mode, want, r["crash_native_id"], r["crash_name"], top["function"], os.path.basename(top["file"]),
            top["line"]))


def core_crash(ctx):
    """Kernel cores of a process killed by SIGABRT inside a C call (os.abort) and of one that
    segfaults in a C extension (ctypes): the signal, the thread and the Python line it crashed on."""
    crash(ctx, "abort", signal.SIGABRT, "abort_in_c")
    crash(ctx, "segv", signal.SIGSEGV, "segfault_in_c")


def core_tasks(ctx):
    """pyinspect tasks of dump's core: every pending task, its coroutines and awaits, as the
    target's asyncio said (the checks of the tasks test); info of the core names it."""
    import tasks_tests  # noqa: E402 (its checks)
    with Target(ctx.interp, "tasks.py") as t, scratch() as d:
        path = os.path.join(d, "dump.core")
        dump(ctx, t.pid, path)
        tasks_tests.check_tasks(ctx, t, path)
        j = pyjson(ctx, ["tasks", path])
        check(j["core"] == path and j["paused"] is False, "tasks of a core: core %s, paused %s" % (j["core"], j["paused"]))
        info = pyjson(ctx, ["info", path])
        check(info["core"] == path and info["pid"] == t.pid and info["python"]["version"] == t.report["version"]
              and info["rss_bytes"] is None, "info of a core: %s" % info)


def core_elsewhere(ctx):
    """A core from another machine: the target runs from copies of its executable (and
    libpython) in a directory that is gone when the core is read. pyinspect names the files it
    cannot find and exits 5; given them with --sysroot, or --exe and --lib-search-path, it reads
    the stacks the target reported and the census of the core as it read it before they went."""
    with scratch() as d:
        orig = os.path.join(d, "machine")
        os.mkdir(orig)
        interp = dict(ctx.interp)
        exe = os.path.join(orig, os.path.basename(ctx.interp["path"]))
        shutil.copy2(os.path.realpath(ctx.interp["path"]), exe)
        env = dict(ctx.interp.get("env") or {})
        lib = ctx.interp.get("stripped_libpython") or ctx.interp.get("libpython") if ctx.interp["shared"] else None
        if lib:
            shutil.copy2(lib, os.path.join(orig, os.path.basename(lib)))
            env["LD_LIBRARY_PATH"] = orig
        interp.update(path=exe, env=env)
        path = os.path.join(d, "elsewhere.core")
        with Target(interp, "threads.py") as t:
            with open("/proc/%d/maps" % t.pid) as f:
                maps = f.read()
            check(exe in maps and (not lib or os.path.join(orig, os.path.basename(lib)) in maps),
                  "the target does not run from the copies in %s:\n%s" % (orig, maps[:3000]))
            dump(ctx, t.pid, path)
            report = t.report
        census = pyjson(ctx, ["heap", path, "--by", "type", "--top", "0"])
        before = dict((r["kind"], (r["count"], r["size"])) for r in census["rows"])
        # Gone from here; under a sysroot instead.
        sysroot = os.path.join(d, "sysroot")
        moved = sysroot + orig
        os.makedirs(os.path.dirname(moved))
        os.rename(orig, moved)
        code, out, err = run_pyinspect(ctx.pyinspect, ["stack", path], check_exit=False)
        check(code == 5 and exe in err and "--sysroot" in err and (not lib or os.path.basename(lib) in err),
              "the core's files gone: exit %d, %r" % (code, err))
        for how, extra in (("--sysroot", ["--sysroot", sysroot]),
                           ("--exe and --lib-search-path", ["--exe", moved + exe[len(orig):], "--lib-search-path", moved])):
            got = pyjson(ctx, ["stack", path] + extra)
            try:
                compare_stacks(report, got)
            except Exception as e:
                raise type(e)("%s: %s" % (how, e))
            h = pyjson(ctx, ["heap", path, "--by", "type", "--top", "0"] + extra)
            check(h["total_objects"] == census["total_objects"], "%s: heap %d objects; before the files went %d" % (
                how, h["total_objects"], census["total_objects"]))
            # The types whose names are in the files not moved (extension modules of a static
            # type, 2.7's) are counted under "<type 0x... of FILE, not here>", said in a warning;
            # every other row is the same.
            after = dict((r["kind"], (r["count"], r["size"])) for r in h["rows"])
            unnamed = [k for k in after if k.startswith("<type ") and k.endswith(", not here>")]
            gone = [k for k in before if k not in after]
            same = [k for k in after if k not in unnamed]
            check(all(after[k] == before.get(k) for k in same) and
                  sum(after[k][0] for k in unnamed) == sum(before[k][0] for k in gone) and
                  (not unnamed or any("names could not be read" in w or "name could not be read" in w
                                      for w in h["warnings"])),
                  "%s: rows that differ: %s; unnamed %s, gone %s; warnings %s" % (
                      how, [(k, before.get(k), after[k]) for k in same if after[k] != before.get(k)][:10],
                      [(k, after[k]) for k in unnamed][:5], [(k, before[k]) for k in gone][:5], h["warnings"]))
            print("%s: the target's stacks (%d threads), the census of %d objects (%d types whose names are in "
                  "files not here)" % (how, len(got["threads"]), h["total_objects"], len(unnamed)))


def register(test):
    test("core-stack")(core_stack)
    test("core-heap")(core_heap)
    test("core-diff")(heap_diff)
    test("core-crash")(core_crash)
    test("core-tasks", min_version=(3, 7))(core_tasks)
    test("core-elsewhere")(core_elsewhere)
