"""Sample app "web": serves its version on / and its health on /health.

/slow?s=N answers after N seconds (at most 30): a long request for the tests
and benchmarks of a swap. On SIGTERM the server stops accepting connections
and exits once the requests in flight are answered (Docker kills it after the
stop timeout).

/ws is a WebSocket (RFC 6455, text only): each text message is answered with
"web <VERSION> echo <message>", a ping with a pong, a close frame with a close
frame. An open WebSocket is a request in flight that never ends by itself, so
on SIGTERM the server sends every open WebSocket a close frame 1001 ("going
away": reconnect, and the proxy sends you to the new version), waits up to
2 s for the client's close frame, then drops the connection and exits.

/private answers only a request with the API token (`Authorization: Bearer
<token>`). The token is a secret: it is read from the file WEB_API_TOKEN_FILE
names (appfleet.docker mounts each secret read-only at /run/secrets/<KEY> and
sets <KEY>_FILE), falling back to the plain WEB_API_TOKEN variable.
"""

import base64
import hashlib
import hmac
import os
import signal
import socket
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

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC11B85"  # RFC 6455, section 1.3
CONTINUATION, TEXT, CLOSE, PING, PONG = 0x0, 0x1, 0x8, 0x9, 0xA
MAX_MESSAGE = 64 * 1024
CLOSE_WAIT = 2.0  # seconds a client has to answer our close frame on SIGTERM
OPEN_WEBSOCKETS = set()
OPEN_LOCK = threading.Lock()
STOPPING = threading.Event()


class WebSocket:
    """The server side of one WebSocket: read the client's masked frames, send unmasked ones."""

    def __init__(self, handler):
        self.rfile, self.wfile, self.sock = handler.rfile, handler.wfile, handler.connection
        self.lock = threading.Lock()  # an echo and the SIGTERM close frame may be sent at once
        self.closing = False  # a close frame was sent: nothing may follow it

    def send(self, opcode, payload=b""):
        size = len(payload)
        if size < 126:
            header = bytes([0x80 | opcode, size])
        elif size < 65536:
            header = bytes([0x80 | opcode, 126]) + size.to_bytes(2, "big")
        else:
            header = bytes([0x80 | opcode, 127]) + size.to_bytes(8, "big")
        with self.lock:
            if self.closing:
                return
            self.closing = opcode == CLOSE
            self.wfile.write(header + payload)

    def close(self, code, reason=""):
        self.send(CLOSE, code.to_bytes(2, "big") + reason.encode())

    def going_away(self):
        """SIGTERM: ask the client to go (1001), drop the connection if it does not answer."""
        try:
            self.close(1001, "going away")
        except OSError:
            pass
        timer = threading.Timer(CLOSE_WAIT, self.drop)
        timer.daemon = True
        timer.start()

    def drop(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the handler thread blocked in a read
        except OSError:
            pass

    def read(self, size):
        data = self.rfile.read(size)
        if len(data) < size:
            raise EOFError
        return data

    def read_frame(self):
        """(fin, opcode, payload) of the client's next frame."""
        first, second = self.read(2)
        size = second & 0x7F
        if size == 126:
            size = int.from_bytes(self.read(2), "big")
        elif size == 127:
            size = int.from_bytes(self.read(8), "big")
        if not second & 0x80:
            raise ValueError(1002)  # a client must mask its frames (section 5.1)
        if size > MAX_MESSAGE:
            raise ValueError(1009)
        mask = self.read(4)
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(self.read(size)))
        return first & 0x80, first & 0x0F, payload

    def serve(self):
        """Echo text messages until either side closes."""
        message = b""
        while True:
            try:
                fin, opcode, payload = self.read_frame()
            except (EOFError, OSError):
                return
            except ValueError as exc:
                self.close(exc.args[0])
                return
            if opcode == PING:
                self.send(PONG, payload)
            elif opcode == CLOSE:
                self.send(CLOSE, payload[:2])  # answer with the client's code (nothing if we sent ours)
                return
            elif opcode in (TEXT, CONTINUATION):
                message += payload
                if len(message) > MAX_MESSAGE:
                    self.close(1009)
                    return
                if fin:
                    try:
                        text = message.decode()
                    except UnicodeDecodeError:
                        self.close(1007)
                        return
                    self.send(TEXT, ("web %s echo %s" % (VERSION, text)).encode())
                    message = b""
            elif opcode != PONG:
                self.close(1003, "text frames only")
                return


def close_websockets():
    with OPEN_LOCK:
        STOPPING.set()
        sockets = list(OPEN_WEBSOCKETS)
    for ws in sockets:
        ws.going_away()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/ws":
            self.websocket()
            return
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

    def websocket(self):
        """The opening handshake (RFC 6455, section 4.2), then the echo until a close."""
        key = self.headers.get("Sec-WebSocket-Key", "")
        if (self.headers.get("Upgrade", "").lower() != "websocket" or not key
                or "upgrade" not in self.headers.get("Connection", "").lower()
                or self.headers.get("Sec-WebSocket-Version") != "13"):
            self.send_error(400, "a WebSocket handshake (version 13) was expected")
            return
        ws = WebSocket(self)
        with OPEN_LOCK:
            if STOPPING.is_set():
                self.send_error(503, "stopping")
                return
            OPEN_WEBSOCKETS.add(ws)
        try:
            accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
            self.protocol_version = "HTTP/1.1"  # the 101 must say HTTP/1.1
            self.send_response(101, "Switching Protocols")
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.send_header("Sec-WebSocket-Accept", accept)
            self.end_headers()
            ws.serve()
        except OSError:
            pass  # the client went away while we were sending
        finally:
            self.close_connection = True
            with OPEN_LOCK:
                OPEN_WEBSOCKETS.discard(ws)

    def log_message(self, fmt, *args):
        sys.stdout.write("web: " + fmt % args + "\n")
        sys.stdout.flush()


class Server(ThreadingHTTPServer):
    # A listen backlog as production servers have (gunicorn's is 2048). socketserver's
    # default of 5 overflows when nginx opens connections in a burst, and each connection
    # dropped there waits a second for the SYN to be sent again.
    request_queue_size = 1024


def main():
    server = Server(("0.0.0.0", int(os.environ.get("PORT", "8080"))), Handler)
    # Graceful stop: server_close() below waits for the request threads.
    server.daemon_threads = False

    def stop(*_):
        print("web %s: SIGTERM, finishing the requests in flight, closing the WebSockets" % VERSION, flush=True)
        threading.Thread(target=server.shutdown, daemon=True).start()
        threading.Thread(target=close_websockets, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    token = "set" if API_TOKEN else "not set"
    print("web %s listening on %s (API token %s)" % (VERSION, server.server_address, token), flush=True)
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
