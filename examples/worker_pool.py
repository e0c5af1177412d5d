"""A small job service: a dispatcher feeds jobs to a pool of workers; one worker is stuck
waiting on a lock that is never released, another crunches numbers and holds the GIL.

Run it, then look inside it from another terminal:
    python3 examples/worker_pool.py &
    pyinspect stack $!
Works on Python 2.7 and 3.x. Prints "ready <pid>" once every thread is running.
"""
from __future__ import print_function

import os
import sys
import threading
import time

try:
    import queue
except ImportError:  # Python 2
    import Queue as queue

jobs = queue.Queue()
results = []
forgotten = threading.Lock()
forgotten.acquire()  # nobody will ever release it


class Worker(threading.Thread):
    def __init__(self, number):
        threading.Thread.__init__(self, name="worker-%d" % number)
        self.daemon = True

    def run(self):
        while True:
            job = jobs.get()
            self.handle(job)

    def handle(self, job):
        if job == "report":
            self.write_report()
        elif job == "crunch":
            results.append(crunch(10 ** 12))

    def write_report(self):
        with forgotten:  # stuck here for good
            pass


def crunch(n):
    total = 0
    for i in range(n):
        total += i * i
    return total


def dispatcher():
    for job in ["report", "crunch"]:
        jobs.put(job)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    for n in range(4):
        Worker(n).start()
    d = threading.Thread(target=dispatcher, name="dispatcher")
    d.daemon = True
    d.start()
    while jobs.qsize():
        time.sleep(0.01)
    print("ready", os.getpid())
    sys.stdout.flush()
    d.join()
