# A target that rebuilds its data and its threads as fast as it can, for --nonblocking runs:
# threads start, recurse to a random depth and end; the main thread replaces containers of
# random shapes, and a Churn object graph is rebuilt and dropped continuously. It prints a
# heartbeat every 50 ms, so the driver can tell it is still healthy.
import random
import sys
import threading
import time


class Churn(object):
    def __init__(self, n, parent=None):
        self.n = n
        self.parent = parent
        self.children = []
        self.payload = "x" * (n % 97)


def deep(n):
    if n:
        return deep(n - 1)
    time.sleep(random.random() * 0.002)


def spawner(stop):
    while not stop[0]:
        ts = [threading.Thread(target=deep, args=(random.randint(0, 60),)) for _ in range(random.randint(1, 6))]
        for t in ts:
            t.start()
        for t in ts:
            t.join()


def rebuild(rng):
    root = Churn(0)
    nodes = [root]
    for i in range(rng.randint(100, 3000)):
        parent = rng.choice(nodes)
        c = Churn(i, parent)
        parent.children.append(c)
        nodes.append(c)
    data = {}
    for i in range(rng.randint(10, 500)):
        data[str(i) * rng.randint(1, 5)] = [rng.random() for _ in range(rng.randint(0, 40))]
    return root, data


stop = [False]
spawners = [threading.Thread(target=spawner, args=(stop,)) for _ in range(2)]
for t in spawners:
    t.daemon = True
    t.start()
rng = random.Random(1)
KEEP = None
sys.stdout.write("ready\n")
sys.stdout.flush()
last = time.time()
while True:
    KEEP = rebuild(rng)
    if time.time() - last > 0.05:
        sys.stdout.write("alive\n")
        sys.stdout.flush()
        last = time.time()
