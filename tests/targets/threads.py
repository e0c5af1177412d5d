# Threads blocked in the usual places: sleep, a lock, a queue, an event, a method, a nested
# function, a lambda, a class body and a generator. Then the main thread parks (see _park.py).
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _park  # noqa: E402

try:
    import queue
except ImportError:  # Python 2
    import Queue as queue

held = threading.Lock()
held.acquire()
never = threading.Event()
jobs = queue.Queue()


def sleeper():
    _park.register(); time.sleep(1000000)


def outer():
    def inner():
        _park.register(); held.acquire()
    inner()


def waiter():
    _park.register(); never.wait()


def getter():
    _park.register(); jobs.get()


class Service(object):
    def handle(self):
        _park.register(); never.wait()


def produce():
    _park.register(); held.acquire()
    yield 1


def consume():
    for _ in produce():
        pass


def make_class():
    class Inner(object):
        _park.register(); held.acquire()
    return Inner


workers = [
    ("sleeper", sleeper),
    ("nested", outer),
    ("event-waiter", waiter),
    ("queue-getter", getter),
    ("service", Service().handle),
    ("generator", consume),
    ("class-body", make_class),
    ("lambda", lambda: (_park.register(), held.acquire())),
]
threads = []
for name, fn in workers:
    t = threading.Thread(target=fn, name=name)
    t.daemon = True
    t.start()
    threads.append(t)

_park.open_channel()
_park.register()
_park.wait_registered(len(workers) + 1)
_park.wait_stable([t.ident for t in threads])


def main():
    _park.park()


main()
