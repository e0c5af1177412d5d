"""What blocked threads wait for and who holds it (stack), registered into run_test.py: against
what the target itself arranged (targets/locks.py: each thread's kind of wait, the object's id,
the thread holding it, the deadlocked pair), and, for the GIL, against threads that run nothing
but Python code (targets/gil.py: asleep, they can only be waiting for the GIL)."""
import os
import subprocess
import time

from harness import Target, check, run_pyinspect, stack_json

EXAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "deadlock", "deadlock.py")


def locks_test(ctx):
    with Target(ctx.interp, "locks.py") as t:
        extra = t.report["extra"]
        tid = dict((x["name"], x["native_id"]) for x in t.report["threads"])
        check(all(tid.get(n) for n in extra["expected"]), "the target could not tell every thread's TID: %s" % tid)
        # Twice: a timed wait that the first pause interrupted goes on as restart_syscall.
        stack_json(ctx.pyinspect, t.pid)
        got = stack_json(ctx.pyinspect, t.pid)
        by_tid = dict((x["native_id"], x) for x in got["threads"])
        for name, e in sorted(extra["expected"].items()):
            th = by_tid.get(tid[name])
            check(th is not None, "%s: no thread %s in pyinspect's answer" % (name, tid[name]))
            w = th.get("waiting_for")
            check(w is not None, "%s: waits for %s %#x, pyinspect says it waits for nothing" % (
                name, e["kind"], e["address"]))
            where = "%s (waits for %s %#x, held by %s)" % (name, e["kind"], e["address"], e["held_by"])
            check(w["kind"] == e["kind"], "%s: pyinspect says %s" % (where, w["kind"]))
            check(w["address"] == e["address"], "%s: pyinspect says %s" % (where, w["address"] and hex(w["address"])))
            want_holder = tid[e["held_by"]] if e["held_by"] else None
            check(w["held_by"] == want_holder, "%s: pyinspect says held by %s (%s: %s)" % (
                where, w["held_by"], w["certainty"], w["how"]))
            sure = {"RLock": "certain", "Lock": "likely"}.get(e["kind"], "none")
            check(w["certainty"] == sure, "%s: certainty %s, not %s" % (where, w["certainty"], sure))
            if name in extra["names"]:
                check(w["name"] == extra["names"][name], "%s: named %r, not %r" % (where, w["name"], extra["names"][name]))
        for name, addr in sorted(extra["holds"].items()):
            held = [h["address"] for h in by_tid[tid[name]]["holds"]]
            check(addr in held, "%s holds %#x: pyinspect lists %s" % (name, addr, [hex(a) for a in held]))
        # Nobody else holds what they hold (the waiters' own with-blocks have not started).
        for name, th in sorted((n, by_tid[tid[n]]) for n in extra["expected"]):
            for h in th["holds"]:
                check(extra["holds"].get(name) == h["address"], "%s: pyinspect says it holds %#x" % (name, h["address"]))
        cycle = sorted(tid[n] for n in extra["deadlock"])
        check([sorted(c) for c in got["deadlocks"]] == [cycle], "deadlocks: pyinspect %s, the target %s" % (
            got["deadlocks"], cycle))
        # The text: the deadlock first, naming both threads and both locks.
        _, out, _ = run_pyinspect(ctx.pyinspect, ["stack", str(t.pid)])
        lines = out.splitlines()
        check(len(lines) > 1 and lines[1].startswith("Deadlock: "), "the deadlock is not the first thing said:\n%s" % out[:2000])
        for n in extra["deadlock"]:
            check('"%s" (%d)' % (n, tid[n]) in lines[1], "the deadlock line does not name %s: %s" % (n, lines[1]))
        for n in ("__main__.lock_a", "__main__.lock_b"):
            check(n in lines[1], "the deadlock line does not name %s: %s" % (n, lines[1]))
        print("locks: %d waits, %d holders and the deadlock of %s checked against the target's own" % (
            len(extra["expected"]), len(extra["holds"]), " and ".join(extra["deadlock"])))


def gil_test(ctx):
    with Target(ctx.interp, "gil.py") as t:
        spinners = set(x["native_id"] for x in t.report["threads"] if x["name"] in t.report["extra"]["spinners"])
        check(len(spinners) == 3 and None not in spinners, "the target could not tell its spinners' TIDs")
        waits = 0
        deadline = time.time() + 20
        rounds = 0
        while time.time() < deadline and (rounds < 10 or waits == 0):
            rounds += 1
            got = stack_json(ctx.pyinspect, t.pid)
            holders = [x["native_id"] for x in got["threads"] if x["holds_gil"]]
            check(len(holders) <= 1, "more than one thread holds the GIL: %s" % holders)
            for th in got["threads"]:
                # (The kernel's state is read before the pause: a thread seen asleep may have run
                # by then, and have nothing to wait for.)
                w = th["waiting_for"]
                if th["native_id"] not in spinners or w is None:
                    continue
                check(w["kind"] == "GIL", "spinner %s waits for %s, not the GIL (%s)" % (th["native_id"], w["kind"], w))
                check(w["held_by"] == (holders[0] if holders else None), "spinner %s waits for the GIL held by %s; "
                      "the holder is %s" % (th["native_id"], w["held_by"], holders))
                check(th["native_id"] not in holders, "spinner %s holds the GIL and waits for it" % th["native_id"])
                waits += 1
        check(waits > 0, "in %d stacks no spinner was seen waiting for the GIL" % rounds)
        print("gil: %d waits for the GIL seen in %d stacks, each for the thread holding it" % (waits, rounds))


def example_deadlock_test(ctx):
    """examples/deadlock is diagnosed by one command: its two workers, as the example itself
    names them (each takes its two locks in the other's order), in a Deadlock line first."""
    p = subprocess.Popen([ctx.interp["path"], EXAMPLE], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = p.stdout.readline().decode()
        if not line.startswith("ready "):
            p.kill()
            check(False, "the example did not get ready: %r %r" % (line, p.stderr.read(2000)))
        _, out, _ = run_pyinspect(ctx.pyinspect, ["stack", str(p.pid)])
        first = out.splitlines()[1]
        check(first.startswith('Deadlock: "transfer"') or first.startswith('Deadlock: "audit"'),
              "the first thing said is not the deadlock: %r" % first)
        for n in ('"transfer"', '"audit"', "__main__.ledger_lock", "__main__.accounts_lock"):
            check(n in first, "the deadlock line does not name %s: %s" % (n, first))
        print("example-deadlock: %s" % first[:160])
    finally:
        p.kill()
        p.wait()


def register(test):
    test("example-deadlock")(example_deadlock_test)
    test("locks")(locks_test)
    # 2.7 and 3.6 keep their GIL in static variables that only the symbol table names: their
    # waiters are told apart where the binary has one.
    test("gil", applies=lambda i: (i["major"], i["minor"]) >= (3, 7) or not i.get("stripped_libpython"))(gil_test)
