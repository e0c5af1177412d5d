"""A threaded web service whose response cache leaks.

The service renders an HTML report (about 90 KB) per user and page. Rendering is slow (it
sleeps one second, standing in for a database query), so the handler keeps every response in a
module-level dict keyed by the request path. The path includes the query string, and one of its
parameters ("t", a timestamp that clients add to defeat caches) differs on every request: each
response is cached once, never used again, and never evicted.

The server is the standard library's http.server with one thread per request, listening on
127.0.0.1 on a port chosen by the system. Two client threads in the same process keep sending
requests, so the program needs nothing else. It serves about two requests a second and grows by
about 10 MB a minute.

    python examples/web_cache/server.py &

Prints "ready <pid>" once the cache holds 20 responses, then keeps serving until it is killed.
"""
from __future__ import print_function

import os
import random
import sys
import threading
import time

try:  # Python 3
    from http.client import HTTPConnection
    from http.server import BaseHTTPRequestHandler, HTTPServer
    from socketserver import ThreadingMixIn
except ImportError:  # Python 2
    from httplib import HTTPConnection
    from BaseHTTPServer import BaseHTTPRequestHandler, HTTPServer
    from SocketServer import ThreadingMixIn

try:
    from http.server import ThreadingHTTPServer  # Python 3.7+
except ImportError:
    class ThreadingHTTPServer(ThreadingMixIn, HTTPServer):
        daemon_threads = True

CACHE = {}  # request path -> rendered page; nothing ever removes an entry


def render_report(user, page):
    time.sleep(1.0)  # the slow part: a database query
    rows = "".join("<tr><td>%s</td><td>%d</td><td>%d</td><td>ok</td></tr>\n" % (user, page, i)
                   for i in range(1500))
    return ("<html><body><h1>Report for %s, page %d</h1>\n<table>\n%s</table></body></html>\n"
            % (user, page, rows)).encode("ascii")


class ReportHandler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = CACHE.get(self.path)
        if body is None:
            user, page = parse_query(self.path)
            body = render_report(user, page)
            CACHE[self.path] = body
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass  # keep the terminal quiet


def parse_query(path):
    params = dict(p.split("=", 1) for p in path.partition("?")[2].split("&") if "=" in p)
    return params.get("user", "nobody"), int(params.get("page", "1"))


def client(port):
    """Load generator: what a client that adds a cache-busting timestamp would send."""
    while True:
        path = "/report?user=user%d&page=%d&t=%.6f" % (
            random.randint(1, 20), random.randint(1, 5), time.time())
        try:
            conn = HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("GET", path)
            conn.getresponse().read()
            conn.close()
        except Exception as e:  # keep loading even if one request fails
            print("client:", e, file=sys.stderr)
            time.sleep(1)


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), ReportHandler)
    server.daemon_threads = True
    port = server.server_address[1]
    threads = [threading.Thread(target=server.serve_forever, name="http-server")]
    threads += [threading.Thread(target=client, args=(port,), name="client-%d" % n)
                for n in range(2)]
    for t in threads:
        t.daemon = True
        t.start()
    while len(CACHE) < 20:
        time.sleep(0.1)
    print("ready", os.getpid())
    sys.stdout.flush()
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main()
