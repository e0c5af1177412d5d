"""stack --locals, registered into run_test.py: each argument and local of a frame against what
the target itself chose and wrote down (targets/locals.py: the frame's f_locals, each value's
type, Python's own repr, id and first items)."""
import re

from harness import Target, check, stack_json


def locals_test(ctx):
    with Target(ctx.interp, "locals.py") as t:
        exp = t.report["extra"]["locals"]
        py2 = ctx.interp["major"] == 2
        got = stack_json(ctx.pyinspect, t.pid, ["--locals"])
        th = [x for x in got["threads"] if x["thread_id"] == t.report["extra"]["ident"]]
        check(th, "no thread %s in pyinspect's answer" % t.report["extra"]["ident"])
        frame = th[0]["frames"][0]
        check(frame["function"] == "hold", "the innermost frame is %r" % frame["function"])
        check("locals" in frame, "--locals: the frame has no locals in the JSON")
        mine = dict((v["name"], v) for v in frame["locals"] if v["address"] is not None)
        check(set(mine) == set(exp), "names: pyinspect %s, the target %s" % (sorted(mine), sorted(exp)))
        for name, e in sorted(exp.items()):
            m = mine[name]
            where = "local %r (%s, Python's repr %s)" % (name, e["type"], e["repr"][:80])
            check(m["type"] == e["type"], "%s: type %r" % (where, m["type"]))
            check(m["address"] == e["id"], "%s: address %#x, id() %#x" % (where, m["address"], e["id"]))
            r = m["repr"]
            if e["type"] in ("int", "long", "float", "bool", "NoneType", "bytes", "unicode") or (
                    e["type"] == "str" and len(e["repr"]) < 40):
                check(r == e["repr"], "%s: pyinspect %r" % (where, r))
            elif e["type"] == "str":  # long: the first 40 characters, and the length
                # (2.7's str is bytes: its length is counted in bytes)
                unit = "bytes" if py2 else "characters"
                check(r.startswith(e["repr"][:41]) and r.endswith("' (500 %s)" % unit), "%s: pyinspect %r" % (where, r))
            elif e["type"] in ("list", "tuple"):
                shown = e["items"][:3]
                opener = "[" if e["type"] == "list" else "("
                check(r.startswith(opener + ", ".join(shown)), "%s: pyinspect %r" % (where, r))
                if len(e["items"]) > 3:
                    check(r.endswith("(%d items)" % len(e["items"])), "%s: pyinspect %r" % (where, r))
                else:
                    check(r == e["repr"], "%s: pyinspect %r" % (where, r))
            elif e["type"] == "dict":
                for item in e["items"]:
                    check(item in r, "%s: %s missing from %r" % (where, item, r))
            elif e["type"] == "__main__.Worker":
                check(r.startswith("<__main__.Worker at %#x" % e["id"]), "%s: pyinspect %r" % (where, r))
                for a in e["attrs"]:
                    check(a in r, "%s: attribute %s missing from %r" % (where, a, r))
            elif e["type"] == "function":
                want = "<function inner at" if py2 else "<function hold.<locals>.inner at"
                check(r.startswith(want), "%s: pyinspect %r" % (where, r))
            else:
                check(re.match(r"^<", r), "%s: pyinspect %r" % (where, r))
        # The arguments (co_argcount: a and b), and a, shared with inner(), a cell.
        args = [v["name"] for v in frame["locals"] if v["argument"]]
        check(args == ["a", "b"], "arguments: %s" % args)
        check(mine["a"]["cell"] is True and mine["b"]["cell"] is False, "cells: a %s, b %s" % (
            mine["a"]["cell"], mine["b"]["cell"]))
        # Longer with -ll: the long string shows 160 characters.
        got2 = stack_json(ctx.pyinspect, t.pid, ["-ll"])
        f2 = [x for x in got2["threads"] if x["thread_id"] == t.report["extra"]["ident"]][0]["frames"][0]
        long2 = [v for v in f2["locals"] if v["name"] == "long_text"][0]["repr"]
        check(long2.startswith("'" + "x" * 160 + "...'"), "-ll: long_text %r" % long2[:200])
        print("locals: %d checked against the target's own" % len(exp))


def register(test):
    test("locals")(locals_test)
