"""A bounded HTTP load for the benchmarks: what a client that does not retry sees.

Half of the workers reuse one keep-alive connection, the other half open a new
connection for every request; each worker sends at a fixed pace so that the
workers together aim at --rate requests per second. Every request is recorded
(start, latency, status, version served, connection mode, error) and the run
is summarised the way docs/benchmarks.md reports it: failures per connection
mode, the longest gap between two successful responses, the window during
which two versions answered, and the version served at the end.

Traffic goes only where --url points; the bench scripts point it at 127.0.0.1.
The run is bounded by --duration and by --max-requests.

    python bench/load.py --url http://127.0.0.1:8001/ --host web.lab.test \
        --rate 400 --duration 30 --out /tmp/load.jsonl
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import threading
import time
from urllib.parse import urlsplit

KEEPALIVE = "keepalive"
FRESH = "fresh"


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


def version_of(body):
    """The version a sample app answers with: its first line, stripped."""
    text = body.decode("utf-8", "replace").strip()
    return text.splitlines()[0] if text else ""


class Load(object):
    """Runs `workers` threads against one URL until stop(), the duration or the request cap."""

    def __init__(self, url, host=None, rate=400.0, workers=8, duration=60.0,
                 max_requests=None, timeout=10.0):
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
        self.records = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = []
        self._sent = 0
        self.t0 = None

    # -- running ---------------------------------------------------------
    def start(self):
        self.t0 = time.monotonic()
        for index in range(self.workers):
            mode = KEEPALIVE if index % 2 == 0 else FRESH
            thread = threading.Thread(target=self._worker, args=(index, mode), daemon=True)
            self._threads.append(thread)
            thread.start()
        return self

    def stop(self):
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.timeout + 5)
        return self

    def run(self):
        """Start, wait for the duration, stop."""
        self.start()
        self._stop.wait(self.duration)
        return self.stop()

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
        next_at = time.monotonic() + interval * index / self.workers
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

    def _request(self, conn, mode):
        begin = time.monotonic()
        headers = {"Host": self.host_header}
        if mode == FRESH:
            headers["Connection"] = "close"
        try:
            conn.request("GET", self.path, headers=headers)
            response = conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as exc:
            latency = time.monotonic() - begin
            return Record(begin - self.t0, latency, None, None, mode, type(exc).__name__ + ": " + str(exc)), False
        latency = time.monotonic() - begin
        reusable = not response.will_close
        return Record(begin - self.t0, latency, response.status, version_of(body), mode, None), reusable

    # -- results ---------------------------------------------------------
    def summary(self, switch_at=None):
        return summarise(self.records, switch_at=switch_at)


def summarise(records, switch_at=None):
    """The figures docs/benchmarks.md reports, from a list of Records."""
    records = sorted(records, key=lambda r: r.start)
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
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="http://127.0.0.1:PORT/PATH")
    parser.add_argument("--host", help="Host header (the app's server_name)")
    parser.add_argument("--rate", type=float, default=400.0, help="requests per second, all workers together")
    parser.add_argument("--workers", type=int, default=8, help="half keep-alive, half a new connection per request")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds (the run's upper bound)")
    parser.add_argument("--max-requests", type=int, help="request cap (default: rate x duration x 1.1)")
    parser.add_argument("--out", help="write every request as a JSON line here")
    args = parser.parse_args(argv)
    try:
        load = Load(args.url, host=args.host, rate=args.rate, workers=args.workers,
                    duration=args.duration, max_requests=args.max_requests).run()
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
    sys.exit(main())
