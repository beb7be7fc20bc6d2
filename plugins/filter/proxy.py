# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The proxy role's input check and its nginx files, from module_utils/_proxy_settings.py
and module_utils/_proxy_config.py.

``proxy_problems`` runs on the controller before anything on a host changes:
the pure rules, then whether each TLS file exists here (a relative path is read
from the inventory directory). ``proxy_sites`` gives the apps nginx serves, with
those paths resolved the same way; ``proxy_files`` renders their nginx files and
reads their certificates and keys, for appfleet.docker.nginx_apply.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import os

from ansible.errors import AnsibleFilterError

from ansible_collections.appfleet.docker.plugins.module_utils import _proxy_config as config
from ansible_collections.appfleet.docker.plugins.module_utils import _proxy_settings as model

SETTINGS = ("proxy_listen_port", "proxy_tls_listen_port", "proxy_connect_timeout", "proxy_read_timeout",
            "proxy_send_timeout", "proxy_client_max_body_size", "proxy_maintenance_retry_after",
            "proxy_maintenance_dir", "proxy_hsts_max_age", "proxy_upstream_dir", "proxy_sites_dir",
            "proxy_tls_dir", "proxy_package", "proxy_maintenance_app", "proxy_maintenance_state") + tuple(
                model.SWITCH_SHAPES)


def _apps(apps, name):
    if not isinstance(apps, list):
        raise AnsibleFilterError("%s: proxy_apps must be a list of apps, got %s" % (name, type(apps).__name__))
    return apps


def _settings(settings, name):
    missing = [k for k in SETTINGS if k not in settings]
    if missing:
        raise AnsibleFilterError("%s: settings lack %s" % (name, ", ".join(missing)))
    return settings


def proxy_problems(apps, settings, var="appfleet_apps", base_dir=None, facts=None):
    """One line per problem of the proxy settings and the apps' proxy dicts (and, with
    ``facts``, of the host's release); [] when all is well."""
    _settings(settings, "proxy_problems")
    if not isinstance(apps, list):
        return ["%s must be a list of apps; got %s" % (var, type(apps).__name__)]
    problems = model.proxy_problems(apps, settings, var, facts)
    for where, option, path, relative in model.tls_files(apps, var, base_dir):
        if not os.path.isfile(path):
            hint = " (a relative path is read from the inventory directory %s)" % base_dir if relative else ""
            problems.append("%s: proxy.tls.%s: no such file on the controller: %s%s" % (where, option, path, hint))
    return problems


def proxy_sites(apps, absent=(), upstream_names=(), base_dir=None):
    """{app: proxy settings} of the apps nginx serves, TLS paths absolute on the controller."""
    return model.proxy_sites(_apps(apps, "proxy_sites"), list(absent), list(upstream_names), base_dir)


def _read(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def proxy_files(apps, settings, found=(), base_dir=None):
    """{"files": {"<kind>/<name>": text}, "private_keys": {app: text}}: the candidates of
    appfleet.docker.nginx_apply. ``found``: the paths in proxy_upstream_dir and
    proxy_maintenance_dir on the host (upstream files, maintenance flags)."""
    s = _settings(settings, "proxy_files")
    absent, upstreams, flags = config.host_state(_apps(apps, "proxy_files"), found, s)
    sites = model.proxy_sites(apps, absent, upstreams, base_dir)
    tls = dict((app, site["tls"]) for app, site in sites.items() if "tls" in site)
    try:
        certificates = dict((app, _read(paths["certificate"])) for app, paths in tls.items())
        keys = dict((app, _read(paths["key"])) for app, paths in tls.items())
    except (OSError, UnicodeDecodeError) as exc:
        raise AnsibleFilterError("proxy_files: reading a TLS file on the controller failed: %s" % exc) from None
    return {"files": config.render(sites, s, absent, flags, certificates), "private_keys": keys}


def proxy_tls_files(apps, base_dir=None):
    """The controller paths of every TLS file the apps name (certificate, key), resolved as
    the role resolves them; [] for what is not a list of apps (the role's check says why)."""
    if not isinstance(apps, list):
        return []
    return [path for _where, _option, path, _relative in model.tls_files(apps, "proxy_apps", base_dir)]


class FilterModule(object):
    def filters(self):
        return {"proxy_problems": proxy_problems, "proxy_sites": proxy_sites, "proxy_files": proxy_files,
                "proxy_tls_files": proxy_tls_files}
