"""A leak through a string that only ever grows.

A long-running poller appends a line to an in-memory audit trail for every event it sees. The
trail is a plain str kept on a module-level object and nothing ever trims it, so the process
grows by about 100 KiB a second, for ever.

    python examples/growing_string/leak.py &

Prints "ready <pid>" once the trail holds 1 MiB, then keeps appending until it is killed.
"""
from __future__ import print_function

import os
import sys
import time


class AuditTrail(object):
    def __init__(self):
        self.text = ""

    def follow(self, events):
        announced = False
        for event in events:
            self.text += "%.6f %s\n" % (time.time(), event)
            if not announced and len(self.text) >= 1 << 20:
                print("ready", os.getpid())
                sys.stdout.flush()
                announced = True


def poll_events():
    """Stands in for reading a socket or a queue: a batch of events every 10 ms."""
    n = 0
    while True:
        time.sleep(0.01)
        for _ in range(10):
            n += 1
            yield "event=%d status=ok source=poller detail=%s" % (n, "x" * 40)


trail = AuditTrail()

if __name__ == "__main__":
    trail.follow(poll_events())
