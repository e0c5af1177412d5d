# asyncio tasks waiting on each other in known ways, on an event loop run by a thread of its own
# ("loop"); the report says what the target itself sees of them: asyncio.all_tasks(), each
# task's name (3.8+), the chain of coroutines it is in (cr_frame, cr_await: function and line,
# outermost first), Task.get_stack(), what it awaits (_fut_waiter), and the tasks awaiting it.
# Then the main thread parks (see _park.py).
#   main awaits gather(worker-1, worker-2); worker-1 awaits the task leaf, which sleeps;
#   worker-2 awaits a future nobody completes; cycle-a awaits cycle-b, which awaits cycle-a.
import asyncio
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _park  # noqa: E402

NAMES = sys.version_info >= (3, 8)
tasks = {}
loop = asyncio.new_event_loop()
forever = loop.create_future()
settled = threading.Event()
expected = {}


def spawn(coro, name):
    t = loop.create_task(coro, name=name) if NAMES else loop.create_task(coro)
    tasks[name] = t
    return t


async def leaf():
    await asyncio.sleep(3600)


async def worker_one():
    await spawn(leaf(), "leaf")


async def worker_two():
    await forever


async def main():
    await asyncio.gather(spawn(worker_one(), "worker-1"), spawn(worker_two(), "worker-2"))


async def cycle_a():
    await asyncio.sleep(0)
    await tasks["cycle-b"]


async def cycle_b():
    await asyncio.sleep(0)
    await tasks["cycle-a"]


def chain(coro):
    out = []
    while coro is not None and hasattr(coro, "cr_frame"):
        if coro.cr_frame is not None:
            out.append([coro.cr_frame.f_code.co_name, coro.cr_frame.f_lineno])
        coro = coro.cr_await
    return out


def describe():
    by_id = dict((id(t), n) for n, t in tasks.items())
    pending = [t for t in asyncio.all_tasks(loop)]
    for t in pending:
        name = by_id.get(id(t))
        w = getattr(t, "_fut_waiter", None)
        expected[name] = {
            "id": id(t),
            "name": t.get_name() if NAMES else None,
            "chain": chain(t._coro),
            "stack": [[f.f_code.co_name, f.f_lineno] for f in t.get_stack()],
            "waiter": id(w) if w is not None else None,
            "waiter_is_task": isinstance(w, asyncio.Task),
        }
    settled.set()


def run():
    _park.register()
    asyncio.set_event_loop(loop)
    spawn(main(), "main")
    spawn(cycle_a(), "cycle-a")
    spawn(cycle_b(), "cycle-b")
    # A few turns of the loop: every task is then where it stays.
    for _ in range(5):
        loop.run_until_complete(asyncio.sleep(0.01))
    loop.call_soon(describe)
    loop.run_forever()


t = threading.Thread(target=run, name="loop")
t.daemon = True
_park.open_channel()
t.start()
_park.register()
if not settled.wait(60):
    raise RuntimeError("the loop did not describe its tasks")
_park.wait_registered(2)
_park.wait_stable([t.ident])
awaited_by = {"worker-1": ["main"], "worker-2": ["main"], "leaf": ["worker-1"], "cycle-a": ["cycle-b"],
              "cycle-b": ["cycle-a"], "main": []}
_park.park(extra={"tasks": expected, "awaited_by": awaited_by, "cycle": ["cycle-a", "cycle-b"],
                  "loop": id(loop), "loop_thread": "loop"})
