# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Per-app lock file on the managed host.

Private to this collection (leading underscore): not a public API.

The lock is an ``flock`` on ``<lock_dir>/<app>.lock``. The kernel drops the
flock when its holder dies, so a run killed with SIGKILL (or whose SSH session
dropped and took the module with it) never leaves a lock that blocks the next
run. The file also records who holds it (pid, host, time) so that a waiting or
failing run can say who it waited for, and so that a lock file left behind by a
dead holder is recognised and reported as stale.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time

from ansible_collections.appfleet.docker.plugins.module_utils._docker import AppfleetError
from ansible_collections.appfleet.docker.plugins.module_utils._files import read_file


class LockTimeout(AppfleetError):
    """The lock stayed held by another run for longer than the timeout."""

    def __init__(self, path, holder, waited):
        self.path = path
        self.holder = holder or {}
        self.waited = waited
        super(LockTimeout, self).__init__(
            "another run is deploying this app: %s; try again later or raise lock_timeout" % self.describe())

    def describe(self):
        return "lock %s is held by %s; gave up after %d s" % (
            self.path, describe_holder(self.holder), self.waited)


def describe_holder(holder):
    if not holder:
        return "another run (holder unknown)"
    return "pid %s on %s since %s" % (
        holder.get("pid", "?"), holder.get("host", "?"), holder.get("since", "?"))


def pid_alive(pid):
    """True when a process with this pid exists on this host."""
    try:
        pid = int(pid)
    except (TypeError, ValueError):
        return False
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True


def read_holder(path):
    """The holder record in a lock file, or {} when there is none."""
    text = read_file(path)
    if text is None:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def holder_is_stale(holder, hostname=None):
    """A holder recorded for this host whose pid no longer exists."""
    if not holder:
        return False
    if holder.get("host") != (hostname or socket.gethostname()):
        return False
    return not pid_alive(holder.get("pid"))


class AppLock(object):
    """Exclusive lock for one app; use as a context manager or acquire()/release()."""

    def __init__(self, lock_dir, app, timeout=300, poll=0.5, purpose="app_container"):
        self.lock_dir = lock_dir
        self.app = app
        self.path = os.path.join(lock_dir, "%s.lock" % app)
        self.timeout = timeout
        self.poll = poll
        self.purpose = purpose
        self._fd = None
        self.waited = 0.0
        self.stale_holder = None
        self.waited_for = None

    def acquire(self):
        # exist_ok: two first-ever runs (of two apps) may both make the directory at once.
        os.makedirs(self.lock_dir, 0o700, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        start = time.time()
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except (IOError, OSError) as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                holder = read_holder(self.path)
                self.waited_for = holder or self.waited_for
                waited = time.time() - start
                if waited >= self.timeout:
                    raise LockTimeout(self.path, holder, waited)
                time.sleep(min(self.poll, max(0.05, self.timeout - waited)))
        except BaseException:
            os.close(fd)
            raise
        self.waited = time.time() - start
        # We hold the flock: whatever the file says is left over from a run
        # that ended without releasing it (killed, host rebooted).
        previous = read_holder(self.path)
        if previous:
            self.stale_holder = previous
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "app": self.app,
            "purpose": self.purpose,
        }
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(record).encode("utf-8"))
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self):
        if self._fd is None:
            return
        try:
            # Empty the record first: a file with a holder in it and no flock
            # means "the holder died without releasing".
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False

    def info(self):
        """What to report about the lock in the module result."""
        data = {"path": self.path, "waited_seconds": round(self.waited, 1)}
        if self.waited_for and self.waited >= self.poll:
            data["waited_for"] = self.waited_for
        if self.stale_holder:
            data["stale_holder"] = self.stale_holder
        return data
