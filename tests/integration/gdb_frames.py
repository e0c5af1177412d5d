"""Run inside gdb (gdb -batch -p PID -x gdb_frames.py): every thread's frames as gdb unwinds and
names them, one JSON line: {"LWP": [{"name", "pc", "inline", "tailcall"}, ...]}, innermost first. The oracle
of the native-frame tests."""
import json

import gdb  # noqa: F401 (gdb's own module)

out = {}
for inferior in gdb.inferiors():
    for thread in inferior.threads():
        thread.switch()
        frames = []
        frame = gdb.newest_frame()
        while frame is not None and len(frames) < 2000:
            # Tail-call frames are gdb's reconstruction from the DWARF's call-site records: no
            # such frame is on the stack.
            frames.append({"name": frame.name(), "pc": frame.pc(), "inline": frame.type() == gdb.INLINE_FRAME,
                           "tailcall": frame.type() == gdb.TAILCALL_FRAME})
            try:
                frame = frame.older()
            except gdb.error:
                break
        out[str(thread.ptid[1])] = frames
print("GDB-FRAMES " + json.dumps(out))
