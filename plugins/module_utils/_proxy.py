# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Switch an app's nginx upstream between containers.

Private to this collection (leading underscore): not a public API.

The proxy role includes ``/etc/nginx/appfleet/upstreams/*.conf`` inside nginx's
``http {}`` block and proxies each app's server to ``http://appfleet_<app>``.
This file writes the upstream include for one app, tests the configuration and
reloads nginx gracefully; when the test or the reload fails, the previous file
is put back and nginx reloaded again.
"""

from __future__ import annotations

import os
import re

from ansible_collections.appfleet.docker.plugins.module_utils._docker import AppfleetError
from ansible_collections.appfleet.docker.plugins.module_utils._files import read_file, remove_file, write_file_atomic

DEFAULT_UPSTREAM_DIR = "/etc/nginx/appfleet/upstreams"
DEFAULT_TEST_COMMAND = ["nginx", "-t"]
DEFAULT_RELOAD_COMMAND = ["nginx", "-s", "reload"]

_SERVER_RE = re.compile(r"^\s*upstream\s+\S+\s*\{\s*server\s+([0-9.]+):([0-9]+)\s*;", re.M)


class ProxyError(AppfleetError):
    """nginx refused the new upstream or could not be reloaded."""

    needs_context = True


def upstream_name(app):
    return "appfleet_%s" % app


def upstream_file(app, directory=DEFAULT_UPSTREAM_DIR):
    """The app's upstream include: the one place that names it (roles use the upstream_path filter)."""
    return os.path.join(directory, "%s.conf" % app)


def default_upstream_file(app):
    return upstream_file(app)


def render_upstream(app, port, container_name=None, host="127.0.0.1"):
    """The content of the app's upstream include."""
    lines = [
        "# Managed by appfleet.docker.app_container for app %s; do not edit." % app,
        "# Rewritten on every rollout: it points at the serving container.",
    ]
    if container_name:
        lines.append("# container: %s" % container_name)
    lines.append("upstream %s { server %s:%d; }" % (upstream_name(app), host, int(port)))
    return "\n".join(lines) + "\n"


# Port 9 (discard): nothing listens there, nginx answers 502. The same bytes as the proxy role's
# placeholder (roles/proxy/tasks/configure.yml), so neither rewrites the other's file.
PLACEHOLDER_PORT = 9


def render_placeholder(app):
    """The upstream of an app that has no container: the proxy role's placeholder, byte for byte."""
    return ("# Placeholder written by appfleet.docker.proxy: app %s is not deployed yet.\n"
            "# appfleet.docker.app_container replaces it with the serving container's port.\n"
            "upstream %s { server 127.0.0.1:%d; }\n" % (app, upstream_name(app), PLACEHOLDER_PORT))


def parse_upstream_port(content):
    """The port an upstream include points at, or None."""
    if not content:
        return None
    match = _SERVER_RE.search(content)
    if not match:
        return None
    return int(match.group(2))


class Proxy(object):
    """The nginx upstream of one app, switched with run_command of a module."""

    def __init__(self, module, app, upstream_file=None, test_command=None, reload_command=None):
        self.module = module
        self.app = app
        self.upstream_file = upstream_file or default_upstream_file(app)
        self.test_command = list(test_command or DEFAULT_TEST_COMMAND)
        self.reload_command = list(reload_command or DEFAULT_RELOAD_COMMAND)

    def current_content(self):
        return read_file(self.upstream_file)

    def current_port(self):
        return parse_upstream_port(self.current_content())

    def _run(self, argv, what):
        rc, out, err = self.module.run_command(argv)
        if rc != 0:
            text = (err or out or "").strip()
            raise ProxyError("%s (%s) failed with rc %s: %s" % (what, " ".join(argv), rc, text[-1500:]))

    def _apply(self, content):
        if content is None:
            remove_file(self.upstream_file)
        else:
            write_file_atomic(self.upstream_file, content)
        self._run(self.test_command, "nginx config test")
        self._run(self.reload_command, "nginx reload")

    def needs_placeholder(self):
        """True when the upstream file exists and is not the placeholder (for state absent)."""
        content = self.current_content()
        return content is not None and content != render_placeholder(self.app)

    def switch(self, port, container_name=None, content=None):
        """Point the upstream at 127.0.0.1:port (or write ``content``); on failure restore and raise ProxyError."""
        previous = self.current_content()
        if content is None:
            content = render_upstream(self.app, port, container_name)
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
                # Reload so nginx surely runs the previous config again; a
                # failure here is reported but does not hide the first one.
                self._run(self.reload_command, "nginx reload")
            except (ProxyError, IOError, OSError) as exc2:
                restore_note += ", but reloading it failed too: %s" % (exc2,)
            if not isinstance(exc, (ProxyError, IOError, OSError)):
                raise
            raise ProxyError("%s; %s" % (exc, restore_note))
        return content
