"""Sample app "web": serves its version on / and its health on /health."""

import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "VERSION")) as fh:
    VERSION = fh.read().strip()
GREETING = os.environ.get("GREETING", "hello")
# A broken release can be simulated without code: HEALTHY=0 never gets healthy.
HEALTHY = os.environ.get("HEALTHY", "1") != "0"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health":
            code, body = (200, "ok\n") if HEALTHY else (503, "unhealthy\n")
        elif self.path == "/":
            code, body = 200, "web %s %s\n" % (VERSION, GREETING)
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
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("web %s listening on %s" % (VERSION, server.server_address), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
