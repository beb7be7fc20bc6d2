# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that give the roles the nginx upstream contract of app_container.

The module (module_utils/_proxy.py) owns the upstream file: its name under the
upstream directory and its content. The proxy role renders the placeholder of an
app not deployed yet, and the apps role finds the file to remove, through these
filters, so neither role spells the format a second time. The server block
picks the app's active slot through the flag file upstream_slot_flag names; an
app's removal also removes the reload marker upstream_reload_marker names.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.appfleet.docker.plugins.module_utils._app_model import APP_NAME_RE, APP_NAME_RULE
from ansible_collections.appfleet.docker.plugins.module_utils._proxy import (
    DEFAULT_UPSTREAM_DIR,
    reload_marker_file,
    render_placeholder,
    slot_flag_file,
    upstream_file,
)


def _app(value, filter_name):
    if not isinstance(value, str) or not APP_NAME_RE.match(value):
        raise AnsibleFilterError("%s: %r is not an app name (%s)" % (filter_name, value, APP_NAME_RULE))
    return value


def upstream_placeholder(app):
    """The upstream include of an app that has no container yet (nginx answers 502)."""
    return render_placeholder(_app(app, "upstream_placeholder"))


def upstream_path(app, directory=DEFAULT_UPSTREAM_DIR):
    """The app's upstream include under ``directory`` (the proxy role's proxy_upstream_dir)."""
    return upstream_file(_app(app, "upstream_path"), directory)


def upstream_slot_flag(app, directory=DEFAULT_UPSTREAM_DIR):
    """The file whose presence sends the app's requests to slot b (appfleet_<app>.b)."""
    return slot_flag_file(_app(app, "upstream_slot_flag"), directory)


def upstream_reload_marker(app, directory=DEFAULT_UPSTREAM_DIR):
    """The marker app_container keeps while an upstream rewrite awaits its nginx reload."""
    return reload_marker_file(_app(app, "upstream_reload_marker"), directory)


class FilterModule(object):
    def filters(self):
        return {
            "upstream_placeholder": upstream_placeholder,
            "upstream_path": upstream_path,
            "upstream_slot_flag": upstream_slot_flag,
            "upstream_reload_marker": upstream_reload_marker,
        }
