"""Sample app "web": serves its version on / and its health on /health.

/slow?s=N answers after N seconds (at most 30): a long request for the tests
and benchmarks of a swap. On SIGTERM the server stops accepting connections
and exits once the requests in flight are answered (Docker kills it after the
stop timeout).

/private answers only a request with the API token (`Authorization: Bearer
<token>`). The token is a secret: it is read from the file WEB_API_TOKEN_FILE
names (appfleet.docker mounts each secret read-only at /run/secrets/<KEY> and
sets <KEY>_FILE), falling back to the plain WEB_API_TOKEN variable.
"""

import hmac
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "VERSION")) as fh:
    VERSION = fh.read().strip()
GREETING = os.environ.get("GREETING", "hello")
# A broken release can be simulated without code: HEALTHY=0 never gets healthy.
HEALTHY = os.environ.get("HEALTHY", "1") != "0"


def read_secret(name):
    """The secret NAME: the content of the file NAME_FILE names, else the variable NAME."""
    path = os.environ.get(name + "_FILE")
    if path:
        with open(path) as handle:
            return handle.read().rstrip("\n")
    return os.environ.get(name)


API_TOKEN = read_secret("WEB_API_TOKEN")


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/slow":
            try:
                seconds = min(max(float(parse_qs(url.query).get("s", ["5"])[0]), 0.0), 30.0)
            except ValueError:
                seconds = 5.0
            time.sleep(seconds)
            code, body = 200, "web %s slow %gs\n" % (VERSION, seconds)
        elif self.path == "/health":
            code, body = (200, "ok\n") if HEALTHY else (503, "unhealthy\n")
        elif self.path == "/":
            code, body = 200, "web %s %s\n" % (VERSION, GREETING)
        elif self.path == "/private":
            given = self.headers.get("Authorization", "")
            if not API_TOKEN:
                code, body = 503, "no API token configured\n"
            elif hmac.compare_digest(given.encode(), ("Bearer " + API_TOKEN).encode()):
                code, body = 200, "web %s private\n" % VERSION
            else:
                code, body = 401, "unauthorized\n"
        else:
            code, body = 404, "not found\n"
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        sys.stdout.write("web: " + fmt % args + "\n")
        sys.stdout.flush()


def main():
    server = ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8080"))), Handler)
    # Graceful stop: server_close() below waits for the request threads.
    server.daemon_threads = False

    def stop(*_):
        print("web %s: SIGTERM, finishing the requests in flight" % VERSION, flush=True)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    token = "set" if API_TOKEN else "not set"
    print("web %s listening on %s (API token %s)" % (VERSION, server.server_address, token), flush=True)
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
