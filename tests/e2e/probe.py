"""A bounded HTTP probe: GETs in a thread until stopped, at most N requests."""

from __future__ import annotations

import threading
import time

from lab_support import http_get


class Probe(threading.Thread):
    """Probe one app through one VM's nginx at about `rate` requests per second."""

    def __init__(self, vm, app, rate=20, max_seconds=900):
        super().__init__(daemon=True)
        self.vm, self.app, self.rate = vm, app, rate
        self.max_requests = int(rate * max_seconds)
        self.deadline = time.monotonic() + max_seconds
        self.ok = 0
        self.failures = []
        self.bodies = set()
        self._stop_event = threading.Event()

    def run(self):
        sent = 0
        while not self._stop_event.is_set() and sent < self.max_requests and time.monotonic() < self.deadline:
            sent += 1
            try:
                status, body = http_get(self.vm, self.app, timeout=5)
            except OSError as exc:
                self.failures.append(repr(exc))
            else:
                if status == 200:
                    self.ok += 1
                    self.bodies.add(body.strip())
                else:
                    self.failures.append("HTTP %s: %s" % (status, body[:80]))
            time.sleep(1.0 / self.rate)

    def stop(self):
        self._stop_event.set()
        self.join(timeout=30)
        return self
