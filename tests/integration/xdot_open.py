"""Opens DOT files the way xdot does (its DotWidget runs `dot -Txdot` and parses the result) and
prints, as JSON, per file: whether it opened, the errors xdot would show, and its node and edge
counts. Run with xdot's own interpreter under a display (xvfb-run): xdot needs GTK."""
import json
import sys

import gi
gi.require_version("Gtk", "3.0")
from gi.repository import Gtk  # noqa: E402,F401
import xdot  # noqa: E402

results = []
for path in sys.argv[1:]:
    errors = []
    widget = xdot.DotWidget()
    widget.connect("error", lambda w, message: errors.append(message))
    with open(path, "rb") as f:
        opened = bool(widget.set_dotcode(f.read(), filename=path))
    graph = widget.graph
    results.append({"path": path, "opened": opened, "errors": errors,
                    "nodes": len(graph.nodes), "edges": len(graph.edges)})
print(json.dumps(results))
