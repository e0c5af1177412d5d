"""The native-frame tests (stack --native, --native-all), registered into run_test.py.

Ground truth: gdb's own unwinding and naming of every thread (gdb_frames.py, run inside gdb) for
the C frames, their addresses and order; the target's sys._current_frames() for the Python
frames; and what the test builds itself: a C extension (targets/_nativeext.c, compiled here
against the interpreter's installed headers) whose functions the target's threads are blocked in
or recurse through (targets/native.py)."""
import json
import os
import re
import shutil
import subprocess
import tempfile

from harness import TARGETS, Target, TestFailure, check, compare_thread, run_pyinspect

HERE = os.path.dirname(os.path.abspath(__file__))


def build_extension(interp, into):
    """Compiles _nativeext for `interp` with the system compiler; returns the directory."""
    cc = shutil.which("cc") or shutil.which("gcc")
    check(cc is not None, "no C compiler to build the test extension")
    q = ("import sysconfig; print(sysconfig.get_paths()['include']); "
         "print(sysconfig.get_config_var('EXT_SUFFIX') or '.so')")
    env = dict(os.environ)
    env.update(interp.get("env") or {})
    out = subprocess.run([interp["path"], "-c", q], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                         timeout=60)
    check(out.returncode == 0, "%s cannot tell its include directory: %s" % (interp["path"], out.stderr.decode()))
    include, suffix = out.stdout.decode().split()
    check(os.path.exists(os.path.join(include, "Python.h")), "no Python.h in %s (the interpreter's headers)" % include)
    cxx = shutil.which("c++") or shutil.which("g++")
    check(cxx is not None, "no C++ compiler to build the test extension")
    target = os.path.join(into, "_nativeext" + suffix)
    flags = ["-fPIC", "-pthread", "-O2", "-g"]
    for cmd in ([cc, "-c"] + flags + ["-I", include, os.path.join(TARGETS, "_nativeext.c"), "-o",
                                       os.path.join(into, "ext.o")],
                [cxx, "-c"] + flags + [os.path.join(TARGETS, "_nativeext_cpp.cpp"), "-o", os.path.join(into, "cpp.o")],
                [cxx, "-shared", "-pthread", os.path.join(into, "ext.o"), os.path.join(into, "cpp.o"), "-o", target]):
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        check(p.returncode == 0, "building the test extension failed: %s\n%s" % (" ".join(cmd), p.stderr.decode()))
    return into


def gdb_frames(pid):
    """{tid: [{"name", "pc", "inline"}]} as gdb unwinds the threads of `pid`, without the frames
    gdb adds for tail calls (it infers them from the DWARF's call sites; they are not on the stack,
    and pyinspect does not infer them)."""
    check(shutil.which("gdb") is not None, "no gdb (the oracle)")
    p = subprocess.run(["gdb", "-nx", "-batch", "-p", str(pid), "-x", os.path.join(HERE, "gdb_frames.py")],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    for line in p.stdout.decode("utf-8", "replace").splitlines():
        if line.startswith("GDB-FRAMES "):
            got = dict((int(k), [f for f in v if not f["tailcall"]])
                       for k, v in json.loads(line[len("GDB-FRAMES "):]).items())
            check(got and any(got.values()), "gdb unwound no frames")
            return got
    raise TestFailure("gdb printed no frames:\n%s" % p.stderr.decode("utf-8", "replace")[-3000:])


def norm(name):
    """A function's name as both sides can agree on: without glibc's internal alias prefix
    (__GI_), leading underscores, a symbol version (@GLIBC_2.2.5) or what the compiler appends to
    split or specialised parts (.cold, .constprop.0, .isra.0, .part.0)."""
    if not name:
        return None
    if name.startswith("__GI_"):
        name = name[5:]
    # C++: gdb names a function without its parameters and return type, as
    # "pyinspect_test::hold<int>"; demangled in full it is "void pyinspect_test::hold<int>(int)".
    name = name.split("(", 1)[0]
    if " " in name and "<" not in name.rsplit(" ", 1)[-1][:1]:
        name = name.rsplit(" ", 1)[-1]
    name = name.lstrip("_")
    name = re.split(r"[@.]", name, 1)[0]
    return name or None


def eval_function(interp):
    return "PyEval_EvalFrameEx" if interp["major"] == 2 else "_PyEval_EvalFrameDefault"


def machine_groups(frames, name_key, inline_key):
    """Frames (innermost first) -> [(inlined names, machine frame)]: each machine frame with the
    calls inlined into it, which come before it."""
    groups, pending = [], []
    for f in frames:
        if f[inline_key]:
            pending.append(norm(f[name_key]))
        else:
            groups.append((pending, f))
            pending = []
    return groups, pending


def describe(frames, kind):
    out = []
    for f in frames:
        if kind == "gdb":
            out.append("%s%s %#x" % ("[i] " if f["inline"] else "", f["name"], f["pc"]))
        elif f.get("kind") == "native":
            out.append("%s(C) %s %#x" % ("[i] " if f["inlined"] else "", f["symbol"], f["address"]))
        else:
            out.append("%s (%s:%s)" % (f["function"], f["file"], f["line"]))
    return "\n      ".join(out)


def compare_with_gdb(where, mine, theirs):
    """pyinspect's native frames (--native-all, Python frames left out) against gdb's: the same
    machine frames at the same addresses, named alike, with the same inlined calls."""
    m_groups, m_rest = machine_groups([f for f in mine if f.get("kind") == "native"], "symbol", "inlined")
    g_groups, g_rest = machine_groups(theirs, "name", "inline")
    detail = "\n  pyinspect:\n      %s\n  gdb:\n      %s" % (describe(mine, "pyinspect"), describe(theirs, "gdb"))
    check([f["address"] for _, f in m_groups] == [f["pc"] for _, f in g_groups],
          "%s: the machine frames' addresses differ from gdb's%s" % (where, detail))
    for (m_inl, m), (g_inl, g) in zip(m_groups, g_groups):
        check(norm(m["symbol"]) == norm(g["name"]),
              "%s: the frame at %#x is %r, gdb says %r%s" % (where, m["address"], m["symbol"], g["name"], detail))
        check(m_inl == g_inl, "%s: the calls inlined at %#x are %s, gdb says %s%s" % (
            where, m["address"], m_inl, g_inl, detail))
    return m_groups


def expected_merged(gdb, eval_name, with_pc):
    """gdb's frames (innermost first) with each machine frame of the evaluation loop and the calls
    inlined into it as one "PY" (where the Python frames go), the others as ("C", name[, pc])."""
    want, pending = [], []
    for g in gdb:
        if g["inline"]:
            pending.append(g)
            continue
        if norm(g["name"]) == eval_name:
            want.append("PY")
        else:
            want.extend(("C", norm(p["name"])) for p in pending)
            want.append(("C", norm(g["name"]), g["pc"]) if with_pc else ("C", norm(g["name"])))
        pending = []
    return [w for i, w in enumerate(want) if w != "PY" or i == 0 or want[i - 1] != "PY"]


def collapse(frames, is_python):
    """The frames with each run of Python frames as one "PY" entry."""
    out = []
    for f in frames:
        if is_python(f):
            if not out or out[-1] != "PY":
                out.append("PY")
        else:
            out.append(f)
    return out


def by_tid_of(doc):
    return dict((th["native_id"], th) for th in doc["threads"])


def native_json(ctx, pid, *extra):
    _, out, _ = run_pyinspect(ctx.pyinspect, ["stack", str(pid), "--json"] + list(extra))
    return json.loads(out)


def native(ctx):
    """stack --native on targets/native.py: against gdb's unwinding (C frames: addresses, names,
    inlined calls, order), the target's own view (Python frames) and the test extension's
    construction (where the C frames go between the Python frames)."""
    build = tempfile.mkdtemp(prefix="pyinspect-ext-")
    try:
        build_extension(ctx.interp, build)
        with Target(ctx.interp, "native.py", args=[build]) as t:
            run_native(ctx, t)
    finally:
        shutil.rmtree(build, ignore_errors=True)


def run_native(ctx, t):
    busy = set(t.report["extra"]["busy"])
    depth = t.report["extra"]["depth"]
    own = dict((th["native_id"], th) for th in t.report["threads"])
    # The main thread is parked in a loop of short writes that each ptrace stop restarts (_park.py):
    # its C frames move between gdb's look and pyinspect's, so it is compared on its Python frames.
    blocked = [th for th in t.report["threads"] if th["ident"] not in busy and th["name"] != "MainThread"]
    gdb = gdb_frames(t.pid)
    all_ = native_json(ctx, t.pid, "--native-all", "--no-cache")  # names from the DWARF itself
    merged = native_json(ctx, t.pid, "--native")
    # The names kept on disk by build-id (this run's, or an earlier one's) are the DWARF's names.
    cached = native_json(ctx, t.pid, "--native-all")
    for th in blocked:
        a = [f for f in by_tid_of(all_)[th["native_id"]]["frames"] if f.get("kind") == "native"]
        b = [f for f in by_tid_of(cached)[th["native_id"]]["frames"] if f.get("kind") == "native"]
        check(a == b, "thread %s: native frames from the cache differ from those read from the DWARF:\n"
              "      %s\n  cached:\n      %s" % (th["name"], describe(a, "p"), describe(b, "p")))
    check(merged["native"] is True, "--native: the JSON says native is %r" % merged["native"])
    eval_name = norm(eval_function(ctx.interp))
    by_tid_all = dict((th["native_id"], th) for th in all_["threads"])
    by_tid = dict((th["native_id"], th) for th in merged["threads"])
    # Every thread of the process, with or without Python, has its native stack.
    check(set(by_tid) == set(gdb), "threads: pyinspect %s, gdb %s" % (sorted(by_tid), sorted(gdb)))
    names = {}
    for th in blocked:
        tid = th["native_id"]
        where = "thread %s (LWP %s)" % (th["name"], tid)
        names[th["name"]] = tid
        check(tid in by_tid and by_tid[tid]["native"], "%s: no native stack (%s)" % (
            where, by_tid.get(tid, {}).get("native_problem")))
        mine_all, mine = by_tid_all[tid]["frames"], by_tid[tid]["frames"]
        theirs = gdb[tid]
        compare_with_gdb(where + " --native-all", mine_all, theirs)
        # The Python frames: as the target sees them, in order.
        py = [f for f in mine if f.get("kind") == "python"]
        compare_thread(own[tid], {"frames": py}, where + " (Python frames of --native)")
        # Merged: gdb's frames with each machine frame of the evaluation loop (and what is inlined
        # into it) replaced by the Python frames it runs.
        want = expected_merged(theirs, eval_name, with_pc=True)
        got = []
        for f in mine:
            if f.get("kind") != "native":
                got.append("PY")
            elif f["inlined"]:
                got.append(("C", norm(f["symbol"])))
            else:
                got.append(("C", norm(f["symbol"]), f["address"]))
        got = [w for i, w in enumerate(got) if w != "PY" or i == 0 or got[i - 1] != "PY"]
        check(got == want, "%s: merged frames\n  pyinspect %s\n  expected  %s\n  (pyinspect: %s)" % (
            where, got, want, describe(mine, "pyinspect")))
        check(by_tid[tid]["python_frames_unplaced"] == 0, "%s: %d Python frames left unplaced" % (
            where, by_tid[tid]["python_frames_unplaced"]))
    # C++: demangled names, as c++filt writes them (the test's own functions).
    cpp = [f["symbol"] for f in by_tid[names["cpp"]]["frames"] if f.get("kind") == "native"]
    for want in ("pyinspect_test::Blocker::wait(int)", "void pyinspect_test::hold<int>(int)"):
        check(want in cpp, "thread cpp: no frame named %r in %s" % (want, cpp))
    # The thread of C alone: listed without Python, its frames as gdb has them.
    c_only = t.report["extra"]["c_only"]
    check(c_only in by_tid and by_tid[c_only]["python"] is False and by_tid[c_only]["thread_id"] is None,
          "the C-only thread %d: %s" % (c_only, {k: v for k, v in by_tid.get(c_only, {}).items() if k != "frames"}))
    compare_with_gdb("the C-only thread (LWP %d)" % c_only, by_tid_all[c_only]["frames"], gdb[c_only])
    check(any(f.get("symbol") == "nativeext_wait_forever" for f in by_tid[c_only]["frames"]),
          "the C-only thread: no frame of nativeext_wait_forever")
    # What the extension makes: C frames of the test's own functions between the Python frames.
    deep = by_tid[names["c-deep"]]["frames"]
    kinds = [(f.get("kind"), f.get("symbol") if f.get("kind") == "native" else f["name"]) for f in deep]
    first_py = next(i for i, k in enumerate(kinds) if k[0] == "python")
    inner = [k[1] for k in kinds[:first_py]]
    check("nativeext_wait_forever" in inner and "nativeext_block" in inner,
          "c-deep: the innermost C frames %s lack the extension's nativeext_wait_forever/nativeext_block" % inner)
    deep_at = [i for i, k in enumerate(kinds) if k == ("python", "deep")]
    check(len(deep_at) == depth + 1, "c-deep: %d Python frames of deep(), the target made %d" % (len(deep_at), depth + 1))
    for a, b in zip(deep_at, deep_at[1:]):
        between = [k[1] for k in kinds[a + 1:b]]
        check(all(k[0] == "native" for k in kinds[a + 1:b]) and "nativeext_call" in between,
              "c-deep: between two deep() frames: %s (expected the extension's nativeext_call)" % between)
    # Busy threads move: their stacks pass through the C code doing the work (or waiting in it for
    # the GIL), which the thread calls and nothing else does; some of the time they wait for the GIL
    # in the evaluation loop instead (on a stripped libpython, in functions nothing names).
    work = {"zlib": re.compile(r"zlib|deflate|compress|libz\.", re.I), "hashlib": re.compile(r"sha|hash|evp|libcrypto", re.I)}
    for th in t.report["threads"]:
        if th["ident"] not in busy:
            continue
        hits, seen = 0, []
        for _ in range(8):
            j = native_json(ctx, t.pid, "--native")
            frames = [x for x in j["threads"] if x["native_id"] == th["native_id"]][0]["frames"]
            check(any(f.get("kind") == "python" and f["name"] in ("zipper", "hasher") for f in frames),
                  "%s: no Python frame of its worker in %s" % (th["name"], describe(frames, "pyinspect")))
            c = [f for f in frames if f.get("kind") == "native"]
            if any(work[th["name"]].search((f["symbol"] or "") + " " + os.path.basename(f["library"] or "")) for f in c):
                hits += 1
            seen = frames
        check(hits >= 2, "%s: %d of 8 stacks passed through the code doing its work; the last:\n      %s" % (
            th["name"], hits, describe(seen, "pyinspect")))
    record_native(ctx, t, gdb, eval_name, names)
    print("native: %d threads compared with gdb, and the C-only thread; c-deep %d levels through C" % (len(blocked), depth))


NATIVE_LABEL = re.compile(r"^\(C\) (.*?)(?: \((?:[^()]*)\))?$")


def record_native(ctx, t, gdb, eval_name, names):
    """record --native: each blocked thread's one stack in the profile is gdb's frames with the
    Python frames (the target's own) in place of the evaluation loop's."""
    import profile_tests
    out = tempfile.mkdtemp(prefix="pyinspect-record-")
    try:
        path = os.path.join(out, "native.folded")
        run_pyinspect(ctx.pyinspect, ["record", str(t.pid), "--native", "--idle", "--threads", "-d", "1", "-r", "20",
                                      "-q", "-o", path], timeout=120)
        stacks = profile_tests.parse_folded(path)
        own = dict((th["native_id"], th) for th in t.report["threads"])
        for name in ("c-deep", "c-call", "locker", "sleeper"):
            tid = names[name]
            root = 'Thread %d "%s"' % (tid, name)
            mine = [(frames, n) for frames, n in stacks if frames[0] == root]
            check(mine, "record --native: no stack of thread %s in the profile" % root)
            frames = max(mine, key=lambda x: x[1])[0][1:][::-1]  # innermost first, without the root
            got, py = [], []
            for label in frames:
                m = NATIVE_LABEL.match(label)
                if label.startswith("(C) ") and m:
                    got.append(("C", norm(m.group(1)) if m.group(1) != "??" else None))
                else:
                    py.append(profile_tests.frame_parts(label)[0])
                    if not got or got[-1] != "PY":
                        got.append("PY")
            want = expected_merged(gdb[tid], eval_name, with_pc=False)
            check(got == want, "record --native, thread %s:\n  profile %s\n  gdb     %s" % (name, got, want))
            check(py == [f["function"] for f in own[tid]["frames"]],
                  "record --native, thread %s: Python frames %s, the target says %s" % (
                      name, py, [f["function"] for f in own[tid]["frames"]]))
        # top --native: C functions are rows of their own, the extension's among them.
        _, text, _ = run_pyinspect(ctx.pyinspect, ["top", str(t.pid), "--once", "--native", "--idle", "-i", "0.3"],
                                   timeout=60)
        rows = [l for l in text.splitlines() if "(C) " in l]
        check(any("nativeext_wait_forever" in l for l in rows),
              "top --native: no row of the extension's nativeext_wait_forever in:\n%s" % text)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def register(test):
    test("native")(native)
