"""The target of bench/tasks_bench.py: N pending asyncio tasks on a loop run by a thread of its
own, in groups of ten: a parent awaiting gather() of nine children, each child awaiting a
sleep. Once they are all waiting it measures, on the loop's thread, what the same answer costs
in-process (asyncio.all_tasks(), and each task's chain of coroutines through cr_await, its name
and _fut_waiter), then prints "ready PID IN_PROCESS_US" and waits to be killed."""
import asyncio
import os
import sys
import threading
import time

N = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
loop = asyncio.new_event_loop()
done = threading.Event()
cost = []


async def child():
    await asyncio.sleep(3600)


async def parent():
    await asyncio.gather(*[loop.create_task(child()) for _ in range(9)])


def measure():
    t0 = time.perf_counter()
    out = []
    for t in asyncio.all_tasks(loop):
        chain = []
        c = t._coro
        while c is not None and hasattr(c, "cr_frame"):
            if c.cr_frame is not None:
                chain.append((c.cr_frame.f_code.co_filename, c.cr_frame.f_lineno))
            c = c.cr_await
        out.append((t.get_name() if hasattr(t, "get_name") else None, chain, id(t._fut_waiter)))
    cost.append((time.perf_counter() - t0) * 1e6)
    done.set()


def run():
    asyncio.set_event_loop(loop)
    for _ in range(N // 10):
        loop.create_task(parent())
    for _ in range(3):
        loop.run_until_complete(asyncio.sleep(0.05))
    loop.call_soon(measure)
    loop.run_forever()


threading.Thread(target=run, daemon=True).start()
done.wait()
print("ready", os.getpid(), "%.0f" % cost[0])
sys.stdout.flush()
while True:
    time.sleep(1000)
