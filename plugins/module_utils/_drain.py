# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The drain of the old container after a start-first swap, without holding up the run.

Private to this collection (leading underscore): not a public API.

Once nginx sends new requests to the new container, the old one only finishes the
requests in flight. app_container renames it ``<name>--draining-<deadline>``
(``draining_name`` in _container_spec.py) and starts a detached process (a double
fork, its own session, no inherited file descriptor) that sleeps until the deadline,
stops the container with the app's stop_timeout, removes it and the secret files it
mounted; the run returns at once. The remover ignores errors: a later run of the app
finishes a drain it left (killed, rebooted), and deploy_state names a draining
container past its deadline as a reason to deploy.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime, timezone

# In the remover's command line: ``ps`` shows which app's container it drains.
MARKER = "appfleet-drain"

# The remover's program: the standard library and the Docker SDK only, since the
# module's own files are gone once the module returned (Ansible removes them).
REMOVER = r"""
import os, shutil, sys, time
import docker
from docker.errors import NotFound
cid, until, stop_timeout, host, api_timeout = sys.argv[3:8]
time.sleep(max(0.0, float(until) - time.time()))
api = docker.APIClient(base_url=host, timeout=int(api_timeout) + int(stop_timeout))
try:
    api.stop(cid, timeout=int(stop_timeout))
except Exception:
    pass
try:
    api.remove_container(cid, force=True)
except Exception:
    pass
# Gone, by this removal or by a run of the app that finished the drain at the same deadline.
for _ in range(300):
    try:
        api.inspect_container(cid)
    except NotFound:
        break
    except Exception:
        sys.exit(1)
    time.sleep(0.1)
else:
    sys.exit(1)
for release in sys.argv[8:]:
    shutil.rmtree(release, ignore_errors=True)
    try:
        os.rmdir(os.path.dirname(release))
    except OSError:
        pass
"""


def live_removers(proc="/proc"):
    """The container ids (as given on their command lines) that a remover process on this host
    drains: a draining container still there after its deadline whose remover runs is being
    stopped (with the app's stop_timeout) and removed, not left behind."""
    ids = set()
    try:
        pids = [pid for pid in os.listdir(proc) if pid.isdigit()]
    except OSError:
        return ids
    for pid in pids:
        try:
            with open(os.path.join(proc, pid, "cmdline"), "rb") as handle:
                argv = handle.read().decode("utf-8", "replace").split("\0")
        except OSError:
            continue
        # remover_argv: python -c REMOVER MARKER name cid ...
        if len(argv) > 5 and argv[1] == "-c" and argv[3] == MARKER and argv[5]:
            ids.add(argv[5])
    return ids


def left_behind(cid, until, now, live):
    """Whether a draining container (id ``cid``, deadline ``until``) was left behind by ``now``: past its
    deadline with no remover of ``live`` (from live_removers) at work on it (killed, the host rebooted)."""
    return until <= now and not any(cid.startswith(other) or other.startswith(cid) for other in live if other)


def drain_result(name, cid, until):
    """A draining container as app_container returns it: its name, short id and deadline (UTC, ISO 8601)."""
    return dict(container=name, id=cid[:12], until=datetime.fromtimestamp(until, timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ"))


def remover_argv(params, cid, until, releases):
    """The remover's command line: MARKER and the app's name lead its arguments."""
    return [sys.executable, "-c", REMOVER, MARKER, params["name"], cid, str(until), str(params["stop_timeout"]),
            params["docker_host"], str(params["api_timeout"])] + sorted(releases)


def detach(argv):
    """Start ``argv`` as a daemon: double fork, a new session, stdin/stdout/stderr on /dev/null, no other
    file descriptor (the app's lock and Ansible's pipes stay this process's). Returns once the
    intermediate child is reaped; the daemon is nobody's child then."""
    pid = os.fork()
    if pid:
        os.waitpid(pid, 0)
        return
    try:  # the child, then the grandchild: never back into the module's code
        os.setsid()
        if os.fork() == 0:
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            os.closerange(3, os.sysconf("SC_OPEN_MAX"))
            os.chdir("/")
            os.execv(argv[0], argv)
    finally:
        os._exit(0)


def start_remover(params, cid, until, releases=()):
    """Remove container ``cid`` at ``until`` (unix time) from a detached process, then its secret release dirs."""
    detach(remover_argv(params, cid, until, releases))
