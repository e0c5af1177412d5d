# asyncio: coroutines awaiting each other, the innermost blocking its thread in a C call; an
# async generator on 3.6+. Python 3 only.
import asyncio
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _park  # noqa: E402

held = threading.Lock()
held.acquire()


async def innermost():
    _park.register(); held.acquire()


async def middle():
    await innermost()


async def ticker():
    yield await middle()


async def outer():
    async for _ in ticker():
        pass


def run_loop():
    loop = asyncio.new_event_loop()
    loop.run_until_complete(outer())


t = _park.start_one(run_loop, "event-loop")
_park.park()
