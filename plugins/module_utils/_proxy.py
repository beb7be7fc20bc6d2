# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Switch an app's nginx traffic between containers, without reloading nginx.

Private to this collection (leading underscore): not a public API.

The proxy role includes ``<upstream dir>/*.conf`` inside nginx's ``http {}``
block. For each app this module writes ``<app>.conf`` there with two upstream
groups, one for each of the app's two loopback ports, the app's two *slots*:

    upstream appfleet_web   { server 127.0.0.1:A max_fails=0; }
    upstream appfleet_web.b { server 127.0.0.1:B max_fails=0; }

The app's server block (proxy role) picks ``appfleet_web.b`` for each request
while the flag file ``<app>.slot-b`` exists next to it, else ``appfleet_web``.
A rollout starts the new container on the free slot's port, waits for its
health, then creates or removes the flag: every later request goes to the new
container, with no ``nginx -s reload`` and so no keep-alive connection closed
under a client. A group names only its own slot's port (no ``backup`` server):
the flag moves to a slot only once that slot's container passed its health
gate, so nginx never sends a request to the standby port, where no container
of the app may be listening and any local process could.

Only a change of the slot ports (the first deploy, the first one after an
upgrade from an earlier format, a slot port outside ``slot_ports`` when that
is set, or a slot port taken by something else) rewrites the file; that is
tested with ``nginx -t`` and applied with a graceful reload, and undone when
either fails. The module returns only once nginx runs the reloaded file (its
new workers started, the old ones no longer accepting; ``_nginx_reload``), so
a probe right after the run reaches the new upstream. A file in the format with ``backup`` servers (earlier versions)
is rewritten to this one, ports kept, on the app's next run (``outdated``).
A ``.`` cannot occur in an app name, so ``appfleet_<app>.b`` never names
another app's group.

Interrupted rewrites. Writing the file and reloading nginx are two steps; a
run killed between them would leave nginx on the old file (the placeholder's
502 on a first deploy) while the file names the new port, and every later run
would read the file and find nothing to do. So a rewrite first writes the
marker ``<app>.reload-pending`` next to the file, and removes it only once
nginx was reloaded with the file (or with the previous file put back). A run
that finds the marker tests and reloads nginx before anything else
(``Proxy.repair``), and deploy_state reports the app as needing a deploy while
the marker exists. The flag file needs no marker: creating or removing it is
atomic and nginx reads it per request.

Slot ports. By default (``slot_ports`` unset) a slot port is any free
loopback port above 1024, chosen as Docker binds (SO_REUSEADDR), never one a
container publishes or an upstream file names. The active port is then
unprotected only while its container is down (an app restart, a boot): a
local process that binds it then gets the app's requests. ``slot_ports`` set
to a range below 1024 (``[700, 899]`` for example) closes that gap, as only
root can bind there unless ``net.ipv4.ip_unprivileged_port_start`` says
otherwise (app_container then warns), at the price of docker-bench-security's
check 5.8 (privileged ports mapped) warning. A slot port outside a set range
is never reused: the next rollout moves both slots into it, with one rewrite
and reload. Ports named by any app's upstream file stay that app's.
"""

from __future__ import annotations

import os
import re

from ansible_collections.appfleet.docker.plugins.module_utils._docker import AppfleetError
from ansible_collections.appfleet.docker.plugins.module_utils._files import read_file, remove_file, write_file_atomic
from ansible_collections.appfleet.docker.plugins.module_utils._nginx_reload import WAIT_SECONDS, ReloadWatch

DEFAULT_UPSTREAM_DIR = "/etc/nginx/appfleet/upstreams"
DEFAULT_TEST_COMMAND = ["nginx", "-t"]
DEFAULT_RELOAD_COMMAND = ["nginx", "-s", "reload"]

_GROUP_RE = re.compile(r"^\s*upstream\s+(\S+)\s*\{([^}]*)\}", re.M)
_SERVER_RE = re.compile(r"server\s+([0-9.]+):([0-9]+)([^;]*);")

# The flag file next to the app's upstream file: present, slot b is active.
SLOT_FLAG_SUFFIX = ".slot-b"
# Port 9 (discard): nothing listens there, nginx answers 502. A slot on it is unassigned.
PLACEHOLDER_PORT = 9
# Present while an upstream rewrite is written but nginx not yet reloaded with it.
RELOAD_MARKER_SUFFIX = ".reload-pending"
# Ports of services a host may run below 1024 (kerberos, DNS over TLS, rsync), never handed
# out from a slot_ports range, nor the placeholder.
AVOIDED_PORTS = frozenset([PLACEHOLDER_PORT, 749, 750, 751, 752, 753, 754, 853, 873])


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


def reload_marker_file(app, directory=DEFAULT_UPSTREAM_DIR):
    """The marker of a rewrite whose reload has not happened yet (roles use the upstream_reload_marker filter)."""
    return os.path.join(directory, "%s%s" % (app, RELOAD_MARKER_SUFFIX))


def marker_app(path):
    """The app whose reload marker ``path`` is, or None for any other file."""
    name = os.path.basename(path)
    if not name.endswith(RELOAD_MARKER_SUFFIX):
        return None
    return name[:-len(RELOAD_MARKER_SUFFIX)] or None


def default_upstream_file(app):
    return upstream_file(app)


def check_slot_ports(value):
    """(first, last) of the ``slot_ports`` option, None when unset (any free port), or AppfleetError naming it."""
    if value is None:
        return None
    try:
        first, last = [int(port) for port in value]
    except (TypeError, ValueError):
        raise AppfleetError("proxy.slot_ports: give two port numbers, the first and the last of the range "
                            "(for example [700, 899]); got %r" % (value,))
    if not 1 <= first <= last <= 65535:
        raise AppfleetError("proxy.slot_ports: %d-%d is not a range of ports (1 to 65535, the first not above "
                            "the last)" % (first, last))
    if len(slot_port_candidates((first, last))) < 2:
        raise AppfleetError("proxy.slot_ports: %d-%d holds fewer than the two ports an app needs (ports %s are "
                            "never used)" % (first, last, ", ".join(str(p) for p in sorted(AVOIDED_PORTS))))
    return first, last


def slot_port_candidates(port_range):
    """The ports of ``port_range`` (first, last) that may become slot ports."""
    first, last = port_range
    return [port for port in range(first, last + 1) if port not in AVOIDED_PORTS]


def unowned_ports_warning(port_range, unprivileged_start):
    """The warning when ``port_range`` (set: meant to be privileged) holds ports a local user may bind, else None.

    ``unprivileged_start``: the host's net.ipv4.ip_unprivileged_port_start (1024 by default).
    """
    if port_range is None:
        return None
    first, last = port_range
    if last < unprivileged_start:
        return None
    fixes = []
    if unprivileged_start > 1:
        fixes.append("choose slot ports below %d" % unprivileged_start)
    if last < 1024:
        fixes.append("set net.ipv4.ip_unprivileged_port_start above %d (the kernel's default is 1024)" % last)
    fix = ", or ".join(fixes) or ("choose slot ports below 1024 and set net.ipv4.ip_unprivileged_port_start "
                                  "to 1024 (the kernel's default)")
    return ("proxy.slot_ports %d-%d: any local user may bind ports from %d up on this host "
            "(net.ipv4.ip_unprivileged_port_start=%d), so a process could take the active slot's port while its "
            "container is down (a restart, a boot) and receive the app's requests; %s"
            % (first, last, max(first, unprivileged_start), unprivileged_start, fix))


def _group(app, slot, port, host):
    return "upstream %s { server %s:%d max_fails=0; }" % (upstream_name(app, slot), host, int(port))


def render_upstream(app, port_a, port_b=None, host="127.0.0.1"):
    """The content of the app's upstream include: the groups of slot a (port a) and slot b (port b)."""
    port_b = port_b or PLACEHOLDER_PORT
    return "\n".join([
        "# Managed by appfleet.docker.app_container for app %s; do not edit." % app,
        "# Two slots: requests go to the first server of %s, or of %s while"
        % (upstream_name(app), upstream_name(app, "b")),
        "# the flag file %s%s exists. A swap moves the flag and needs no reload;" % (app, SLOT_FLAG_SUFFIX),
        "# port %d marks a slot with no port yet." % PLACEHOLDER_PORT,
        _group(app, "a", port_a, host),
        _group(app, "b", port_b, host),
    ]) + "\n"


def render_placeholder(app):
    """The upstream of an app that has no container: the proxy role's placeholder, byte for byte."""
    return ("# Placeholder written by appfleet.docker.proxy: app %s is not deployed yet.\n"
            "# appfleet.docker.app_container replaces it with the serving container's port.\n"
            "upstream %s { server 127.0.0.1:%d; }\n"
            "upstream %s { server 127.0.0.1:%d; }\n"
            % (app, upstream_name(app), PLACEHOLDER_PORT, upstream_name(app, "b"), PLACEHOLDER_PORT))


def _groups(content):
    """{group name: [(port, is a backup server)]} of an upstream include."""
    groups = {}
    for match in _GROUP_RE.finditer(content or ""):
        groups[match.group(1)] = [(int(server.group(2)), "backup" in server.group(3).split())
                                  for server in _SERVER_RE.finditer(match.group(2))]
    return groups


def parse_slots(content, app=None):
    """The ports of slots a and b in an upstream include, None where unassigned.

    Slot b is the first server of the ``.b`` group. Also reads the formats of
    earlier versions: the one with ``backup`` servers (slot b is then also the
    backup of slot a's group) and the one-server format
    (``upstream appfleet_<app> { server 127.0.0.1:P; }``: slot a only).
    """
    groups = _groups(content)
    if not groups:
        return None, None
    first = groups.get(upstream_name(app)) if app else None
    if first is None:
        first = next(iter(groups.values()))
    if not first:
        return None, None
    ordered = [port for port, backup in first if not backup] + [port for port, backup in first if backup]
    second = groups.get(upstream_name(app, "b")) if app else None
    if second is None and not app:
        second = next((servers for name, servers in groups.items() if name.endswith(".b")), None)
    if second:
        port_b = ([port for port, backup in second if not backup] or [second[0][0]])[0]
    else:
        port_b = ordered[1] if len(ordered) > 1 else None

    def assigned(port):
        return None if port in (None, PLACEHOLDER_PORT) else port

    return assigned(ordered[0]), assigned(port_b)


def outdated(content, app):
    """True when ``content`` is the app's upstream in the earlier format with ``backup`` servers."""
    groups = _groups(content)
    return any(backup for name in (upstream_name(app), upstream_name(app, "b"))
               for dummy, backup in groups.get(name) or [])


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

    def __init__(self, module, app, upstream_file=None, test_command=None, reload_command=None, slot_ports=None):
        self.module = module
        self.app = app
        self.upstream_file = upstream_file or default_upstream_file(app)
        self.flag_file = slot_flag_file(app, os.path.dirname(self.upstream_file))
        self.marker_file = reload_marker_file(app, os.path.dirname(self.upstream_file))
        self.test_command = list(test_command or DEFAULT_TEST_COMMAND)
        self.reload_command = list(reload_command or DEFAULT_RELOAD_COMMAND)
        # (first, last) the slot ports come from; None: any port is a slot port.
        self.slot_ports = slot_ports
        self.reloads = 0

    def owns(self, port):
        """True when ``port`` may stay a slot port of the app: inside slot_ports (if given)."""
        if port is None or port in AVOIDED_PORTS:
            return False
        return self.slot_ports is None or self.slot_ports[0] <= port <= self.slot_ports[1]

    def current_content(self):
        return read_file(self.upstream_file)

    def outdated(self):
        """True when the upstream file is in the earlier format with ``backup`` servers (rewritten once)."""
        return outdated(self.current_content(), self.app)

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

    def _reload(self):
        """Reload nginx gracefully and wait until it runs the new configuration: a task after
        this module's may probe the app at once (see _nginx_reload)."""
        watch = ReloadWatch(self.reload_command)
        self._run(self.reload_command, "nginx reload")
        self.reloads += 1
        if not watch.wait():
            # The raw AnsibleModule: the upstream file names the app (the wrapper writes the prefix).
            self.module.warn("%d s after the nginx reload (%s) for %s, nginx (master pid %s) still had no new "
                             "worker processes, or old ones still accepting, so it may still send requests to "
                             "the previous upstream; see nginx's error log"
                             % (WAIT_SECONDS, " ".join(self.reload_command), self.upstream_file, watch.master))

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

        When ``port`` is one of the two slots, only the flag moves (no reload),
        unless the file is in the earlier format with ``backup`` servers: it is
        then rewritten in this one, its ports kept. Otherwise the file is
        rewritten: ``port`` goes into the active slot and the port that served
        before into the other one (``spare``: a free port, or a callable giving
        one, when none served), then ``nginx -t`` and a graceful reload.
        ``content`` (the placeholder) replaces the file as it is. On failure
        everything is put back and ProxyError raised.
        """
        previous = self.current_content()
        had_flag = os.path.lexists(self.flag_file)
        if content is None:
            a, b, slot = self._state(previous)
            if port is not None and port in (a, b) and previous is not None:
                target = "a" if port == a else "b"
                if target != slot:
                    self._set_flag(target)
                if not outdated(previous, self.app):
                    return "flag"
                content = render_upstream(self.app, a, b)
            else:
                serving = self._serving(previous)
                if serving not in (None, PLACEHOLDER_PORT, port) and self.owns(serving):
                    other = serving
                else:
                    # No port served, or one outside the owned range: both slots move into it at once.
                    other = spare() if callable(spare) else spare
                content = (render_upstream(self.app, port, other) if slot == "a"
                           else render_upstream(self.app, other, port))
        # Until nginx runs the new file (or the previous one again), the marker says so.
        self._mark_pending()
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
                self._set_flag("b" if had_flag else "a")
                # Reload so nginx surely runs the previous config again; a
                # failure here is reported but does not hide the first one.
                self._reload()
                remove_file(self.marker_file)
            except (ProxyError, IOError, OSError) as exc2:
                restore_note += (", but reloading it failed too: %s; the next run tests and reloads nginx again"
                                 % (exc2,))
            if not isinstance(exc, (ProxyError, IOError, OSError)):
                raise
            raise ProxyError("%s; %s" % (exc, restore_note))
        remove_file(self.marker_file)
        return "reload"

    def _mark_pending(self):
        write_file_atomic(self.marker_file, "the upstream file of app %s is being rewritten; nginx is reloaded "
                                            "with it before this file goes (appfleet.docker)\n" % self.app,
                          sync_dir=True)

    def reload_pending(self):
        """True when a rewrite was interrupted before nginx was reloaded with the file (the marker exists)."""
        return os.path.lexists(self.marker_file)

    def repair(self):
        """Test and reload nginx with the upstream file as it is, then remove the marker.

        The file is what a run killed mid-rewrite left: the new port or the
        previous file, both complete (written atomically). Raises ProxyError,
        the marker kept, when nginx refuses it.
        """
        self._run(self.test_command, "nginx config test")
        self._reload()
        remove_file(self.marker_file)

    def _apply(self, content):
        if content is None:
            remove_file(self.upstream_file)
        else:
            write_file_atomic(self.upstream_file, content)
        if content is None or content == render_placeholder(self.app) or not self._has_slot_b(content):
            # No container (placeholder, removed) or no slot b: the flag must not point there.
            remove_file(self.flag_file)
        self._run(self.test_command, "nginx config test")
        self._reload()
