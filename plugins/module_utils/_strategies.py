# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rollout strategies of app_container: start-first and stop-first, health-gated.

Private to this collection (leading underscore): not a public API.

Both strategies go through Swap.roll_out and share its one cleanup path: on
any failure, BaseException included (KeyboardInterrupt, SystemExit), the new
``<name>--next`` container is removed and a stopped old container is started
again before the run ends. After a start-first swap behind nginx the old container
drains on its own (_drain.py): the run does not wait for it.
"""

from __future__ import annotations

import math
import os
import time

from ansible_collections.appfleet.docker.plugins.module_utils._docker import (
    HANDLED_ERRORS,
    APIError,
    AppfleetError,
    DockerException,
    describe_error,
)
from ansible_collections.appfleet.docker.plugins.module_utils._engine import (
    free_loopback_port,
    port_taken,
    unprivileged_port_start,
)
from ansible_collections.appfleet.docker.plugins.module_utils._proxy import (
    ProxyError,
    slot_port_candidates,
    unowned_ports_warning,
)
from ansible_collections.appfleet.docker.plugins.module_utils._container_spec import (
    draining_name,
    temp_name,
    uses_secret_files,
)
from ansible_collections.appfleet.docker.plugins.module_utils._drain import drain_result, start_remover

# Tries to start the new container when its loopback port was taken between choice and start.
PORT_ATTEMPTS = 3
# How long the cleanup of a failed rollout keeps trying to reach a restarting engine.
CLEANUP_SECONDS = 20


def old_state(current, restarted=False):
    if current and restarted:
        return "the previous container was started again"
    if current and current["running"]:
        return "the previous container is still serving"
    return "no previous container was serving"


def persist(action, seconds=CLEANUP_SECONDS):
    """Run ``action()`` until it works, for ``seconds`` at most (the engine may be restarting).

    Returns None when it worked, else what went wrong the last time. Never raises an
    Exception (a KeyboardInterrupt or SystemExit still goes through).
    """
    deadline = time.time() + seconds
    while True:
        try:
            action()
            return None
        except Exception as exc:  # cleanup must not hide the failure it cleans up after
            problem = describe_error(exc)
        if time.time() >= deadline:
            return problem
        time.sleep(1)


class Swap(object):
    """Puts a new container of one app in service, or starts its stopped one.

    ``create(name, current, host_port, secret_release)`` creates (not starts)
    the new container and returns its id.
    """

    def __init__(self, wrapper, engine, secrets, proxy, create):
        self.wrapper = wrapper
        self.p = wrapper.params
        self.stable = self.p.get("container_name") or self.p["name"]
        self.engine = engine
        self.secrets = secrets
        self.proxy = proxy
        self.create = create
        # What a rollout has done so far, for its cleanup.
        self.new_cid = None
        self.stopped_old = False
        # Loopback ports that were taken when a new container tried to start on them.
        self.tried_ports = set()
        # The warning about slot ports any local user may bind: once per run.
        self.warned_range = False
        # The old container left draining by this run: {container, id, until}, else None.
        self.draining = None

    def step(self, text):
        """Name the step under way: a failure message says which one failed."""
        self.wrapper.step = text

    # ------------------------------------------------------------ secret files
    def write_secrets(self):
        """A new release of the secret files for a new container, or None."""
        if not uses_secret_files(self.p):
            return None
        try:
            return self.secrets.write(self.p["secret_env"])
        except (IOError, OSError) as exc:
            raise AppfleetError("could not write the secret files under %s: %s; nothing was changed"
                                % (self.secrets.app_dir, exc.strerror or exc))

    def own_secrets(self, cid, release):
        """Give the new container's secret files to the uid it runs as (before it starts)."""
        if not release:
            return
        try:
            self.secrets.chown(release, self.engine.secret_owner(cid))
        except (IOError, OSError) as exc:
            raise AppfleetError("could not set the owner of the secret files in %s: %s"
                                % (release, exc.strerror or exc))

    # ------------------------------------------------------------ steps
    def switch_proxy(self, host_port, name, current):
        try:
            self.proxy.switch(host_port, spare=lambda: self.spare_port(host_port))
        except ProxyError as exc:
            what = "the new container" if current is not None else "container %s" % name
            state = "; %s" % old_state(current) if current is not None else ""
            raise AppfleetError("nginx did not accept the switch to %s: %s%s" % (what, exc, state))

    def start_existing(self, current):
        """The serving container matches but is stopped: start it, health-gated."""
        api = self.wrapper.client.api
        self.step("starting the stopped container")
        api.start(current["id"])
        return self.resume(current)

    def resume(self, current):
        """The serving container matches and was just started or unpaused: await its health,
        then point nginx at it."""
        self.step("waiting for container %s to become healthy" % current["name"])
        reason = self.engine.wait_healthy(current["id"], current["host_port"])
        if reason:
            raise AppfleetError(self.engine.fail_message(reason, current["id"], "no container of the app is serving"))
        if self.proxy and current["host_port"] and (self.proxy.current_port() != current["host_port"]
                                                    or self.proxy.outdated()):
            self.switch_proxy(current["host_port"], current["name"], None)
        return current["id"]

    def choose_port(self):
        """The loopback port of the new container: the proxy's free slot when it has one.

        Taking the free slot lets the switch move only the flag (no nginx
        reload). A standby port outside the owned slot ports is not reused.
        Ports named by any app's upstream file are never handed out as fresh
        ones: they are that app's slots.
        """
        used = self.engine.used_host_ports()
        if self.proxy:
            standby = self.proxy.standby_port()
            if standby and self.proxy.owns(standby) and standby not in used and standby not in self.tried_ports:
                return standby
            used |= self.proxy.reserved_ports()
        return self.fresh_port(used | self.tried_ports)

    def spare_port(self, host_port):
        """A free loopback port for the other slot when the app has none in the range (first deploy)."""
        used = self.engine.used_host_ports() | self.proxy.reserved_ports() | {host_port}
        return self.fresh_port(used)

    def fresh_port(self, used):
        """A free loopback port not in ``used``: from the proxy's slot ports, else any."""
        if not self.proxy or self.proxy.slot_ports is None:
            return free_loopback_port(used)
        if not self.warned_range:
            self.warned_range = True
            warning = unowned_ports_warning(self.proxy.slot_ports, unprivileged_port_start())
            if warning:
                self.wrapper.warn(warning)
        return free_loopback_port(used, slot_port_candidates(self.proxy.slot_ports))

    def create_new(self, name, current, secret_release):
        """Create (not start) the new container on a free loopback port; return (id, host port)."""
        self.step("creating the new container %s" % name)
        host_port = self.choose_port() if self.p.get("port") else None
        try:
            return self.create(name, current, host_port, secret_release), host_port
        except DockerException as exc:
            raise AppfleetError("could not create the new container %s: %s" % (name, exc))

    def launch_new(self, current, release, stop_old):
        """Create and start the new container, stopping the old one first with ``stop_old``.

        Docker binds published host ports at start, not at create: when the
        loopback port chosen for the app was taken meanwhile, the container is
        removed and made again on another free port (PORT_ATTEMPTS at most).
        ``self.new_cid`` and ``self.stopped_old`` always say what exists, for
        the cleanup. Returns (id, name, host port).
        """
        api = self.wrapper.client.api
        name = temp_name(self.stable) if current else self.stable
        for attempt in range(1, PORT_ATTEMPTS + 1):
            self.new_cid, host_port = self.create_new(name, current, release)
            self.own_secrets(self.new_cid, release)
            if stop_old and current and current["running"] and not self.stopped_old:
                self.step("stopping the previous container")
                self.stopped_old = True
                api.stop(current["id"], timeout=self.p["stop_timeout"])
            self.step("starting the new container")
            try:
                api.start(self.new_cid)
                return self.new_cid, name, host_port
            except APIError as exc:
                if attempt == PORT_ATTEMPTS or not port_taken(exc, host_port):
                    raise AppfleetError("the new container did not start: %s" % (exc,))
            # Our loopback port went to someone else between choosing and starting: again.
            self.tried_ports.add(host_port)
            self.step("removing the new container to retry on another port")
            self.engine.remove(self.new_cid, stop_timeout=0, record=False)
            self.new_cid = None
        raise AppfleetError("the new container did not start")  # not reached

    # ------------------------------------------------------------ strategies
    def start_first(self, current):
        return self.roll_out(current, stop_old=False)

    def stop_first(self, current):
        return self.roll_out(current, stop_old=True)

    def roll_out(self, current, stop_old):
        """Swap ``current`` for a new container, health-gated; one cleanup path for both strategies.

        start-first leaves the old container running until the new one serves;
        stop-first stops it just before the new one starts. On any failure
        (BaseException included) the new container is removed, a stopped old
        one is started again and its health awaited, and the run fails with
        what happened; KeyboardInterrupt and SystemExit are raised again after
        the cleanup.
        """
        api = self.wrapper.client.api
        self.new_cid, self.stopped_old = None, False
        release = None
        try:
            self.step("writing the secret files")
            release = self.write_secrets()
            cid, name, host_port = self.launch_new(current, release, stop_old)
            self.step("waiting for the new container to become healthy")
            reason = self.engine.wait_healthy(cid, host_port)
            if reason:
                raise AppfleetError(reason)
            if self.proxy:
                self.step("switching nginx to the new container")
                try:
                    self.proxy.switch(host_port, spare=lambda: self.spare_port(host_port))
                except ProxyError as exc:
                    raise AppfleetError("nginx did not accept the switch to the new container: %s" % (exc,))
        except BaseException as exc:
            message = self.clean_up_failed(exc, current, release)
            if message is None:
                raise
            raise AppfleetError(message)
        if current:
            if self.proxy and current["running"] and not stop_old and self.p["drain_seconds"]:
                self.drain(current)
            else:
                self.step("removing the previous container")
                self.engine.remove(current["id"])
        if name != self.stable:
            self.step("renaming the new container to %s" % self.stable)
            api.rename(cid, self.stable)
        return cid

    def drain(self, current):
        """Leave the old container to finish its requests in flight, without waiting: renamed with its
        deadline (drain_seconds from now, whole seconds), removed then by a detached process."""
        until = int(math.ceil(time.time() + self.p["drain_seconds"]))
        name = draining_name(self.stable, until)
        self.step("renaming the previous container to %s" % name)
        self.wrapper.client.api.rename(current["id"], name)
        releases = set(os.path.dirname(src) for src in (current.get("secret_mounts") or {}).values()
                       if self.secrets.release_of(src))
        self.step("starting the process that removes %s at the end of its drain" % name)
        start_remover(self.p, current["id"], until, releases)
        self.draining = drain_result(name, current["id"], until)

    def clean_up_failed(self, exc, current, release):
        """Undo a failed rollout; return the failure message, or None to re-raise ``exc`` as it is."""
        step = self.wrapper.step
        cid = self.new_cid
        logs = self.engine.logs_tail(cid) if cid else "(none)"
        notes = []
        if cid:
            problem = persist(lambda: self.engine.remove(cid, stop_timeout=0, record=False))
            if problem:
                notes.append("the new container %s could not be removed (%s); the next run removes it"
                             % (cid[:12], problem))
        if release:
            self.secrets.remove_release(release)
        old = old_state(current)
        if self.stopped_old:
            problem = persist(lambda: self.wrapper.client.api.start(current["id"]))
            if problem:
                old = ("the previous container could not be started again (%s); start it with "
                       "docker start %s" % (problem, current["name"]))
            else:
                again = None
                try:
                    again = self.engine.wait_healthy(current["id"], current["host_port"])
                except Exception as exc2:  # the engine went away again
                    again = describe_error(exc2)
                old = old_state(current, restarted=True)
                if again:
                    old += " but is not healthy either (%s)" % again
        if isinstance(exc, (KeyboardInterrupt, SystemExit)) or not isinstance(exc, HANDLED_ERRORS):
            return None
        self.wrapper.step = step
        text = self.wrapper.error_message(exc)
        return "%s; %s%s. Last log lines: %s" % (text, old, "".join("; " + n for n in notes), logs)
