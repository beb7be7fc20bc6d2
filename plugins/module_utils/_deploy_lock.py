# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One lock per host around a whole deploy (appfleet.docker.deploy_lock).

Private to this collection (leading underscore): not a public API.

Unlike app_container's per-app flock (_lock.py), this lock must outlive the
module process: it is taken by one task and released by another, many tasks
later. So the lock is a record in a file: the holder (controller host, pid,
start time, playbook, run id), written atomically under a short flock that
makes "read, decide, write" one step between two contenders. A record is
stale, and taken over, when it is older than its lease, when the host has
rebooted since it was written, or when the controller that wrote it says its
process is gone (only the controller can tell: see plugins/action/deploy_lock.py).
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from contextlib import contextmanager

from ansible_collections.appfleet.docker.plugins.module_utils._files import read_file, remove_file, write_file_atomic
from ansible_collections.appfleet.docker.plugins.module_utils._lock import read_holder

DEFAULT_PATH = "/var/lib/appfleet/deploy.lock"
BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"

# What decide() answers.
FREE = "free"            # no lock: take it
SAME = "same"            # held by this run: re-entrant, renew the lease
EXPIRED = "expired"      # older than its lease: take it over
REBOOTED = "rebooted"    # written before the host's last boot: take it over
DEAD = "dead"            # its controller said the holder's process is gone: take it over
CHECK = "check"          # held from this controller by a process not yet checked: ask the controller
HELD = "held"            # held by another live run: wait

TAKE = (FREE, SAME, EXPIRED, REBOOTED, DEAD)
STALE = (EXPIRED, REBOOTED, DEAD)


def run_id(holder):
    """The identity of a run: the holder's run_id, else its host, pid and start time."""
    holder = holder or {}
    if holder.get("run_id"):
        return str(holder["run_id"])
    return "%s:%s:%s" % (holder.get("host", ""), holder.get("pid", ""), holder.get("started", ""))


def describe(holder):
    """A holder for a message: who, from where, since when, running what."""
    holder = holder or {}
    return "pid %s on controller %s (playbook %s, started %s)" % (
        holder.get("pid", "?"), holder.get("host", "?"), holder.get("playbook", "?"), holder.get("started", "?"))


def same_controller(one, other):
    """Two holders on one controller: the same host name in the same pid namespace (two
    containers may share a host name, and a pid means something in its namespace only)."""
    return (one or {}).get("host") == (other or {}).get("host") and \
        (one or {}).get("pid_ns") == (other or {}).get("pid_ns")


def boot_id():
    """This host's boot id (Linux), or '' when unknown."""
    return (read_file(BOOT_ID_PATH) or "").strip()


def decide(record, holder, now, lease, current_boot="", dead_run_id=None, alive_run_id=None):
    """What to do about the lock ``record`` (a dict, {} when free) for ``holder``.

    ``dead_run_id`` / ``alive_run_id``: the run the controller checked and found gone /
    running. A record held from the same controller as ``holder`` by an unchecked run
    answers CHECK: the module cannot see the controller's processes.
    """
    owner = (record or {}).get("holder")
    if not isinstance(owner, dict) or not owner:
        return FREE
    owner_id = run_id(owner)
    if owner_id == run_id(holder):
        return SAME
    try:
        taken = float(record.get("acquired_at", 0))
    except (TypeError, ValueError):
        taken = 0.0
    if now - taken >= lease:
        return EXPIRED
    if current_boot and record.get("boot_id") and record["boot_id"] != current_boot:
        return REBOOTED
    if dead_run_id is not None and owner_id == dead_run_id:
        return DEAD
    if same_controller(owner, holder) and owner_id != alive_run_id:
        return CHECK
    return HELD


def make_record(holder, now, current_boot=""):
    return {
        "holder": holder,
        "acquired_at": now,
        "acquired": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "boot_id": current_boot,
    }


class DeployLockTimeout(Exception):
    """Another run held the lock for longer than ``wait``."""

    def __init__(self, path, record, waited):
        self.record = record
        super(DeployLockTimeout, self).__init__(
            "deploy lock %s is held by %s since %s; gave up after %d s (wait). Wait for that deploy to "
            "end and run again, or raise wait (appfleet_deploy_lock_wait in the playbooks); if that run is gone (killed on another controller), remove %s "
            "on this host, or let its lease expire"
            % (path, describe(record.get("holder")), record.get("acquired", "?"), waited, path))


class DeployLock(object):
    """The deploy lock file at ``path``; acquire() and release() return what the module reports."""

    def __init__(self, path=DEFAULT_PATH, clock=time.time, sleep=time.sleep, poll=1.0):
        self.path = path
        self.clock = clock
        self.sleep = sleep
        self.poll = poll

    @contextmanager
    def _guard(self):
        """A flock held for one read-decide-write; the kernel drops it if the module dies."""
        directory = os.path.dirname(self.path) or "."
        os.makedirs(directory, 0o700, exist_ok=True)
        fd = os.open(self.path + ".guard", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def read(self):
        return read_holder(self.path)

    def acquire(self, holder, wait=600, lease=3600, dead_run_id=None, alive_run_id=None, check_mode=False):
        """Take the lock for ``holder``, waiting up to ``wait`` s; raise DeployLockTimeout when it stays held.

        Returns a dict: ``outcome`` (a decide() answer), ``changed``, ``record`` (the lock as
        left), ``previous`` (the record taken over or waited for), ``waited_seconds``. With
        ``outcome`` CHECK nothing was taken: the controller must check ``previous``.
        """
        start = self.clock()
        waited_for = None
        current_boot = boot_id()
        while True:
            if check_mode:
                record = self.read()
                outcome = decide(record, holder, self.clock(), lease, current_boot, dead_run_id, alive_run_id)
                # Nothing is taken in check mode, and nothing waited for.
                return dict(outcome=outcome, changed=False, record=record, previous=record,
                            waited_seconds=0.0)
            with self._guard():
                record = self.read()
                now = self.clock()
                outcome = decide(record, holder, now, lease, current_boot, dead_run_id, alive_run_id)
                if outcome in TAKE:
                    new = make_record(holder, now, current_boot)
                    write_file_atomic(self.path, json.dumps(new, sort_keys=True) + "\n", mode=0o600,
                                      sync_dir=True)
                    return dict(outcome=outcome, changed=outcome != SAME, record=new,
                                previous=record if outcome in STALE else (waited_for or {}),
                                waited_seconds=round(now - start, 1))
            if outcome == CHECK:
                return dict(outcome=outcome, changed=False, record=record, previous=record,
                            waited_seconds=round(self.clock() - start, 1))
            waited_for = record
            waited = self.clock() - start
            if waited >= wait:
                raise DeployLockTimeout(self.path, record, waited)
            self.sleep(max(0.05, min(self.poll, wait - waited)))

    def release(self, holder, check_mode=False):
        """Remove the lock when ``holder`` holds it; leave another run's lock alone.

        Returns a dict: ``outcome`` (released, free or refused), ``changed``, ``record``.
        """
        with self._guard():
            record = self.read()
            owner = record.get("holder")
            if not isinstance(owner, dict) or not owner:
                return dict(outcome="free", changed=False, record={})
            if run_id(owner) != run_id(holder):
                return dict(outcome="refused", changed=False, record=record)
            if not check_mode:
                remove_file(self.path)
            return dict(outcome="released", changed=True, record={})
