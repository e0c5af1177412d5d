"""A leak through a reference cycle whose objects define __del__.

Every "request" creates an ObjectA and an ObjectB that point at each other, then drops them.
Reference counting alone can never free such a pair; only the cyclic garbage collector can.
On Python 2.7 the collector refuses to free a cycle with a __del__ and parks it in gc.garbage
for good, so memory grows for ever. On Python 3.4+ (PEP 442) the same cycle is freed and
memory stays flat.

    python examples/cycle_leak/leak.py &            # the leak as it is
    python examples/cycle_leak/leak.py --no-gc &    # the same code with the collector disabled

Prints "ready <pid>" once about a thousand pairs have been made, then goes on making about 200
pairs a second until it is killed.
"""
from __future__ import print_function

import gc
import os
import sys
import time


class ObjectA(object):
    def __init__(self, number):
        self.number = number
        self.partner = None

    def __del__(self):
        # Meant as clean-up; on Python 2 its mere presence keeps the cycle alive.
        self.partner = None


class ObjectB(object):
    def __init__(self, owner):
        self.owner = owner

    def __del__(self):
        self.owner = None


def handle_request(number):
    a = ObjectA(number)
    b = ObjectB(a)  # b -> a
    a.partner = b   # a -> b: a cycle
    # a and b go out of scope here, but each still holds the other


def main():
    if "--no-gc" in sys.argv[1:]:
        gc.disable()
    made = 0
    announced = False
    while True:
        for _ in range(20):
            handle_request(made)
            made += 1
        if not announced and made >= 1000:
            print("ready", os.getpid())
            sys.stdout.flush()
            announced = True
        time.sleep(0.1)


if __name__ == "__main__":
    main()
