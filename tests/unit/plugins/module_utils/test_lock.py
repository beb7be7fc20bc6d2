"""The per-app lock: exclusion, its holder, a killed holder."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

from ansible_collections.appfleet.docker.plugins.module_utils import _lock


def test_lock_excludes_and_reports_holder(tmp_path):
    with _lock.AppLock(str(tmp_path), "web", timeout=5) as lock:
        holder = _lock.read_holder(lock.path)
        assert holder["pid"] == os.getpid() and holder["app"] == "web"
        # A second process cannot take it and names the holder.
        code = ("import sys; sys.path[:0] = %r\n"
                "from ansible_collections.appfleet.docker.plugins.module_utils._lock import AppLock, LockTimeout\n"
                "try:\n    AppLock(%r, 'web', timeout=0.5, poll=0.1).acquire()\n"
                "except LockTimeout as e:\n    print(e.describe()); sys.exit(3)\n") % (sys.path, str(tmp_path))
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
        assert proc.returncode == 3, proc.stderr
        assert "pid %d" % os.getpid() in proc.stdout
    assert _lock.read_holder(lock.path) == {}


def test_lock_of_a_killed_holder_is_stale(tmp_path):
    code = ("import os, sys; sys.path[:0] = %r\n"
            "from ansible_collections.appfleet.docker.plugins.module_utils._lock import AppLock\n"
            "AppLock(%r, 'web').acquire(); print(os.getpid(), flush=True); os._exit(0)\n") % (sys.path, str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    dead_pid = int(proc.stdout.strip())
    holder = _lock.read_holder(str(tmp_path / "web.lock"))
    assert holder["pid"] == dead_pid and _lock.holder_is_stale(holder)
    with _lock.AppLock(str(tmp_path), "web", timeout=1) as lock:
        assert lock.stale_holder["pid"] == dead_pid
        assert lock.info()["stale_holder"]["pid"] == dead_pid


def test_lock_dir_first_run_race(tmp_path):
    """Many first-ever runs make the lock directory at once: none fails."""
    lock_dir = str(tmp_path / "new" / "locks")
    barrier = threading.Barrier(12)
    errors = []

    def take(i):
        barrier.wait()
        try:
            with _lock.AppLock(lock_dir, "app%d" % i, timeout=5):
                pass
        except Exception as exc:  # pylint: disable=broad-except
            errors.append(exc)

    threads = [threading.Thread(target=take, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
