#!/usr/bin/env python3
"""Prints, after a test run, which interpreters were tested and how each fared."""
import collections
import json
import sys
import xml.etree.ElementTree as ET


def subset(interps):
    """The interpreters the sanitizer pass runs on: every one, except that of the copies of a shared
    libpython stripped of its symbols (the same reader, the embedded tables, on each) only the
    oldest and newest are kept."""
    stripped = [e for e in interps if e["kind"].startswith("shared, libpython stripped")]
    stripped.sort(key=lambda e: (e["major"], e["minor"]))
    drop = {e["id"] for e in stripped[1:-1]}
    return [e for e in interps if e["id"] not in drop]


def main():
    if sys.argv[1] == "--exclude-for-sanitizers":  # a ctest -E regex of the interpreters left out
        with open(sys.argv[2]) as f:
            interps = json.load(f)
        kept = {e["id"] for e in subset(interps)}
        left = [e["id"].replace(".", r"\.") for e in interps if e["id"] not in kept]
        print("@(%s)$" % "|".join(left) if left else "^$")
        return 0
    results, interpreters = sys.argv[1], sys.argv[2]
    only = len(sys.argv) > 3 and sys.argv[3] == "--sanitizer-subset"
    cases = ET.parse(results).getroot().iter("testcase")
    per = collections.defaultdict(lambda: [0, 0, []])
    other = [0, 0, []]
    budgets = []
    for c in cases:
        name = c.get("name")
        out = c.find("system-out")
        for line in (out.text or "").splitlines() if out is not None else []:
            line = line.strip()
            if "MESSAGE: fuzz: " in line:  # doctest's MESSAGE from the fuzz tests
                line = line[line.index("fuzz: "):]
            if line.startswith(("repeat on ", "racing on ", "fuzz: ", "killed while paused ")):
                budgets.append(line)
        failed = c.find("failure") is not None or c.get("status") in ("fail", "failed")
        skipped = c.find("skipped") is not None
        bucket = per[name.split("@", 1)[1]] if "@" in name else other
        if skipped:
            continue
        bucket[0] += 1
        if failed:
            bucket[1] += 1
            bucket[2].append(name)
    with open(interpreters) as f:
        interps = json.load(f)
    if only:
        left = len(interps) - len(subset(interps))
        interps = subset(interps)
        if left:
            print("\n(%d copies of a stripped libpython left out of this pass: the oldest and newest run)" % left)
    print("\nInterpreters tested:")
    bad = 0
    for e in interps:
        total, failed, names = per.get(e["id"], [0, 0, []])
        state = "FAILED %d of %d" % (failed, total) if failed else ("passed %d" % total if total else "NOT RUN")
        if e.get("probe_failed"):  # found, but it does not run: nothing was tested on it
            state = "NOT RUN, FAILED: does not run: %s" % e["probe_failed"]
        print("  %-24s %-44s %-36s %s" % (e["id"], e["path"], e["kind"], state))
        bad += failed or not total or bool(e.get("probe_failed"))
    print("  unit and other tests: %d run, %d failed" % (other[0], other[1]))
    if budgets:
        print("\nSafety budgets run:")
        for line in sorted(budgets):
            print("  " + line)
    return 1 if bad or other[1] else 0


if __name__ == "__main__":
    sys.exit(main())
