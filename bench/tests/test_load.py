"""bench/load.py against a real HTTP server on 127.0.0.1: it counts what a client sees."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from .scripts import load_script

load = load_script("load.py", "bench_load")


class Server(object):
    """Answers its current version over HTTP/1.1 keep-alive; can be told to reset connections.

    /slow?s=N answers "web <version> slow <N>s" after N seconds, as the web sample app does.
    """

    def __init__(self):
        self.version = "v1"
        self.reset = False
        # Answer this process's time.monotonic() at the request instead of the version.
        self.clock = False
        self.slow_paths = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                if outer.reset:
                    # Close without a response, as a worker going away does.
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    self.close_connection = True
                    return
                url = urlsplit(self.path)
                if url.path.endswith("/slow"):
                    seconds = float(parse_qs(url.query)["s"][0])
                    outer.slow_paths.append(self.path)
                    time.sleep(seconds)
                    data = ("web %s slow %gs\n" % (outer.version, seconds)).encode()
                elif outer.clock:
                    data = ("%r\n" % time.monotonic()).encode()
                else:
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


def _records(*rows):
    return [load.Record(*row) for row in rows]


def test_slow_requests_are_summarised_apart_from_the_fast_lanes():
    records = _records(
        (0.0, 0.1, 200, "web a", load.KEEPALIVE, None),
        (2.0, 0.1, 200, "web b", load.FRESH, None),
        # Long requests: one ends before the switch, two span it (one old, one failed), one is new.
        (0.0, 1.0, 200, "web a slow 3s", load.SLOW, None),
        (0.5, 3.0, 200, "web a slow 3s", load.SLOW, None),
        (1.0, 2.0, None, None, load.SLOW, "RemoteDisconnected: closed"),
        (2.5, 3.0, 200, "web b slow 3s", load.SLOW, None),
        (2.6, 3.0, 502, "<html>", load.SLOW, None),
        (2.7, 0.1, 404, "not found", load.SLOW, None),
    )
    summary = load.summarise(records, switch_at=2.1, is_old=lambda v: v.split()[1] == "a")
    # The fast lanes' figures see only the fast lanes.
    assert summary["requests"] == 2 and summary["failed"] == 0
    assert summary["failed_keepalive"] == 0 and summary["failed_fresh"] == 0
    assert summary["versions"] == ["web a", "web b"] and summary["final_version"] == "web b"
    assert summary["longest_gap_s"] == pytest.approx(2.0)
    # Failed: no response or a 5xx; ok: a 200 (the 404 is neither).
    assert summary["slow_requests"] == 6
    assert summary["slow_ok"] == 3
    assert summary["slow_failed"] == 2
    assert summary["slow_in_flight_at_switch"] == 1
    assert summary["slow_in_flight_failed"] == 1
    assert summary["slow_latency_max_s"] == pytest.approx(3.0)
    assert summary["slow_errors"] == ["HTTP 404", "HTTP 502", "RemoteDisconnected: closed"]


def test_slow_in_flight_needs_a_switch_time_and_defaults_old_to_not_the_last():
    records = _records((0.0, 3.0, 200, "web a slow 3s", load.SLOW, None),
                       (0.5, 3.0, 200, "web b slow 3s", load.SLOW, None),
                       (1.5, 3.0, 200, "web b slow 3s", load.SLOW, None))
    summary = load.summarise(records)
    assert summary["slow_in_flight_at_switch"] is None and summary["slow_in_flight_failed"] is None
    assert summary["requests"] == 0 and summary["failed"] == 0 and summary["final_version"] is None
    # Without is_old, the old version is any but the last one the slow lanes got ("web b ...").
    assert load.summarise(records, switch_at=1.0)["slow_in_flight_at_switch"] == 1
    assert load.summarise(records, switch_at=1.0, is_old=lambda v: True)["slow_in_flight_at_switch"] == 2
    # Without slow lanes: zeros, and no latency.
    empty = load.summarise(_records((0.0, 0.1, 200, "web a", load.FRESH, None)), switch_at=0.5)
    assert (empty["slow_requests"], empty["slow_ok"], empty["slow_in_flight_at_switch"]) == (0, 0, 0)
    assert empty["slow_latency_max_s"] is None and empty["slow_errors"] == []


def test_slow_lanes_against_a_server(server):
    run = load.Load(server.url + "app/", rate=100, workers=2, duration=2.0, slow_workers=2, slow_seconds=0.5)
    run.start()
    threading.Timer(1.0, lambda: setattr(server, "version", "v2")).start()
    run._stop.wait(run.duration)
    summary = run.stop().summary()
    slow = [r for r in run.records if r.mode == load.SLOW]
    fast = [r for r in run.records if r.mode != load.SLOW]
    # Back to back for 2 s, 0.5 s each, two lanes (the second 0.25 s late): about 7, all answered.
    assert 5 <= len(slow) <= 9, slow
    assert set(server.slow_paths) == {"/app/slow?s=0.5"}
    assert all(r.status == 200 and 0.5 <= r.latency < 2.0 for r in slow)
    assert {r.version for r in slow} <= {"web v1 slow 0.5s", "web v2 slow 0.5s"}
    assert summary["slow_requests"] == len(slow) == summary["slow_ok"]
    assert summary["slow_failed"] == 0
    # They count into none of the fast lanes' figures.
    assert summary["requests"] == len(fast)
    assert summary["versions"] == ["web v1", "web v2"]
    assert summary["failed_keepalive"] == summary["failed_fresh"] == 0


def test_a_slow_lane_failure_is_not_a_fast_lane_failure(server):
    run = load.Load(server.url, rate=50, workers=2, duration=1.5, slow_workers=1, slow_seconds=0.3)
    run.start()
    # Resets for all requests from 0.5 s on: the slow lane fails as the fast ones do, and apart.
    threading.Timer(0.5, lambda: setattr(server, "reset", True)).start()
    run._stop.wait(run.duration)
    summary = run.stop().summary()
    assert summary["slow_failed"] > 0, summary
    assert summary["failed"] == summary["failed_keepalive"] + summary["failed_fresh"]
    assert summary["failed"] == sum(1 for r in run.records if r.mode != load.SLOW and r.failed)
    assert any("RemoteDisconnected" in e or "Reset" in e for e in summary["slow_errors"]), summary


# -- worker processes --------------------------------------------------------

@pytest.mark.parametrize("count, parts, sizes", [(8, 2, [4, 4]), (5, 2, [3, 2]), (2, 2, [1, 1]), (1, 2, [1, 0]),
                                                 (0, 2, [0, 0])])
def test_split_cuts_consecutive_lanes(count, parts, sizes):
    ranges = load.split(count, parts)
    assert [len(r) for r in ranges] == sizes
    # Consecutive: each process gets keep-alive and fresh lanes alike (even indices are keep-alive).
    assert [i for r in ranges for i in r] == list(range(count))


@pytest.mark.parametrize("cap, weights, shares", [(20, [1, 1], [10, 10]), (7, [3, 1], [5, 2]), (3, [1, 1, 1, 1], [1, 1, 1, 0]),
                                                  (10, [0, 0], [5, 5]), (0, [2, 1], [0, 0])])
def test_split_cap_adds_up_to_the_cap(cap, weights, shares):
    assert load.split_cap(cap, weights) == shares
    assert sum(shares) == cap


def test_default_procs_is_a_core_each_at_most_one_per_worker():
    assert load.default_procs(1) == 1
    assert load.default_procs(64) == (os.cpu_count() or 1)
    assert load.Load("http://127.0.0.1:1/", workers=2, procs=8).procs == 2
    assert load.Load("http://127.0.0.1:1/", workers=4, procs=0).procs == 1


def test_processes_share_the_cap_and_end_when_it_is_reached(server):
    begin = time.monotonic()
    run = load.Load(server.url, rate=1000, workers=4, duration=8, max_requests=301, procs=2,
                    slow_workers=1, slow_seconds=0.2).run()
    elapsed = time.monotonic() - begin
    summary = run.summary()
    assert len(run._children) == 2 and [c.returncode for c in run._children] == [0, 0]
    # The cap holds across the processes, slow requests included, and the run ends there, not at 8 s.
    assert summary["requests"] + summary["slow_requests"] == 301, summary
    assert summary["failed"] == 0 and summary["slow_failed"] == 0, summary
    assert summary["slow_requests"] >= 1
    assert elapsed < 4, elapsed
    assert {r.mode for r in run.records} == {load.KEEPALIVE, load.FRESH, load.SLOW}
    assert [r.start for r in run.records] == sorted(r.start for r in run.records)
    # A share of 0: that process sends nothing.
    assert load.Load(server.url, rate=100, workers=2, duration=2, max_requests=1, procs=2).run().summary()["requests"] == 1


def test_records_from_the_processes_are_on_the_parents_clock(server):
    server.clock = True
    run = load.Load(server.url, rate=200, workers=4, duration=1.0, procs=2).run()
    assert len(run._children) == 2 and run.summary()["failed"] == 0
    assert len(run.records) >= 100
    for r in run.records:
        # The server (this process) answered while the request was in flight on the parent's clock.
        served = float(r.version)
        assert run.t0 + r.start <= served <= run.t0 + r.end, (r.as_dict(), run.t0)
    # The paces of the two processes interleave as one: no process's lanes start late.
    assert min(r.start for r in run.records) < 0.05


def _alive(pid):
    """A process that exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _gone(pids, seconds=5.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(_alive(pid) for pid in pids):
            return True
        time.sleep(0.05)
    return False


def test_a_crashed_process_is_an_error_and_the_others_are_ended(server):
    run = load.Load(server.url, rate=200, workers=4, duration=5, procs=2).start()
    time.sleep(0.3)
    pids = [child.pid for child in run._children]
    os.kill(pids[0], signal.SIGKILL)
    with pytest.raises(RuntimeError, match="worker process %d .*without its records" % pids[0]):
        run.stop()
    assert _gone(pids)


def _children_of(pid):
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


@pytest.mark.parametrize("how", ["interrupt", "kill"])
def test_no_worker_process_outlives_the_parent(server, how):
    """Ctrl-C (SIGINT to the whole process group) or a SIGKILL of the parent: the workers end too."""
    parent = subprocess.Popen([sys.executable, load.__file__, "--url", server.url, "--rate", "100", "--workers", "2",
                               "--procs", "2", "--duration", "20"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 5
        children = []
        while len(children) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
            children = _children_of(parent.pid)
        assert len(children) == 2
        time.sleep(0.3)
        if how == "interrupt":
            os.killpg(parent.pid, signal.SIGINT)
        else:
            parent.kill()
        assert parent.wait(timeout=5) != 0
        assert _gone(children)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
