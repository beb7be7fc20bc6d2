"""What an open WebSocket sees when app_container swaps the app (issue #13).

The real sample app (examples/apps/web, its /ws echo) behind a private real
nginx whose server block passes upgrades as the proxy role's does. A swap
moves only the slot flag: a WebSocket opened before it stays on the old
container through the drain; when the old container is stopped the app
sends it a close frame 1001 ("going away") and the connection ends; a
WebSocket opened after the switch reaches the new version. Plain requests
never fail meanwhile.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import run_module  # noqa: E402  (tests/conftest.py helpers)
pytest.register_assert_rewrite("app_container.fixtures")
from app_container.fixtures import WEB_DIR, WEB_REPO, Probe, free_port  # noqa: E402

pytest_plugins = ["app_container.fixtures"]

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC11B85"
TEXT, CLOSE, PING, PONG = 0x1, 0x8, 0x9, 0xA
DRAIN = 3
STOP_TIMEOUT = 5


class WsClient:
    """A minimal RFC 6455 client: the opening handshake, masked frames out, frames in."""

    def __init__(self, port, path="/ws", timeout=5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n" % (path, port, key)).encode())
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        assert lines[0].startswith("HTTP/1.1 101 "), lines
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        expected = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        assert headers.get("sec-websocket-accept") == expected, headers

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("the server closed the connection")
        self.buf += data

    def _read(self, size):
        while len(self.buf) < size:
            self._fill()
        data, self.buf = self.buf[:size], self.buf[size:]
        return data

    def send(self, opcode, payload=b""):
        mask = os.urandom(4)
        size = len(payload)
        if size < 126:
            header = bytes([0x80 | opcode, 0x80 | size])
        else:
            header = bytes([0x80 | opcode, 0x80 | 126]) + size.to_bytes(2, "big")
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def recv(self):
        """(opcode, payload) of the next frame from the server, which must be unmasked and final."""
        first, second = self._read(2)
        assert first & 0x80 and not second & 0x80, (first, second)
        size = second & 0x7F
        if size == 126:
            size = int.from_bytes(self._read(2), "big")
        elif size == 127:
            size = int.from_bytes(self._read(8), "big")
        return first & 0x0F, self._read(size)

    def echo(self, text):
        self.send(TEXT, text.encode())
        return self.recv()

    def closed_by_peer(self):
        """True when the server ends the TCP connection (EOF) rather than sending more."""
        try:
            return self.sock.recv(1) == b""
        except OSError:
            return True

    def close(self):
        self.sock.close()


def close_code(payload):
    return int.from_bytes(payload[:2], "big"), payload[2:].decode()


def container_events(client, cid, since, until):
    """(action, unix time, attributes) of the engine's events for one container."""
    return [(e["Action"], e["timeNano"] / 1e9, e["Actor"]["Attributes"])
            for e in client.events(since=int(since), until=int(until) + 1, decode=True,
                                   filters={"container": cid})]


def test_swap_keeps_open_websocket_on_old_container_then_closes_it_1001(app, web_images, docker_client):
    # 60 s to get healthy, not the fixtures' 10 s: python starting on a loaded 2-core CI machine.
    args = {"drain_seconds": DRAIN, "stop_timeout": STOP_TIMEOUT,
            "health": {"path": "/health", "timeout": 60, "interval": 0.2}}
    first = run_module("app_container", app.args(image="%s:v1" % WEB_REPO, **args))
    assert first["action"] == "created", first
    assert first["container"]["image"] == web_images["v1"]
    assert app.get() == (200, "web v1 hello\n")
    flag = app.nginx.upstreams / ("%s.slot-b" % app.name)
    assert not flag.exists()

    old = WsClient(app.proxy_port)
    assert old.echo("before") == (TEXT, b"web v1 echo before")
    old.send(PING, b"p")
    assert old.recv() == (PONG, b"p")

    result, started = {}, time.time()
    swap = threading.Thread(target=lambda: result.update(
        run_module("app_container", app.args(image="%s:v2" % WEB_REPO, **args))), daemon=True)
    with Probe(app.proxy_port) as probe:
        probe.wait_ok(10)
        swap.start()
        # The switch: the module creates the slot flag (the new container is on slot b).
        for dummy in range(12000):
            if flag.exists() or not swap.is_alive():
                break
            time.sleep(0.01)
        switched = time.time()
        assert flag.exists(), result
        switch_at = flag.stat().st_mtime

        # (b) A WebSocket opened after the switch reaches v2.
        new = WsClient(app.proxy_port)
        assert new.echo("new") == (TEXT, b"web v2 echo new")
        new.send(CLOSE, (1000).to_bytes(2, "big"))
        assert new.recv() == (CLOSE, (1000).to_bytes(2, "big"))
        assert new.closed_by_peer()
        new.close()

        # (a) The old WebSocket echoes v1 through the drain, (c) until the old app closes it.
        echoes, closed = [], None
        old.sock.settimeout(DRAIN + STOP_TIMEOUT + 10)
        for i in range(4 * (DRAIN + STOP_TIMEOUT + 10)):
            opcode, payload = old.echo("drain %d" % i)
            now = time.time()
            if opcode == CLOSE:
                closed = (now, payload)
                break
            assert (opcode, payload) == (TEXT, ("web v1 echo drain %d" % i).encode())
            echoes.append(now)
            time.sleep(0.25)
        assert closed, "the old WebSocket was never closed"
        closed_at, payload = closed
        assert close_code(payload) == (1001, "going away")
        # A client answers the close frame; the server then ends the connection.
        old.send(CLOSE, payload[:2])
        assert old.closed_by_peer()
        old.close()

        swap.join(120)
        assert not swap.is_alive()
        done_at = probe.ok
        probe.wait_ok(done_at + 10)
    finished = time.time()

    assert result.get("changed") is True and result["action"] == "replaced", result
    assert result["container"]["image"] == web_images["v2"]
    assert app.get() == (200, "web v2 hello\n")
    # The old WebSocket served v1 for the whole drain: echoes from the switch until near its end.
    assert echoes and echoes[0] - switched < 1.0 and echoes[-1] - switch_at >= DRAIN - 0.5, (switch_at, echoes)
    # Its close frame came after the drain, right after the old container got SIGTERM, and the app
    # then exited by itself (exit code 0), well before docker's SIGKILL at stop_timeout.
    events = container_events(docker_client, first["container"]["id"], started, finished)
    kills = [(t, a["signal"]) for action, t, a in events if action == "kill"]
    assert [sig for dummy, sig in kills] == ["15"], events
    term_at = kills[0][0]
    (exit_code,) = [a["exitCode"] for action, dummy, a in events if action == "die"]
    assert exit_code == "0", events
    assert DRAIN - 0.2 <= term_at - switch_at < DRAIN + 2.0, (switch_at, term_at)
    # The engine stamps its kill event after it has sent the signal: the app may close the WebSocket
    # (and this client see it) a little before that stamp; 0.5 ms before it was seen under load.
    assert -0.1 <= closed_at - term_at < 1.0, (term_at, closed_at)
    print("websocket swap: switch +0.00 s, SIGTERM +%.2f s, close 1001 +%.2f s, %d v1 echoes during the drain"
          % (term_at - switch_at, closed_at - switch_at, len(echoes)))
    # (d) No plain request failed; both versions answered.
    assert probe.failures == [], probe.failures[:5]
    assert probe.bodies == {"web v1 hello", "web v2 hello"}, probe.bodies


def test_sample_app_websocket_on_sigterm_and_bad_frames(tmp_path):
    """server.py alone: echo, a bad handshake, an unmasked frame; on SIGTERM a close 1001 to a client
    that never answers it, the connection dropped after CLOSE_WAIT (2 s), and exit code 0."""
    port = free_port()
    log = tmp_path / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, str(WEB_DIR / "server.py")], env=dict(os.environ, PORT=str(port)),
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        for dummy in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        version = (WEB_DIR / "VERSION").read_text().strip()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/ws")
        assert conn.getresponse().status == 400
        conn.close()

        unmasked = WsClient(port)
        unmasked.sock.sendall(bytes([0x81, 2]) + b"hi")  # a client frame must be masked
        assert unmasked.recv() == (CLOSE, (1002).to_bytes(2, "big"))
        assert unmasked.closed_by_peer()
        unmasked.close()

        silent = WsClient(port)
        long_text = "x" * 300  # a 16-bit length both ways
        assert silent.echo(long_text) == (TEXT, ("web %s echo %s" % (version, long_text)).encode())
        proc.send_signal(signal.SIGTERM)
        term_at = time.time()
        opcode, payload = silent.recv()
        assert opcode == CLOSE and close_code(payload) == (1001, "going away")
        assert time.time() - term_at < 1.0
        # This client never answers the close frame: the server drops the connection after CLOSE_WAIT.
        assert silent.closed_by_peer()
        assert 1.5 <= time.time() - term_at < 4.0
        silent.close()
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert "SIGTERM" in log.read_text()
