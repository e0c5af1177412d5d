# A busy multi-threaded target for the repetition test: worker threads hash a chain of values as
# fast as they can, a few frames deep; the main thread prints a progress line every 20 ms. Every
# catchable signal that a debugger could let slip (SIGCONT, SIGTRAP, SIGCHLD, ...) is counted.
# On "stop" on stdin it prints each worker's iteration count and digest, and the signal counts:
# the driver recomputes the digests itself, so a single corrupted value shows.
import hashlib
import json
import signal
import sys
import threading
import time

WORKERS = int(sys.argv[1]) if len(sys.argv) > 1 else 4
signals = {}


def on_signal(sig, frame):
    signals[sig] = signals.get(sig, 0) + 1


for name in ("SIGCONT", "SIGTRAP", "SIGCHLD", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGHUP", "SIGPIPE",
             "SIGWINCH", "SIGURG", "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGPROF", "SIGVTALRM", "SIGIO"):
    if hasattr(signal, name):
        signal.signal(getattr(signal, name), on_signal)

stop = threading.Event()
state = [[0, b""] for _ in range(WORKERS)]


def chain(i, depth):
    if depth:
        return chain(i, depth - 1)
    st = state[i]
    h = st[1]
    n = st[0]
    while not stop.is_set():
        for _ in range(200):
            h = hashlib.sha256(h + str(n).encode("ascii")).digest()
            n += 1
        st[0], st[1] = n, h


threads = [threading.Thread(target=chain, args=(i, 5 + i), name="worker-%d" % i) for i in range(WORKERS)]
for t in threads:
    t.daemon = True
    t.start()


def reader():
    sys.stdin.readline()
    stop.set()


r = threading.Thread(target=reader, name="reader")
r.daemon = True
r.start()
sys.stdout.write("ready\n")
sys.stdout.flush()
while not stop.is_set():
    sys.stdout.write("progress %d\n" % sum(s[0] for s in state))
    sys.stdout.flush()
    time.sleep(0.02)
for t in threads:
    t.join()
sys.stdout.write("result %s\n" % json.dumps({
    "workers": [[s[0], hashlib.sha256(s[1]).hexdigest()] for s in state],
    "signals": dict((str(k), v) for k, v in signals.items())}))
sys.stdout.flush()
