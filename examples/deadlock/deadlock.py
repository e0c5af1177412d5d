"""Two threads deadlocked on two locks.

A tiny bank: "transfer" moves money between accounts and then writes the ledger; "audit"
reads the ledger and then checks the accounts. Each takes the two locks in its own order:
transfer holds accounts_lock and waits for ledger_lock, audit holds ledger_lock and waits for
accounts_lock. Neither can go on, and the process sits at 0% CPU for ever.

    python examples/deadlock/deadlock.py &

Prints "ready <pid>" once both threads are stuck, then waits for them (for ever) until killed.
"""
from __future__ import print_function

import os
import sys
import threading
import time

accounts_lock = threading.Lock()
ledger_lock = threading.Lock()
balances = {"alice": 100, "bob": 50}
ledger = []

# Only there to make the unlucky interleaving happen every time: each thread takes its first
# lock, then waits until the other has taken its own.
transfer_has_first = threading.Event()
audit_has_first = threading.Event()


def transfer(source, target, amount):
    with accounts_lock:
        balances[source] -= amount
        balances[target] += amount
        transfer_has_first.set()
        audit_has_first.wait()
        write_ledger(source, target, amount)


def write_ledger(source, target, amount):
    with ledger_lock:
        ledger.append((source, target, amount))


def audit():
    with ledger_lock:
        entries = list(ledger)
        audit_has_first.set()
        transfer_has_first.wait()
        check_balances(entries)


def check_balances(entries):
    with accounts_lock:
        return sum(balances.values()) == 150


def main():
    threads = [threading.Thread(target=transfer, args=("alice", "bob", 10), name="transfer"),
               threading.Thread(target=audit, name="audit")]
    for t in threads:
        t.daemon = True
        t.start()
    transfer_has_first.wait()
    audit_has_first.wait()
    time.sleep(0.2)  # both threads now block on their second lock
    print("ready", os.getpid())
    sys.stdout.flush()
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
