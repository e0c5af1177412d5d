#!/usr/bin/env python3
"""Opens a flame graph that `pyinspect record` wrote in a real browser (headless Chromium) and uses
it as a person would: it loads without script errors, its frames are there, the pointer over a
frame fills the details line, a click on a frame of FUNCTION zooms it (it fills the width, its
ancestors stay, a frame outside its ancestry is hidden), "Reset zoom" restores the layout, and
"Search" (the prompt answered with FUNCTION) highlights exactly the frames whose label holds it and
shows the matched percentage that the SVG's own data attributes give (the samples of matching
frames not under another matching one, over all samples); searching again resets it; Ctrl-F asks.

    svg_check.py FILE.svg --function NAME [--chromium PATH]

Exits 0 having printed what it checked, or 1 with a one-line reason.

How: the SVG is parsed here (it must be well-formed XML), then a copy of it gets two scripts: one
at the top that records script errors, one at the end that, once the graph's own script has run,
dispatches real DOM events (MouseEvent, KeyboardEvent) and writes what it saw into the document.
`chromium --headless --dump-dom` prints that document when its virtual time budget has run out.
The graph's script names (g.frame, #matched, #unzoom, #search, data-*) are listed at the top of
its script (src/output/profile_output.cpp)."""
import argparse
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

SVG_NS = "{http://www.w3.org/2000/svg}"
MAGENTA = "rgb(230, 0, 230)"


class Failure(Exception):
    pass


def check(cond, message):
    if not cond:
        raise Failure(message)


def read_frames(path):
    """The frames the SVG holds, in document order (the order querySelectorAll sees them)."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise Failure("%s is not well-formed XML: %s" % (path, e))
    check(root.tag == SVG_NS + "svg", "the root element is %s, not an SVG" % root.tag)
    frames = []
    for g in root.iter(SVG_NS + "g"):
        if "frame" not in (g.get("class") or "").split():
            continue
        try:
            frames.append({"name": g.get("data-name"), "n": int(g.get("data-samples")), "x": int(g.get("data-x")),
                           "d": int(g.get("data-depth"))})
        except (TypeError, ValueError):
            raise Failure("a frame without numeric data-samples, data-x, data-depth: %r" % g.attrib)
        check(frames[-1]["name"] is not None, "a frame without data-name")
    check(frames, "no <g class=\"frame\"> in the SVG")
    return frames


def contains(a, b):
    """a is b's ancestor: above it, its span holding b's (the spans at one depth are disjoint)."""
    return a["d"] < b["d"] and a["x"] <= b["x"] and b["x"] + b["n"] <= a["x"] + a["n"]


def expected_match(frames, name):
    """(indexes of the frames whose label holds name, the percentage of samples under them)."""
    total = [f for f in frames if f["d"] == 0][0]["n"]
    hits = [i for i, f in enumerate(frames) if name in f["name"]]
    outer = [i for i in hits if not any(contains(frames[j], frames[i]) for j in hits if j != i)]
    return set(hits), 100.0 * sum(frames[i]["n"] for i in outer) / total if total else 0.0


def pick(frames, name):
    """The frame to zoom (the widest of name's frames narrower than the root, so that a zoom shows),
    a frame outside its ancestry, its ancestors and its widest child."""
    roots = [i for i, f in enumerate(frames) if f["d"] == 0]
    check(len(roots) == 1, "%d root frames (depth 0), expected 1" % len(roots))
    root = roots[0]
    total = frames[root]["n"]
    candidates = [i for i, f in enumerate(frames) if name in f["name"] and f["n"] < total]
    check(candidates, "no frame narrower than the whole graph has %r in its label" % name
          if any(name in f["name"] for f in frames) else "no frame has %r in its label" % name)
    target = max(candidates, key=lambda i: (frames[i]["n"], -i))
    t = frames[target]
    outside = [i for i, f in enumerate(frames)
               if i != target and not contains(f, t) and not contains(t, f)]
    check(outside, "no frame outside the ancestry of %r to see hidden" % t["name"])
    # One at the target's depth if there is one (a sibling, a cousin), else the widest.
    outsider = max(outside, key=lambda i: (frames[i]["d"] == t["d"], frames[i]["n"]))
    ancestors = [i for i, f in enumerate(frames) if contains(f, t)]
    children = [i for i, f in enumerate(frames) if f["d"] == t["d"] + 1 and contains(t, f)]
    child = max(children, key=lambda i: frames[i]["n"]) if children else None
    return root, target, outsider, ancestors, child


TRAP = """
window.__svgcheck_errors = [];
window.addEventListener("error", function (e) {
  window.__svgcheck_errors.push(String(e.message) + " (line " + e.lineno + ")");
});
"""

# Runs after the graph's own load handler (registered earlier); reports, does not judge.
DRIVER = r"""
(function () {
  var P = %(params)s;
  var out = {errors: window.__svgcheck_errors};
  function rect(g) { return g.querySelector("rect"); }
  function width(g) { return parseFloat(rect(g).getAttribute("width")); }
  function shown(el) { return getComputedStyle(el).display !== "none" && el.getBoundingClientRect().width > 0; }
  function mouse(el, type) {
    var b = el.getBoundingClientRect();
    return el.dispatchEvent(new MouseEvent(type, {bubbles: true, cancelable: true, view: window,
                                                  clientX: b.left + b.width / 2, clientY: b.top + b.height / 2}));
  }
  function highlighted(gs) {
    var on = [];
    for (var i = 0; i < gs.length; ++i) if (getComputedStyle(rect(gs[i])).fill === P.magenta) on.push(i);
    return on;
  }
  function run() {
    try {
      out.ready = document.documentElement.getAttribute("data-ready");
      var gs = document.querySelectorAll("g.frame");
      out.frames = gs.length;
      var g = gs[P.target], other = gs[P.outsider], root = gs[P.root];
      var unzoom = document.getElementById("unzoom"), search = document.getElementById("search");
      var matched = document.getElementById("matched"), details = document.getElementById("details");
      out.full = width(root);
      out.before = width(g);
      out.before_other_shown = shown(other);
      out.before_unzoom_shown = shown(unzoom);
      mouse(rect(g), "mouseover");
      out.details = details.textContent;
      out.title = g.querySelector("title").textContent;

      mouse(rect(g), "click");
      out.zoom_width = width(g);
      out.zoom_shown = shown(g);
      out.zoom_other_shown = shown(other);
      out.zoom_ancestors = P.ancestors.map(function (i) { return [shown(gs[i]), width(gs[i])]; });
      out.zoom_child = P.child === null ? null : width(gs[P.child]);
      out.zoom_unzoom_shown = shown(unzoom);

      mouse(unzoom, "click");
      out.reset_width = width(g);
      out.reset_other_shown = shown(other);
      out.reset_unzoom_shown = shown(unzoom);

      var asked = 0;
      window.prompt = function () { ++asked; return P.pattern; };
      mouse(search, "click");
      out.search_asked = asked;
      out.matched = matched.textContent;
      out.highlighted = highlighted(gs);
      out.search_label = search.textContent;
      mouse(search, "click");
      out.cleared_matched = matched.textContent;
      out.cleared_highlighted = highlighted(gs).length;

      var key = new KeyboardEvent("keydown", {key: "f", code: "KeyF", ctrlKey: true, bubbles: true, cancelable: true});
      document.documentElement.dispatchEvent(key);
      out.ctrl_f_asked = asked - 1;
      out.ctrl_f_prevented = key.defaultPrevented;
      out.ctrl_f_matched = matched.textContent;
    } catch (e) {
      out.exception = String(e) + (e.stack ? " " + e.stack.split("\n").slice(0, 3).join(" | ") : "");
    }
    var result = document.createElementNS("http://www.w3.org/2000/svg", "text");
    result.setAttribute("id", "svg-check-result");
    result.textContent = btoa(unescape(encodeURIComponent(JSON.stringify(out))));
    document.documentElement.appendChild(result);
  }
  window.addEventListener("load", function () { setTimeout(run, 0); });
})();
"""


def js_regex(name):
    """NAME as a JavaScript regular expression that matches it literally."""
    return "".join("\\" + c if c in "\\^$.|?*+()[]{}/" else c for c in name)


def instrument(svg_text, params):
    opening = re.search(r"<svg\b[^>]*>", svg_text)
    check(opening is not None, "no <svg> element")
    end = svg_text.rfind("</svg>")
    check(end > opening.end(), "no </svg>")
    script = lambda code: '<script type="text/ecmascript"><![CDATA[%s]]></script>\n' % code
    return (svg_text[:opening.end()] + "\n" + script(TRAP) + svg_text[opening.end():end] +
            script(DRIVER % {"params": json.dumps(params)}) + svg_text[end:])


def run_browser(chromium, path, workdir):
    profile_dir = os.path.join(workdir, "chromium-profile")
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
           "--disable-extensions", "--mute-audio", "--user-data-dir=" + profile_dir, "--window-size=1300,1000",
           "--virtual-time-budget=5000", "--dump-dom", "file://" + path]
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=150)
    except subprocess.TimeoutExpired:
        raise Failure("chromium did not finish within 150 s")
    dom = p.stdout.decode("utf-8", "replace")
    m = re.search(r'<text[^>]*id="svg-check-result"[^>]*>([A-Za-z0-9+/=\s]*)</text>', dom)
    if m is None:
        err = " | ".join(line for line in p.stderr.decode("utf-8", "replace").splitlines()
                         if "dbus" not in line and line.strip())[-400:]
        raise Failure("chromium (exit %d) printed no result from the page: %s" % (p.returncode, err or dom[:300]))
    return json.loads(base64.b64decode(m.group(1)).decode("utf-8"))


def near(a, b, eps=0.01):
    return a is not None and b is not None and abs(a - b) <= eps


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("svg")
    ap.add_argument("--function", required=True, help="a name that some frame's label holds")
    ap.add_argument("--chromium", help="the browser (default: chromium on PATH)")
    args = ap.parse_args()
    try:
        chromium = args.chromium or shutil.which("chromium")
        check(chromium is not None, "chromium is not on PATH (scripts/setup.sh installs Debian's chromium)")
        path = os.path.abspath(args.svg)
        frames = read_frames(path)
        root, target, outsider, ancestors, child = pick(frames, args.function)
        hits, want_pct = expected_match(frames, args.function)
        t = frames[target]
        with open(path, encoding="utf-8") as f:
            text = f.read()
        params = {"target": target, "outsider": outsider, "root": root, "ancestors": ancestors, "child": child,
                  "pattern": js_regex(args.function), "magenta": MAGENTA}
        workdir = tempfile.mkdtemp(prefix="pyinspect-svg-check-")
        try:
            page = os.path.join(workdir, "check.svg")
            with open(page, "w", encoding="utf-8") as f:
                f.write(instrument(text, params))
            r = run_browser(chromium, page, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

        check(not r.get("errors"), "script errors: %s" % "; ".join(r.get("errors") or []))
        check("exception" not in r, "driving the page failed: %s" % r.get("exception"))
        check(r["ready"] == "1", "the graph's script did not finish its set-up (data-ready is %r)" % r["ready"])
        check(r["frames"] == len(frames), "the page has %d frames, the file %d" % (r["frames"], len(frames)))
        print("loaded: %d frames, no script errors" % r["frames"])

        label = t["name"]
        check(label in r["details"] and "sample" in r["details"],
              "mouseover %r: the details line says %r" % (label, r["details"]))
        check(r["title"].startswith(label) and "sample" in r["title"], "the frame's tooltip is %r" % r["title"])
        print("pointer over %r: details %r" % (label, r["details"]))

        full = r["full"]
        check(r["before"] < full - 0.01, "%r is already %.2f px wide of %.2f before the zoom" % (
            label, r["before"], full))
        check(r["before_other_shown"], "the frame outside its ancestry is hidden before the zoom")
        check(not r["before_unzoom_shown"], "\"Reset zoom\" is shown before any zoom")
        check(r["zoom_shown"] and near(r["zoom_width"], full),
              "click on %r: its width is %.2f px, the full width %.2f" % (label, r["zoom_width"], full))
        check(not r["zoom_other_shown"], "click on %r: %r, outside its ancestry, is still shown" % (
            label, frames[outsider]["name"]))
        for i, (shown, w) in zip(ancestors, r["zoom_ancestors"]):
            check(shown and near(w, full), "click on %r: its ancestor %r is %s, %.2f px wide" % (
                label, frames[i]["name"], "shown" if shown else "hidden", w))
        if child is not None:
            want = full * frames[child]["n"] / t["n"]
            check(near(r["zoom_child"], want), "click on %r: its child %r is %.2f px wide, expected %.2f" % (
                label, frames[child]["name"], r["zoom_child"], want))
        check(r["zoom_unzoom_shown"], "\"Reset zoom\" is not shown while zoomed")
        print("click on %r (%d of %d samples): %.2f -> %.2f px, the full width; %d ancestors kept, %r hidden" % (
            label, t["n"], frames[root]["n"], r["before"], r["zoom_width"], len(ancestors), frames[outsider]["name"]))

        check(near(r["reset_width"], r["before"]), "\"Reset zoom\": %r is %.2f px wide, %.2f before the zoom" % (
            label, r["reset_width"], r["before"]))
        check(r["reset_other_shown"], "\"Reset zoom\": %r is still hidden" % frames[outsider]["name"])
        check(not r["reset_unzoom_shown"], "\"Reset zoom\" is still shown after it was used")
        print("reset zoom: %r back to %.2f px, the others shown" % (label, r["reset_width"]))

        check(r["search_asked"] == 1, "\"Search\" asked for a pattern %d times" % r["search_asked"])
        m = re.match(r"^Matched: ([\d.]+)%$", r["matched"] or "")
        check(m is not None, "after the search #matched says %r" % r["matched"])
        got_pct = float(m.group(1))
        check(abs(got_pct - want_pct) <= 0.05 + 1e-9, "search %r: %s, the frames' data give %.3f%%" % (
            args.function, r["matched"], want_pct))
        lit = set(r["highlighted"])
        check(lit == hits, "search %r: %d frames in magenta, %d have it in their label (first odd one: %r)" % (
            args.function, len(lit), len(hits), frames[sorted(lit ^ hits)[0]]["name"] if lit ^ hits else None))
        check(r["search_label"] == "Reset search", "the search control says %r during a search" % r["search_label"])
        check(r["cleared_highlighted"] == 0 and not r["cleared_matched"],
              "\"Reset search\" left %d frames highlighted, #matched %r" % (
                  r["cleared_highlighted"], r["cleared_matched"]))
        print("search %r: %d frames highlighted, %s (expected %.3f%%); reset clears it" % (
            args.function, len(lit), r["matched"], want_pct))

        check(r["ctrl_f_asked"] == 1 and r["ctrl_f_prevented"],
              "Ctrl-F: asked %d times, the browser's own find %s" % (
                  r["ctrl_f_asked"], "prevented" if r["ctrl_f_prevented"] else "not prevented"))
        check(r["ctrl_f_matched"].startswith("Matched: "), "Ctrl-F's search: #matched says %r" % r["ctrl_f_matched"])
        print("Ctrl-F: asks for a pattern and searches")
    except Failure as e:
        print("svg_check: %s" % e)
        return 1
    print("svg_check: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
