"""Bounded HTTP probes through a lab VM's nginx: GETs in a thread until stopped, at most N requests."""

from __future__ import annotations

import http.client
import threading
import time

from lab_support import HTTP_PORTS


class Probe(threading.Thread):
    """Probe one app through one VM's nginx at about `rate` requests per second.

    ``keepalive``: every request on one kept-alive connection (opened again
    only after a failure), as browsers and client pools do; else a new
    connection per request. Nothing is retried: a failure is what a client
    that does not retry sees. ``first_seen`` maps each body to the time it
    was first answered.
    """

    def __init__(self, vm, app, rate=20, max_seconds=900, keepalive=False, path="/"):
        super().__init__(daemon=True)
        self.vm, self.app, self.rate, self.keepalive, self.path = vm, app, rate, keepalive, path
        self.max_requests = int(rate * max_seconds)
        self.deadline = time.monotonic() + max_seconds
        self.ok = 0
        self.failures = []
        self.bodies = set()
        self.first_seen = {}
        self._stop_event = threading.Event()

    def run(self):
        sent = 0
        conn = None
        while not self._stop_event.is_set() and sent < self.max_requests and time.monotonic() < self.deadline:
            sent += 1
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", HTTP_PORTS[self.vm], timeout=5)
            try:
                conn.request("GET", self.path, headers={"Host": "%s.lab.test" % self.app})
                resp = conn.getresponse()
                status, body = resp.status, resp.read().decode(errors="replace")
                if resp.will_close or not self.keepalive:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as exc:
                self.failures.append(("keep-alive " if self.keepalive else "") + repr(exc))
                conn.close()
                conn = None
            else:
                if status == 200:
                    self.ok += 1
                    self.bodies.add(body.strip())
                    self.first_seen.setdefault(body.strip(), time.monotonic())
                else:
                    self.failures.append("HTTP %s: %s" % (status, body[:80]))
            time.sleep(1.0 / self.rate)
        if conn is not None:
            conn.close()

    def stop(self):
        self._stop_event.set()
        self.join(timeout=30)
        return self


class SlowProbe(threading.Thread):
    """Long requests (/slow?s=N of the web sample app) one after the other, each recorded.

    ``done``: (start, end, status, body) per request, monotonic times.
    """

    def __init__(self, vm, seconds=3, max_requests=300, max_seconds=900, delay=0.0):
        super().__init__(daemon=True)
        self.vm, self.seconds, self.max_requests, self.delay = vm, seconds, max_requests, delay
        self.deadline = time.monotonic() + max_seconds
        self.done = []
        self._stop_event = threading.Event()

    def run(self):
        self._stop_event.wait(self.delay)
        for dummy in range(self.max_requests):
            if self._stop_event.is_set() or time.monotonic() > self.deadline:
                break
            start = time.monotonic()
            conn = http.client.HTTPConnection("127.0.0.1", HTTP_PORTS[self.vm], timeout=self.seconds + 30)
            try:
                conn.request("GET", "/slow?s=%s" % self.seconds, headers={"Host": "web.lab.test"})
                resp = conn.getresponse()
                self.done.append((start, time.monotonic(), resp.status, resp.read().decode(errors="replace")))
            except (OSError, http.client.HTTPException) as exc:
                self.done.append((start, time.monotonic(), None, repr(exc)))
            finally:
                conn.close()

    def stop(self):
        self._stop_event.set()
        self.join(timeout=self.seconds + 40)
        return self
