# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of appfleet.docker.deploy_lock: who holds the lock, and is that run alive.

The holder is the ansible-playbook process, not this task. An action plugin runs
in a worker that the strategy forks from ansible-playbook for each task, so
os.getpid() changes from task to task and the worker is gone when the task ends;
the worker's parent (multiprocessing.parent_process(), the same as os.getppid()
while the parent lives) is the ansible-playbook process, alive for the whole run.
Its pid with its start time (from /proc, so a reused pid is another run) is the
run id: the same in every task of the run, different in any other run.

Only the controller can tell whether a run recorded from this controller is still
alive; when the module finds one it returns ``check_holder`` and this plugin
asks the module again with ``holder_alive`` and ``checked_run_id``.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import time

from ansible import context
from ansible.plugins.action import ActionBase

from ansible_collections.appfleet.docker.plugins.module_utils._deploy_lock import DeployLockTimeout, same_controller
from ansible_collections.appfleet.docker.plugins.module_utils._lock import pid_alive

# While a live run of this controller holds the lock, ask the module at most this
# long at a time, then check again here whether that run is still alive.
RECHECK_SECONDS = 30
# Bounded loop: each round either waits RECHECK_SECONDS or answers a check.
MAX_ROUNDS = 1000


def process_start(pid):
    """A process's start time (seconds since the epoch) from /proc, or None when unknown."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            # The fields after the command (which may hold spaces) start at field 3.
            fields = handle.read().rsplit(")", 1)[1].split()
        with open("/proc/stat") as handle:
            btime = next(int(line.split()[1]) for line in handle if line.startswith("btime "))
        return btime + int(fields[19]) / float(os.sysconf("SC_CLK_TCK"))
    except (OSError, IOError, ValueError, IndexError, StopIteration):
        return None


def run_id_of(host, pid):
    start = process_start(pid)
    return "%s:%d:%s" % (host, pid, "%.2f" % start if start is not None else "?")


def pid_namespace():
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def playbook_pid():
    parent = multiprocessing.parent_process()
    return parent.pid if parent is not None else os.getpid()


def this_run(task_vars):
    """The holder record of this playbook run."""
    host, pid = socket.gethostname(), playbook_pid()
    start = process_start(pid)
    books = list(context.CLIARGS.get("args") or [])
    return {
        "host": host,
        "pid": pid,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start)) if start is not None else "?",
        "playbook": "%s (%s)" % (", ".join(books) or "?", task_vars.get("ansible_play_name", "?")),
        "pid_ns": pid_namespace(),
        "run_id": run_id_of(host, pid),
    }


def holder_alive(holder):
    """Whether a holder recorded from this controller still runs (same pid, same start)."""
    try:
        pid = int(holder.get("pid"))
    except (TypeError, ValueError):
        return False
    if not pid_alive(pid):
        return False
    if process_start(pid) is None:
        return True  # no /proc here: the pid is all there is to go on
    # A live pid with another start time is a reused pid: that run is gone.
    return holder.get("run_id") == run_id_of(holder.get("host"), pid)


class ActionModule(ActionBase):
    """Fill the holder, run the module, and answer its questions about holders of this controller."""

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp  # unused
        args = dict(self._task.args)
        for internal in ("holder_alive", "checked_run_id"):
            args.pop(internal, None)
        given = args.get("holder") or {}
        if not isinstance(given, dict):
            result.update(failed=True, msg="holder: give a dict of extra keys (host, pid and run_id are set here)")
            return result
        me = this_run(task_vars or {})
        holder = dict(given, **me)
        args["holder"] = holder
        wait = args.get("wait", 600)
        try:
            wait = int(wait)
        except (TypeError, ValueError):
            result.update(failed=True, msg="wait: give a number of seconds, not %r" % (wait,))
            return result
        start = time.monotonic()
        deadline = start + max(0, wait)
        checked, alive = None, True
        for _round in range(MAX_ROUNDS):
            remaining = max(0, int(round(deadline - time.monotonic())))
            call = dict(args, wait=remaining, holder_alive=alive)
            if checked is not None:
                call["checked_run_id"] = checked
                if alive:
                    call["wait"] = min(remaining, RECHECK_SECONDS)
            res = self._execute_module(module_name="appfleet.docker.deploy_lock", module_args=call,
                                       task_vars=task_vars)
            lock = res.get("lock") or {}
            ask = res.pop("check_holder", False)
            if res.get("failed"):
                # A live run of this controller outlasted this round: check it again while time is left.
                owner = lock.get("holder") or {}
                again = (lock.get("outcome") == "held" and same_controller(owner, me)
                         and deadline - time.monotonic() > 0)
                if not again:
                    result.update(res)
                    if lock.get("outcome") == "held":
                        # Named with the whole wait of this task, not the last round's.
                        result["msg"] = str(DeployLockTimeout(lock.get("path"), lock, time.monotonic() - start))
                    return result
            elif not ask:
                result.update(res)
                return result
            else:
                owner = lock.get("previous", {}).get("holder") or {}
            checked, alive = owner.get("run_id"), holder_alive(owner)
        result.update(failed=True, msg="deploy lock: gave up after %d rounds of waiting" % MAX_ROUNDS)
        return result
