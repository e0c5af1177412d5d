# Threads blocked on every kind of thing a thread waits for, each in a known way; the report
# says, for each thread, what it waits for (kind, the object's id) and which thread holds it, as
# the target itself arranged it, and which threads are deadlocked. Then the main thread parks
# (see _park.py).
#   dl-a, dl-b: two threads, two Locks, each holding one (a with-block) and wanting the other;
#   rl-owner holds an RLock (acquire()) and waits on an Event; rl-w1, rl-w2 want the RLock;
#   cond-waiter: Condition.wait(); q-getter: Queue.get() on an empty queue; sem-waiter:
#   Semaphore.acquire(); attr-holder holds box._lock in a with-block and waits on an Event,
#   attr-waiter wants box._lock; ev-timed waits on an Event with a timeout (3.x).
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _park  # noqa: E402

try:
    import queue
except ImportError:  # 2.7
    import Queue as queue

lock_a = threading.Lock()
lock_b = threading.Lock()
rlock = threading.RLock()
cond = threading.Condition()
q = queue.Queue()
sem = threading.Semaphore(0)
never = threading.Event()
a_holds, b_holds, owner_holds, attr_holds = (threading.Event() for _ in range(4))


class Box(object):
    def __init__(self):
        self._lock = threading.Lock()


box = Box()


def dl_a():
    with lock_a:
        a_holds.set()
        b_holds.wait()
        _park.register()
        with lock_b:
            pass


def dl_b():
    with lock_b:
        b_holds.set()
        a_holds.wait()
        _park.register()
        with lock_a:
            pass


def rl_owner():
    rlock.acquire()
    owner_holds.set()
    _park.register()
    never.wait()


def rl_wanter():
    owner_holds.wait()
    _park.register()
    with rlock:
        pass


def cond_waiter():
    _park.register()
    with cond:
        cond.wait()


def q_getter():
    _park.register()
    q.get()


def sem_waiter():
    _park.register()
    sem.acquire()


def ev_timed():
    _park.register()
    never.wait(3600)  # a timed wait: after a stop it goes on as restart_syscall


def attr_holder():
    with box._lock:
        attr_holds.set()
        _park.register()
        never.wait()


def attr_waiter(b):
    attr_holds.wait()
    _park.register()
    with b._lock:
        pass


plan = [
    ("dl-a", dl_a, (), "Lock", lock_a, "dl-b"),
    ("dl-b", dl_b, (), "Lock", lock_b, "dl-a"),
    ("rl-owner", rl_owner, (), "Event", never, None),
    ("rl-w1", rl_wanter, (), "RLock", rlock, "rl-owner"),
    ("rl-w2", rl_wanter, (), "RLock", rlock, "rl-owner"),
    ("cond-waiter", cond_waiter, (), "Condition", cond, None),
    ("q-getter", q_getter, (), "Queue", q, None),
    ("sem-waiter", sem_waiter, (), "Semaphore", sem, None),
    ("attr-holder", attr_holder, (), "Event", never, None),
    ("attr-waiter", attr_waiter, (box,), "Lock", box._lock, "attr-holder"),
]
if sys.version_info[0] > 2:  # 2.7's timed waits poll in time.sleep(): no futex
    plan.append(("ev-timed", ev_timed, (), "Event", never, None))
# dl-a waits for lock_b (held by dl-b) and dl-b for lock_a: what each waits for is the other's.
waits = {"dl-a": lock_b, "dl-b": lock_a}
threads = []
_park.open_channel()
for name, fn, args, kind, obj, holder in plan:
    t = threading.Thread(target=fn, name=name, args=args)
    t.daemon = True
    t.start()
    threads.append(t)
_park.register()
_park.wait_registered(len(plan) + 1)
_park.wait_stable([t.ident for t in threads])
expected = {}
for name, fn, args, kind, obj, holder in plan:
    expected[name] = {"kind": kind, "address": id(waits.get(name, obj)), "held_by": holder}
names = {"dl-a": "__main__.lock_b", "dl-b": "__main__.lock_a", "attr-waiter": "Box._lock",
         "rl-w1": "__main__.rlock", "rl-w2": "__main__.rlock"}
holds = {"dl-a": id(lock_a), "dl-b": id(lock_b), "attr-holder": id(box._lock), "rl-owner": id(rlock)}
_park.park(extra={"expected": expected, "names": names, "holds": holds, "deadlock": ["dl-a", "dl-b"]})
