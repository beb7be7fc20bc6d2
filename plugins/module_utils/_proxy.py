# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Switch an app's nginx traffic between containers, without reloading nginx.

Private to this collection (leading underscore): not a public API.

The proxy role includes ``<upstream dir>/*.conf`` inside nginx's ``http {}``
block. For each app this module writes ``<app>.conf`` there with two upstream
groups over the same two loopback ports, the app's two *slots*:

    upstream appfleet_web   { server 127.0.0.1:A max_fails=0; server 127.0.0.1:B max_fails=0 backup; }
    upstream appfleet_web.b { server 127.0.0.1:B max_fails=0; server 127.0.0.1:A max_fails=0 backup; }

The app's server block (proxy role) picks ``appfleet_web.b`` for each request
while the flag file ``<app>.slot-b`` exists next to it, else ``appfleet_web``.
A rollout starts the new container on the free slot's port, waits for its
health, then creates or removes the flag: every later request goes to the new
container, with no ``nginx -s reload`` and so no keep-alive connection closed
under a client. The other slot stays the backup, which nginx uses only when
the active slot refuses the connection.

Only a change of the slot ports (the first deploy, the first one after an
upgrade from the one-server format, or a slot port taken by something else)
rewrites the file; that is tested with ``nginx -t`` and applied with a
graceful reload, and undone when either fails. A ``.`` cannot occur in an app
name, so ``appfleet_<app>.b`` never names another app's group.
"""

from __future__ import annotations

import os
import re

from ansible_collections.appfleet.docker.plugins.module_utils._docker import AppfleetError
from ansible_collections.appfleet.docker.plugins.module_utils._files import read_file, remove_file, write_file_atomic

DEFAULT_UPSTREAM_DIR = "/etc/nginx/appfleet/upstreams"
DEFAULT_TEST_COMMAND = ["nginx", "-t"]
DEFAULT_RELOAD_COMMAND = ["nginx", "-s", "reload"]

_GROUP_RE = re.compile(r"^\s*upstream\s+(\S+)\s*\{([^}]*)\}", re.M)
_SERVER_RE = re.compile(r"server\s+([0-9.]+):([0-9]+)([^;]*);")

# The flag file next to the app's upstream file: present, slot b is active.
SLOT_FLAG_SUFFIX = ".slot-b"
# Port 9 (discard): nothing listens there, nginx answers 502. A slot on it is unassigned.
PLACEHOLDER_PORT = 9


class ProxyError(AppfleetError):
    """nginx refused the new upstream or could not be reloaded."""

    needs_context = True


def upstream_name(app, slot="a"):
    """The nginx upstream group of the app's slot: appfleet_<app> (a) or appfleet_<app>.b (b)."""
    return "appfleet_%s" % app if slot == "a" else "appfleet_%s.b" % app


def upstream_file(app, directory=DEFAULT_UPSTREAM_DIR):
    """The app's upstream include: the one place that names it (roles use the upstream_path filter)."""
    return os.path.join(directory, "%s.conf" % app)


def slot_flag_file(app, directory=DEFAULT_UPSTREAM_DIR):
    """The file whose presence makes slot b active (roles use the upstream_slot_flag filter)."""
    return os.path.join(directory, "%s%s" % (app, SLOT_FLAG_SUFFIX))


def default_upstream_file(app):
    return upstream_file(app)


def _group(app, slot, primary, backup, host):
    return "upstream %s { server %s:%d max_fails=0; server %s:%d max_fails=0 backup; }" % (
        upstream_name(app, slot), host, int(primary), host, int(backup))


def render_upstream(app, port_a, port_b=None, host="127.0.0.1"):
    """The content of the app's upstream include: both slot groups over ports a and b."""
    port_b = port_b or PLACEHOLDER_PORT
    return "\n".join([
        "# Managed by appfleet.docker.app_container for app %s; do not edit." % app,
        "# Two slots: requests go to the first server of %s, or of %s while"
        % (upstream_name(app), upstream_name(app, "b")),
        "# the flag file %s%s exists; the other slot is the backup. A swap moves" % (app, SLOT_FLAG_SUFFIX),
        "# the flag and needs no reload; port %d marks a slot with no port yet." % PLACEHOLDER_PORT,
        _group(app, "a", port_a, port_b, host),
        _group(app, "b", port_b, port_a, host),
    ]) + "\n"


def render_placeholder(app):
    """The upstream of an app that has no container: the proxy role's placeholder, byte for byte."""
    return ("# Placeholder written by appfleet.docker.proxy: app %s is not deployed yet.\n"
            "# appfleet.docker.app_container replaces it with the serving container's port.\n"
            "upstream %s { server 127.0.0.1:%d; }\n"
            "upstream %s { server 127.0.0.1:%d; }\n"
            % (app, upstream_name(app), PLACEHOLDER_PORT, upstream_name(app, "b"), PLACEHOLDER_PORT))


def parse_slots(content, app=None):
    """The ports of slots a and b in an upstream include, None where unassigned.

    Understands this format and the one-server format of earlier versions
    (``upstream appfleet_<app> { server 127.0.0.1:P; }``: slot a only).
    """
    if not content:
        return None, None
    groups = {}
    for match in _GROUP_RE.finditer(content):
        ports, backups = [], []
        for server in _SERVER_RE.finditer(match.group(2)):
            (backups if "backup" in server.group(3).split() else ports).append(int(server.group(2)))
        groups[match.group(1)] = ports + backups
    first = groups.get(upstream_name(app)) if app else None
    if first is None and groups:
        first = next(iter(groups.values()))
    if not first:
        return None, None

    def assigned(port):
        return None if port in (None, PLACEHOLDER_PORT) else port

    return assigned(first[0]), assigned(first[1] if len(first) > 1 else None)


def parse_upstream_port(content, app=None):
    """The port of slot a of an upstream include, or None (PLACEHOLDER_PORT for a placeholder)."""
    if not content:
        return None
    match = _SERVER_RE.search(content)
    if not match:
        return None
    slot_a = parse_slots(content, app)[0]
    return slot_a if slot_a is not None else int(match.group(2))


def upstream_ports(directory):
    """Every loopback port named by an upstream include in ``directory``: reserved for its app."""
    ports = set()
    try:
        names = os.listdir(directory)
    except (IOError, OSError):
        return ports
    for name in names:
        if name.endswith(".conf"):
            for match in _SERVER_RE.finditer(read_file(os.path.join(directory, name)) or ""):
                ports.add(int(match.group(2)))
    ports.discard(PLACEHOLDER_PORT)
    return ports


class Proxy(object):
    """The nginx upstream slots of one app, switched with run_command of a module.

    ``reloads`` counts the nginx reloads this object ran (the result's proxy_reloads).
    """

    def __init__(self, module, app, upstream_file=None, test_command=None, reload_command=None):
        self.module = module
        self.app = app
        self.upstream_file = upstream_file or default_upstream_file(app)
        self.flag_file = slot_flag_file(app, os.path.dirname(self.upstream_file))
        self.test_command = list(test_command or DEFAULT_TEST_COMMAND)
        self.reload_command = list(reload_command or DEFAULT_RELOAD_COMMAND)
        self.reloads = 0

    def current_content(self):
        return read_file(self.upstream_file)

    def _has_slot_b(self, content):
        return bool(content) and re.search(
            r"upstream\s+%s\s*\{" % re.escape(upstream_name(self.app, "b")), content) is not None

    def _state(self, content):
        """(port of slot a, port of slot b, active slot) for ``content``, the file's text.

        Slot b is active while the flag file exists and the file has slot b's group.
        """
        a, b = parse_slots(content, self.app)
        return a, b, "b" if self._has_slot_b(content) and os.path.lexists(self.flag_file) else "a"

    def _serving(self, content):
        """The port nginx sends the app's requests to under ``content``, or None."""
        if content is None:
            return None
        a, b, active = self._state(content)
        if active == "b":
            return b
        return a if a is not None else parse_upstream_port(content, self.app)

    def slots(self):
        """(port of slot a, port of slot b), None where unassigned."""
        return self._state(self.current_content())[:2]

    def active_slot(self):
        """"b" while the flag file exists and the file has slot b's group, else "a"."""
        return self._state(self.current_content())[2]

    def current_port(self):
        """The port nginx sends the app's requests to (the active slot), or None."""
        return self._serving(self.current_content())

    def standby_port(self):
        """The port of the slot that is not active, or None when it has none yet."""
        a, b, active = self._state(self.current_content())
        return a if active == "b" else b

    def reserved_ports(self):
        """Ports no new container of any app may take: those of every upstream include."""
        return upstream_ports(os.path.dirname(self.upstream_file))

    def _run(self, argv, what):
        rc, out, err = self.module.run_command(argv)
        if rc != 0:
            text = (err or out or "").strip()
            raise ProxyError("%s (%s) failed with rc %s: %s" % (what, " ".join(argv), rc, text[-1500:]))

    def _set_flag(self, slot):
        if slot == "b":
            write_file_atomic(self.flag_file, "slot b of app %s is active (appfleet.docker)\n" % self.app)
        else:
            remove_file(self.flag_file)

    def needs_placeholder(self):
        """True when the upstream file exists and is not the placeholder (for state absent)."""
        content = self.current_content()
        return content is not None and content != render_placeholder(self.app)

    def switch(self, port, content=None, spare=None):
        """Send the app's requests to 127.0.0.1:port; returns "flag" or "reload".

        When ``port`` is one of the two slots, only the flag moves (no reload).
        Otherwise the file is rewritten: ``port`` goes into the active slot and
        the port that served before into the other one (``spare``: a free
        port, or a callable giving one, when none served), then ``nginx -t`` and a
        graceful reload. ``content`` (the placeholder) replaces the file as it
        is. On failure everything is put back and ProxyError raised.
        """
        previous = self.current_content()
        had_flag = os.path.lexists(self.flag_file)
        if content is None:
            a, b, slot = self._state(previous)
            if port is not None and port in (a, b) and previous is not None:
                target = "a" if port == a else "b"
                if target != slot:
                    self._set_flag(target)
                return "flag"
            serving = self._serving(previous)
            if serving not in (None, PLACEHOLDER_PORT, port):
                other = serving
            else:
                other = spare() if callable(spare) else spare
            content = render_upstream(self.app, port, other) if slot == "a" else render_upstream(self.app, other, port)
        try:
            self._apply(content)
        except BaseException as exc:
            # KeyboardInterrupt, SystemExit or a bug mid-switch too: nginx must not stay pointed
            # at a container that the rollout's cleanup is about to remove.
            restore_note = "the previous upstream file was put back"
            try:
                if previous is None:
                    remove_file(self.upstream_file)
                else:
                    write_file_atomic(self.upstream_file, previous)
                if had_flag:
                    self._set_flag("b")
                # Reload so nginx surely runs the previous config again; a
                # failure here is reported but does not hide the first one.
                self._run(self.reload_command, "nginx reload")
                self.reloads += 1
            except (ProxyError, IOError, OSError) as exc2:
                restore_note += ", but reloading it failed too: %s" % (exc2,)
            if not isinstance(exc, (ProxyError, IOError, OSError)):
                raise
            raise ProxyError("%s; %s" % (exc, restore_note))
        return "reload"

    def _apply(self, content):
        if content is None:
            remove_file(self.upstream_file)
        else:
            write_file_atomic(self.upstream_file, content)
        if content is None or content == render_placeholder(self.app) or not self._has_slot_b(content):
            # No container (placeholder, removed) or no slot b: the flag must not point there.
            remove_file(self.flag_file)
        self._run(self.test_command, "nginx config test")
        self._run(self.reload_command, "nginx reload")
        self.reloads += 1
