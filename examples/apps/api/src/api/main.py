"""Sample app "api": JSON on /, its version on /version, health on /health."""

import json
import os
import pkgutil
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = pkgutil.get_data("api", "VERSION").decode().strip()
MANIFEST = json.loads(pkgutil.get_data("api", "manifest.json"))


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health":
            code, body, ctype = 200, "ok\n", "text/plain"
        elif self.path == "/version":
            code, body, ctype = 200, "api %s\n" % VERSION, "text/plain"
        elif self.path == "/":
            doc = {"app": "api", "version": VERSION, "assets": MANIFEST}
            code, body, ctype = 200, json.dumps(doc, sort_keys=True) + "\n", "application/json"
        else:
            code, body, ctype = 404, "not found\n", "text/plain"
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        sys.stdout.write("api: " + fmt % args + "\n")
        sys.stdout.flush()


def main():
    server = ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8080"))), Handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("api %s listening on %s" % (VERSION, server.server_address), flush=True)
    server.serve_forever()
