"""A leak through a string that only ever grows.

A log shipper reads chunks of log text and forwards them; it also keeps everything it has sent
"in case a resend is needed", by appending each chunk to one str on a module-level object.
Nothing ever trims it, so the process grows by about 136 KB a second (8 MB a minute), for ever.

    python examples/growing_string/leak.py &

Prints "ready <pid>" once that string holds 1 MiB, then keeps appending until it is killed.
"""
from __future__ import print_function

import os
import sys
import threading
import time


class LogShipper(object):
    def __init__(self):
        self.sent = ""  # everything ever forwarded

    def run(self, source):
        announced = False
        for chunk in source:
            self.forward(chunk)
            self.sent += chunk  # the leak: appended to, never trimmed
            if not announced and len(self.sent) >= 1 << 20:
                print("ready", os.getpid())
                sys.stdout.flush()
                announced = True

    def forward(self, chunk):
        pass  # stands in for a network send


def read_chunks():
    """Stands in for reading a pipe or a socket: 2000 log lines (136 KB) a second."""
    n = 0
    while True:
        time.sleep(1.0)
        lines = []
        for _ in range(2000):
            n += 1
            lines.append("%010d INFO request served status=200 bytes=512 client=10.0.0.7\n" % n)
        yield "".join(lines)


shipper = LogShipper()

if __name__ == "__main__":
    worker = threading.Thread(target=shipper.run, args=(read_chunks(),), name="shipper")
    worker.daemon = True
    worker.start()
    while worker.is_alive():
        worker.join(1.0)
