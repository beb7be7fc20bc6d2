"""bench/load.py against a real HTTP server on 127.0.0.1: it counts what a client sees."""

from __future__ import annotations

import importlib.util
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

SPEC = importlib.util.spec_from_file_location("bench_load", Path(__file__).resolve().parents[2] / "bench" / "load.py")
load = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(load)


class Server(object):
    """Answers its current version over HTTP/1.1 keep-alive; can be told to reset connections."""

    def __init__(self):
        self.version = "v1"
        self.reset = False
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                if outer.reset:
                    # Close without a response, as a worker going away does.
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    self.close_connection = True
                    return
                data = ("web %s\n" % outer.version).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = "http://127.0.0.1:%d/" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = Server()
    yield srv
    srv.close()


def test_counts_versions_and_reaches_the_rate(server):
    run = load.Load(server.url, rate=200, workers=4, duration=3.0)
    run.start()
    threading.Timer(1.5, lambda: setattr(server, "version", "v2")).start()
    run._stop.wait(run.duration)
    summary = run.stop().summary()
    assert summary["failed"] == 0, summary
    assert summary["versions"] == ["web v1", "web v2"]
    assert summary["final_version"] == "web v2"
    # Bounded by the pace: about 600 requests in 3 s, never more than the cap.
    assert 300 <= summary["requests"] <= run.max_requests
    modes = {r.mode for r in run.records}
    assert modes == {load.KEEPALIVE, load.FRESH}


def test_counts_failures_per_connection_mode(server):
    run = load.Load(server.url, rate=100, workers=4, duration=2.5)
    run.start()
    threading.Timer(1.0, lambda: setattr(server, "reset", True)).start()
    threading.Timer(1.5, lambda: setattr(server, "reset", False)).start()
    run._stop.wait(run.duration)
    summary = run.stop().summary()
    assert summary["failed_keepalive"] > 0 and summary["failed_fresh"] > 0, summary
    assert summary["failed"] == summary["failed_keepalive"] + summary["failed_fresh"]
    # About half a second without a successful response.
    assert 0.3 <= summary["longest_gap_s"] <= 1.5, summary
    assert summary["final_version"] == "web v1"


def test_refused_connections_fail_and_the_request_cap_holds():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    run = load.Load("http://127.0.0.1:%d/" % port, rate=50, workers=2, duration=5, max_requests=20).run()
    summary = run.summary()
    assert summary["requests"] == 20
    assert summary["ok"] == 0 and summary["failed"] == 20
    assert any("ConnectionRefused" in e for e in summary["errors"])


def test_mixed_window_is_the_overlap_of_versions():
    rec = load.Record
    records = [rec(0.0, 0.1, 200, "a", "fresh", None), rec(1.0, 0.1, 200, "b", "fresh", None),
               rec(1.2, 0.1, 200, "a", "keepalive", None), rec(2.0, 0.1, 200, "b", "fresh", None)]
    summary = load.summarise(records)
    assert summary["final_version"] == "b"
    assert summary["mixed_window_s"] == pytest.approx(0.2)
    assert summary["longest_gap_s"] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        load.Load("https://127.0.0.1/")
