"""A bounded HTTP load for the benchmarks: what a client that does not retry sees.

Half of the workers reuse one keep-alive connection, the other half open a new
connection for every request; each worker sends at a fixed pace so that the
workers together aim at --rate requests per second. Every request is recorded
(start, latency, status, version served, connection mode, error) and the run
is summarised the way docs/benchmarks.md reports it: failures per connection
mode, the longest gap between two successful responses, the window during
which two versions answered, and the version served at the end.

Optional long-request lanes (--slow-workers K, --slow-seconds S): K more
threads, each sending GET <url path>/slow?s=S (the sample app's long request)
one after the other, each on a new connection; worker i starts i*S/K seconds
late so that some are always in flight. They are recorded with mode "slow" and
summarised apart (slow_*), so they leave the fast lanes' figures alone.

Worker processes (--procs P, default one per core, at most --workers; 1: all
threads in this process): the lanes are cut into P consecutive shares (so each
process has keep-alive and fresh lanes alike, the slow lanes cut the same way),
each share run as threads by this file started again with --child. The
parent starts them all, then sends each the same t0 (time.monotonic(): one
clock for all processes on Linux), so record starts and the deploy window of
bench/deploy_under_load.py stay on one time line; at the end each process
sends its records (JSON lines) and the parent merges them, sorted by start,
into the same records, --out file and summary as with threads only. One
Python process at 400 requests/s is far from the GIL's limit (about 2500
requests/s against a local nginx on 2 cores); the processes raise that
ceiling (about 3500) and keep the load's pace off the GIL of a busy parent.

Traffic goes only where --url points; the bench scripts point it at 127.0.0.1.
The run is bounded by --duration and by --max-requests (slow requests count
into the cap; one in flight at the end is waited for, not cut off); with worker
processes, each has a share of the cap in proportion to the requests its lanes
are expected to send, so all together never exceed it. The run ends early
once every lane has ended (the cap reached). Ctrl-C: the workers ignore
SIGINT, the parent's run() ends them (a parent that calls stop() itself still
gets their records); a worker whose stdin closes (the parent gone, even
killed) stops; a worker that dies is an error (RuntimeError) at stop(), not a
silently smaller count.

    python bench/load.py --url http://127.0.0.1:8001/ --host web.lab.test \
        --rate 400 --duration 30 --slow-workers 2 --out /tmp/load.jsonl
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from urllib.parse import urlsplit

KEEPALIVE = "keepalive"
FRESH = "fresh"
SLOW = "slow"
# How many distinct error strings a summary lists.
SLOW_ERRORS_SHOWN = 5
# A worker process is this file run with this one argument (see child_main).
CHILD_FLAG = "--child"
# Seconds a worker process has to start and say it is ready.
CHILD_START_TIMEOUT = 30.0


class Record(object):
    __slots__ = ("start", "latency", "status", "version", "mode", "error")

    def __init__(self, start, latency, status, version, mode, error):
        self.start, self.latency, self.status = start, latency, status
        self.version, self.mode, self.error = version, mode, error

    @property
    def end(self):
        return self.start + self.latency

    @property
    def failed(self):
        # No response at all, or a server error: both are a failed request.
        return self.error is not None or self.status is None or self.status >= 500

    def as_dict(self):
        return {name: getattr(self, name) for name in self.__slots__}


def default_procs(workers, procs=None):
    """The worker processes for `workers` fast lanes: `procs` (when given) or one per core, at most one per lane."""
    return max(1, min(int(workers), os.cpu_count() or 1 if procs is None else int(procs)))


def split(count, parts):
    """range(count) cut into `parts` consecutive ranges whose sizes differ by at most one."""
    size, extra = divmod(count, parts)
    bounds = [0]
    for part in range(parts):
        bounds.append(bounds[-1] + size + (1 if part < extra else 0))
    return [range(a, b) for a, b in zip(bounds, bounds[1:])]


def split_cap(cap, weights):
    """Integer shares of `cap` in proportion to `weights` that add up to `cap` (largest remainders)."""
    total = float(sum(weights))
    if not total:
        weights, total = [1] * len(weights), float(len(weights))
    exact = [cap * w / total for w in weights]
    shares = [int(e) for e in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: exact[i] - shares[i], reverse=True)
    for i in by_remainder[:cap - sum(shares)]:
        shares[i] += 1
    return shares


def version_of(body):
    """The version a sample app answers with: its first line, stripped."""
    text = body.decode("utf-8", "replace").strip()
    return text.splitlines()[0] if text else ""


class Load(object):
    """Runs `workers` threads against one URL until stop(), the duration or the request cap.

    With procs > 1 the threads are spread over that many worker processes (this
    file run with CHILD_FLAG); records come back on this process's clock (see start).
    """

    def __init__(self, url, host=None, rate=400.0, workers=8, duration=60.0,
                 max_requests=None, timeout=10.0, slow_workers=0, slow_seconds=3.0, procs=None):
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError("load: --url must be http://HOST:PORT/PATH, got %r" % url)
        self.address = (parts.hostname, parts.port or 80)
        self.path = (parts.path or "/") + ("?" + parts.query if parts.query else "")
        self.host_header = host or parts.netloc
        self.rate = float(rate)
        self.workers = max(1, int(workers))
        self.duration = float(duration)
        self.max_requests = int(max_requests if max_requests else self.rate * self.duration * 1.1 + 100)
        self.timeout = float(timeout)
        self.slow_workers = max(0, int(slow_workers))
        self.slow_seconds = float(slow_seconds)
        if self.slow_workers and self.slow_seconds <= 0:
            raise ValueError("load: --slow-seconds must be > 0, got %r" % slow_seconds)
        self.slow_path = "%s/slow?s=%g" % ((parts.path or "/").rstrip("/"), self.slow_seconds)
        self.url = url
        self.procs = default_procs(self.workers, procs)
        # The lanes this process runs as threads (global indices: they set the mode and the stagger).
        self.lanes = (range(self.workers), range(self.slow_workers))
        self.records = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = []
        self._sent = 0
        self._children = []
        self.t0 = None

    # -- running ---------------------------------------------------------
    def start(self):
        """Start the lanes; t0 (time.monotonic()) is the origin of every record's start.

        With worker processes: they are started first, and each is sent t0 once all are
        ready, so that none is late. CLOCK_MONOTONIC is one clock for all the processes of
        a machine (Linux), so their records need no conversion.
        """
        if self.procs > 1:
            self._spawn()
        self.t0 = time.monotonic()
        if self._children:
            for child in self._children:
                self._tell(child, "go %r\n" % self.t0)
        else:
            self._start_threads()
        return self

    def _start_threads(self):
        fast, slow = self.lanes
        for index in fast:
            mode = KEEPALIVE if index % 2 == 0 else FRESH
            thread = threading.Thread(target=self._worker, args=(index, mode), daemon=True)
            self._threads.append(thread)
            thread.start()
        for index in slow:
            thread = threading.Thread(target=self._slow_worker, args=(index,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def stop(self):
        self._stop.set()
        # A slow request in flight is waited for: cutting it off would count as a failure.
        for thread in self._threads:
            thread.join(timeout=self.join_timeout())
        if self._children:
            self._collect()
        return self

    def join_timeout(self):
        return self.timeout + self.slow_seconds + 5

    def run(self):
        """Start, wait for the duration, stop (on an interrupt: end the worker processes)."""
        try:
            self.start()
            self.wait(self.t0 + self.duration)
        except BaseException:
            self.terminate()
            raise
        return self.stop()

    def wait(self, deadline):
        """Until the deadline (time.monotonic()), stop(), or the end of every lane (the request cap)."""
        pending = [child.stdout for child in self._children]
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if self._children:
                # A worker process writes its records (or exits) when its lanes have ended.
                ready = select.select(pending, [], [], min(left, 0.1))[0]
                pending = [pipe for pipe in pending if pipe not in ready]
                if not pending:
                    return
            elif any(thread.is_alive() for thread in self._threads):
                self._stop.wait(min(left, 0.1))
            else:
                return

    # -- worker processes ------------------------------------------------
    def _spawn(self):
        """Start self.procs worker processes, each with its share of the lanes and of the cap."""
        fast, slow = split(self.workers, self.procs), split(self.slow_workers, self.procs)
        weights = [len(f) * self.rate / self.workers + len(s) / self.slow_seconds if self.slow_workers else len(f)
                   for f, s in zip(fast, slow)]
        caps = split_cap(self.max_requests, weights)
        try:
            for f, s, cap in zip(fast, slow, caps):
                config = {"url": self.url, "host": self.host_header, "rate": self.rate, "workers": self.workers,
                          "duration": self.duration, "max_requests": cap, "timeout": self.timeout,
                          "slow_workers": self.slow_workers, "slow_seconds": self.slow_seconds,
                          "fast": [f.start, f.stop], "slow": [s.start, s.stop]}
                # Unbuffered pipes: the "ready" line is read alone, the rest by communicate().
                child = subprocess.Popen([sys.executable, os.path.abspath(__file__), CHILD_FLAG], bufsize=0,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
                self._children.append(child)
                self._tell(child, json.dumps(config) + "\n")
            deadline = time.monotonic() + CHILD_START_TIMEOUT
            for child in self._children:
                ready = select.select([child.stdout], [], [], max(0.0, deadline - time.monotonic()))[0]
                line = child.stdout.readline() if ready else b""
                if line != b"ready\n":
                    raise RuntimeError("load: worker process %d did not start (exit code %s)"
                                       % (child.pid, child.poll()))
        except BaseException:
            self.terminate()
            raise

    @staticmethod
    def _tell(child, line):
        try:
            child.stdin.write(line.encode())
        except OSError:
            pass  # gone: _collect says so

    def _collect(self):
        """Stop the worker processes and merge their records into self.records."""
        for child in self._children:
            self._tell(child, "stop\n")
        lost = []
        try:
            for child in self._children:
                out = child.communicate(timeout=self.join_timeout() + 10)[0]
                lines = out.decode().splitlines()
                if child.returncode != 0 or not lines or lines[-1] != "end":
                    lost.append("%d (exit code %s)" % (child.pid, child.returncode))
                    continue
                self.records.extend(Record(*json.loads(line)) for line in lines[:-1])
        finally:
            self.terminate()
        self.records.sort(key=lambda r: r.start)
        if lost:
            raise RuntimeError("load: worker process %s ended without its records" % ", ".join(lost))

    def terminate(self):
        """End the worker processes that are still running (idempotent)."""
        for child in self._children:
            if child.poll() is None:
                child.kill()
            child.wait()
            for pipe in (child.stdin, child.stdout):
                try:
                    pipe.close()
                except OSError:
                    pass

    def _take_slot(self):
        with self._lock:
            if self._sent >= self.max_requests:
                return False
            self._sent += 1
            return True

    def _connection(self):
        return http.client.HTTPConnection(self.address[0], self.address[1], timeout=self.timeout)

    def _worker(self, index, mode):
        interval = self.workers / self.rate
        # Spread the workers over one interval so they do not fire together.
        next_at = self.t0 + interval * index / self.workers
        deadline = self.t0 + self.duration
        conn = None
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= deadline:
                break
            if next_at > now:
                self._stop.wait(next_at - now)
                continue
            # A late worker does not burst to catch up: pace from now on.
            next_at = max(next_at + interval, now)
            if not self._take_slot():
                break
            if conn is None or mode == FRESH:
                conn = self._connection()
            record, reusable = self._request(conn, mode)
            with self._lock:
                self.records.append(record)
            if mode == FRESH or not reusable:
                conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def _slow_worker(self, index):
        """Long requests one after the other, each on a new connection, until the deadline or stop()."""
        deadline = self.t0 + self.duration
        # Staggered: worker i begins i*S/K seconds in, so that some request is always in flight.
        if self._stop.wait(index * self.slow_seconds / self.slow_workers):
            return
        while not self._stop.is_set() and time.monotonic() < deadline and self._take_slot():
            conn = http.client.HTTPConnection(self.address[0], self.address[1],
                                              timeout=self.timeout + self.slow_seconds)
            try:
                record = self._request(conn, SLOW, self.slow_path)[0]
            finally:
                conn.close()
            with self._lock:
                self.records.append(record)

    def _request(self, conn, mode, path=None):
        begin = time.monotonic()
        headers = {"Host": self.host_header}
        if mode != KEEPALIVE:
            headers["Connection"] = "close"
        try:
            conn.request("GET", path or self.path, headers=headers)
            response = conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as exc:
            latency = time.monotonic() - begin
            return Record(begin - self.t0, latency, None, None, mode, type(exc).__name__ + ": " + str(exc)), False
        latency = time.monotonic() - begin
        reusable = not response.will_close
        return Record(begin - self.t0, latency, response.status, version_of(body), mode, None), reusable

    # -- results ---------------------------------------------------------
    def summary(self, switch_at=None, is_old=None):
        return summarise(self.records, switch_at=switch_at, is_old=is_old)


def summarise(records, switch_at=None, is_old=None):
    """The figures docs/benchmarks.md reports, from a list of Records.

    The keep-alive and fresh lanes make the request, failure, gap, version and
    latency figures; the slow lanes only the slow_* ones (see slow_figures).
    """
    slow = [r for r in records if r.mode == SLOW]
    records = sorted((r for r in records if r.mode != SLOW), key=lambda r: r.start)
    ok = [r for r in records if not r.failed]
    failed = [r for r in records if r.failed]
    span = (max(r.end for r in records) - min(r.start for r in records)) if records else 0.0
    ends = sorted(r.end for r in ok)
    longest_gap = max((b - a for a, b in zip(ends, ends[1:])), default=0.0)
    versions = {}
    for r in ok:
        first, last = versions.get(r.version, (r.end, r.end))
        versions[r.version] = (min(first, r.end), max(last, r.end))
    final = max(ok, key=lambda r: r.end).version if ok else None
    mixed = 0.0
    if final is not None and len(versions) > 1:
        new_first = versions[final][0]
        old_last = max(last for version, (first, last) in versions.items() if version != final)
        mixed = max(0.0, old_last - new_first)
    latencies = sorted(r.latency for r in ok)

    def pct(p):
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else None

    result = {
        "requests": len(records),
        "ok": len(ok),
        "failed": len(failed),
        "failed_keepalive": sum(1 for r in failed if r.mode == KEEPALIVE),
        "failed_fresh": sum(1 for r in failed if r.mode == FRESH),
        "status_5xx": sum(1 for r in failed if r.status is not None),
        "rate": round(len(records) / span, 1) if span else 0.0,
        "longest_gap_s": round(longest_gap, 4),
        "mixed_window_s": round(mixed, 4),
        "versions": sorted(versions),
        "final_version": final,
        "latency_p50_s": pct(0.50),
        "latency_p99_s": pct(0.99),
        "errors": sorted({r.error or "HTTP %s" % r.status for r in failed})[:10],
    }
    if switch_at is not None:
        result["switch_at_s"] = switch_at
    result.update(slow_figures(slow, switch_at, is_old))
    return result


def slow_figures(slow, switch_at=None, is_old=None):
    """The long requests' figures.

    slow_ok counts answers with status 200 (what a long request must get);
    slow_failed the failures as for any request (no response or a 5xx).
    slow_in_flight_at_switch: the requests that started before switch_at and
    ended after it with a 200 from the old version (the ones drained across the
    switch); None when switch_at is not known. is_old(version) says what the old
    version is; by default, any version other than the last one the slow lanes got.
    slow_in_flight_failed: failed requests that started before switch_at and
    ended (got their error) after it.
    """
    ok = [r for r in slow if r.status == 200 and r.error is None]
    answered = set(ok)
    failed = [r for r in slow if r.failed]
    if is_old is None and ok:
        last = max(ok, key=lambda r: r.end).version

        def is_old(version):
            return version != last

    across = [r for r in slow if switch_at is not None and r.start < switch_at < r.end]
    return {
        "slow_requests": len(slow),
        "slow_ok": len(ok),
        "slow_failed": len(failed),
        "slow_in_flight_at_switch": None if switch_at is None else sum(
            1 for r in across if r in answered and is_old(r.version)),
        "slow_in_flight_failed": None if switch_at is None else sum(1 for r in across if r.failed),
        "slow_latency_max_s": round(max(r.latency for r in ok), 4) if ok else None,
        # Failures and any answer other than 200 (a 404: the app has no slow endpoint).
        "slow_errors": sorted({r.error or "HTTP %s" % r.status for r in slow if r not in answered})[:SLOW_ERRORS_SHOWN],
    }


def child_main(stdin, stdout):
    """A worker process: its configuration, "ready", then "go T0"; until "stop" (or the end of
    stdin: the parent is gone) or the deadline; then one JSON list per record and "end"."""
    # Ctrl-C reaches the whole process group: the parent decides, and collects the records.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    config = json.loads(stdin.readline())
    fast, slow = range(*config.pop("fast")), range(*config.pop("slow"))
    cap = config.pop("max_requests")
    load = Load(procs=1, **config)
    # Set apart: Load takes a cap of 0 for "the default", a share may be 0.
    load.lanes, load.max_requests = (fast, slow), cap
    stdout.write(b"ready\n")
    stdout.flush()
    line = stdin.readline().split()
    if line[:1] != [b"go"]:
        return 1
    load.t0 = float(line[1])
    load._start_threads()

    def watch():
        stdin.readline()
        load._stop.set()

    threading.Thread(target=watch, daemon=True).start()
    load.wait(load.t0 + load.duration)
    load.stop()
    try:
        stdout.write(b"".join(json.dumps([getattr(r, name) for name in Record.__slots__]).encode() + b"\n"
                              for r in load.records) + b"end\n")
        stdout.flush()
    except BrokenPipeError:
        return 1
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="http://127.0.0.1:PORT/PATH")
    parser.add_argument("--host", help="Host header (the app's server_name)")
    parser.add_argument("--rate", type=float, default=400.0, help="requests per second, all workers together")
    parser.add_argument("--workers", type=int, default=8, help="half keep-alive, half a new connection per request")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds (the run's upper bound)")
    parser.add_argument("--max-requests", type=int, help="request cap (default: rate x duration x 1.1)")
    parser.add_argument("--slow-workers", type=int, default=0,
                        help="long-request lanes: each sends GET <url path>/slow?s=S one after the other")
    parser.add_argument("--slow-seconds", type=float, default=3.0, help="S: how long each long request asks to take")
    parser.add_argument("--procs", type=int,
                        help="worker processes sharing the workers (default: one per core, at most --workers; 1: threads only)")
    parser.add_argument("--out", help="write every request as a JSON line here")
    args = parser.parse_args(argv)
    try:
        load = Load(args.url, host=args.host, rate=args.rate, workers=args.workers,
                    duration=args.duration, max_requests=args.max_requests,
                    slow_workers=args.slow_workers, slow_seconds=args.slow_seconds, procs=args.procs).run()
    except ValueError as exc:
        parser.error(str(exc))
    if args.out:
        with open(args.out, "w") as handle:
            for record in load.records:
                handle.write(json.dumps(record.as_dict()) + "\n")
    json.dump(load.summary(), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == [CHILD_FLAG]:
        # Unbuffered stdin: the watching thread may still be reading it at exit.
        sys.exit(child_main(sys.stdin.buffer.raw, sys.stdout.buffer))
    sys.exit(main())
