"""pyinspect tasks, registered into run_test.py: every pending task against what the target's
own asyncio says of it (targets/tasks.py: asyncio.all_tasks(), Task.get_name(), get_stack(), the
chain of coroutines through cr_await, _fut_waiter) and the awaits it arranged, including a cycle."""
from harness import Target, check, run_pyinspect

import json


def tasks_test(ctx):
    with Target(ctx.interp, "tasks.py") as t:
        check_tasks(ctx, t, str(t.pid))


def check_tasks(ctx, t, what):
    """pyinspect tasks WHAT (the target's PID, or a core file of it) against targets/tasks.py's
    report."""
    extra = t.report["extra"]
    exp = extra["tasks"]
    check(len(exp) == 6, "the target lists %d pending tasks: %s" % (len(exp), sorted(exp)))
    _, out, _ = run_pyinspect(ctx.pyinspect, ["tasks", what, "--json"])
    got = json.loads(out)
    mine = dict((x["id"], x) for x in got["tasks"])
    ids = dict((n, e["id"]) for n, e in exp.items())
    check(set(mine) == set(ids.values()), "tasks: pyinspect %s, the target %s" % (
        sorted(hex(i) for i in mine), sorted("%s=%#x" % kv for kv in ids.items())))
    for name, e in sorted(exp.items()):
        m = mine[e["id"]]
        where = "task %s" % name
        check(m["state"] == "pending", "%s: state %s" % (where, m["state"]))
        if e["name"] is not None:
            check(m["name"] == e["name"], "%s: named %r" % (where, m["name"]))
        # Its coroutines, outermost first in the target's chain, innermost first in pyinspect's.
        frames = [[f["name"], f["line"]] for f in reversed(m["frames"])]
        check(frames == e["chain"], "%s: coroutines %s, the target's %s" % (where, frames, e["chain"]))
        check(frames[:1] == e["stack"][:1], "%s: outermost %s, Task.get_stack() %s" % (where, frames[:1], e["stack"]))
        want_wait = e["waiter"]
        got_wait = m["awaiting"]["address"] if m["awaiting"] else None
        check(got_wait == want_wait, "%s: awaits %s, _fut_waiter %s" % (where, got_wait, want_wait))
        if e["waiter_is_task"]:
            check(m["awaiting"]["kind"] == "Task" and m["awaits"] == [e["waiter"]], "%s: %s" % (where, m["awaiting"]))
        by = sorted(ids[n] for n in extra["awaited_by"][name])
        check(sorted(m["awaited_by"]) == by, "%s: awaited by %s, the target's %s" % (
            where, [hex(a) for a in m["awaited_by"]], [hex(a) for a in by]))
    gather = mine[ids["main"]]["awaiting"]
    check(gather and gather["kind"] == "gather", "main awaits %s, not a gather" % gather)
    check(sorted(mine[ids["main"]]["awaits"]) == sorted([ids["worker-1"], ids["worker-2"]]),
          "main's gather: %s" % mine[ids["main"]]["awaits"])
    cycle = sorted(ids[n] for n in extra["cycle"])
    check([sorted(c) for c in got["cycles"]] == [cycle], "cycles: pyinspect %s, the target %s" % (got["cycles"], cycle))
    loops = got["loops"]
    check(len(loops) == 1 and loops[0]["address"] == extra["loop"], "loops: %s, the target's %#x" % (loops, extra["loop"]))
    tid = dict((x["name"], x["native_id"]) for x in t.report["threads"])
    check(loops[0]["thread"] == tid[extra["loop_thread"]], "the loop is run by %s, not %s" % (
        loops[0]["thread"], tid[extra["loop_thread"]]))
    # The text: main's tree with both workers under it, leaf under worker-1; the cycle after.
    _, text, _ = run_pyinspect(ctx.pyinspect, ["tasks", what])
    if exp["main"]["name"]:
        lines = text.splitlines()
        at = [i for i, l in enumerate(lines) if l.startswith("(T) main")]
        check(at, "no tree for main:\n%s" % text)
        for n in ("worker-1", "worker-2", "leaf"):
            check(any(("(T) " + n) in l and l.lstrip(" │").startswith(("├──", "└──")) for l in lines[at[0]:]),
                  "%s is not drawn under main:\n%s" % (n, text))
        check("Await cycles" in text and "(T) cycle-a" in text, "the cycle is not reported:\n%s" % text)
    print("tasks: %d tasks, their coroutines, awaits and the cycle checked against the target's own" % len(exp))


def register(test):
    test("tasks", min_version=(3, 7))(tasks_test)
