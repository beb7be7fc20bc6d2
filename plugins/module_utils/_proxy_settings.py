# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The proxy role's settings and each app's ``proxy`` dict, checked once (private to this collection).

Pure: no Ansible, no file system. :func:`proxy_problems` returns one line per
problem, each naming the variable as the user wrote it (``proxy_listen_port``,
``appfleet_apps[1] (shop): proxy.listen``) and what to write instead.
:func:`proxy_sites` gives the role each proxied app's settings, with the TLS
paths resolved against the inventory directory (``_app_model.controller_path``, the
rule the apps role reads its paths by).
"""

from __future__ import annotations

import json
import re

from ansible_collections.appfleet.docker.plugins.module_utils._app_model import APP_NAME_RE, APP_NAME_RULE, controller_path
from ansible_collections.appfleet.docker.plugins.module_utils._input_types import release_problem, type_problems

# The role's switches: their shape is all there is to check.
SWITCH_SHAPES = {
    "proxy_listen_ipv6": "bool",
    "proxy_default_server": "bool",
    "proxy_redirect_http": "bool",
    "proxy_hsts": "bool",
    "proxy_remove_default_site": "bool",
    "proxy_maintenance_app": "str",
    "proxy_maintenance_state": {"choices": ["", "on", "off"]},
}
APP_KEYS = ("server_name", "listen", "tls", "redirect_http", "hsts", "hsts_max_age",
            "connect_timeout", "read_timeout", "send_timeout", "client_max_body_size")
TIME_OPTIONS = ("connect_timeout", "read_timeout", "send_timeout")
# Every pattern ends in \Z: `$` would also accept a trailing newline.
HOST_RE = re.compile(r"^(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\Z")
PORT_RE = re.compile(r"^[0-9]{1,5}\Z")
# nginx time: 30s, 500ms, 1m30s, or plain seconds.
TIME_RE = re.compile(r"^(([0-9]{1,9}(ms|s|m|h|d|w|M|y)){1,8}|[0-9]{1,9})\Z")
# nginx size: 10m, 512k, 1g, or plain bytes.
SIZE_RE = re.compile(r"^[0-9]{1,12}[kKmMgG]?\Z")
# An absolute path whose components are letters, digits, '_', '.', '-', none starting with '.'.
DIR_RE = re.compile(r"^(/[A-Za-z0-9_][A-Za-z0-9._-]*)+\Z")
# A path on the controller: no control characters, no glob characters, not an option.
FILE_RE = re.compile(r"^[^\x00-\x1f\x7f*?\[\]-][^\x00-\x1f\x7f*?\[\]]{0,4095}\Z")
SECONDS_RE = re.compile(r"^[0-9]{1,9}\Z")
PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]{1,62}\Z")

TIME_RULE = "an nginx time (digits with ms, s, m, h, d, w, M or y, e.g. 60s or 1m30s)"
SIZE_RULE = "an nginx size (digits with k, m or g, e.g. 10m)"
SECONDS_RULE = "a number of seconds (0-999999999)"
HOST_RULE = ("host names (labels of letters, digits and inner '-', joined by '.', at most 253 characters, "
             "optionally '*.' first)")
DIR_RULE = "an absolute path of letters, digits, '_', '.' and '-' (no component starting with '.', no trailing '/')"


def _text(value):
    """The value as YAML would show it in a message: JSON, so a string is quoted."""
    try:
        return json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return repr(value)


def _scalar(value):
    """A scalar as Jinja's ``| string`` gives it (True -> 'True'), None for containers."""
    if isinstance(value, (dict, list, tuple)):
        return None
    return str(value)


def _port_ok(value):
    text = _scalar(value)
    return text is not None and PORT_RE.match(text) is not None and 1 <= int(text) <= 65535


def _matches(pattern, value):
    text = _scalar(value)
    return text is not None and pattern.match(text) is not None


def proxied(apps):
    """The entries of ``apps`` that have proxy settings, with their index in ``apps``."""
    return [(index, entry) for index, entry in enumerate(apps or [])
            if isinstance(entry, dict) and "proxy" in entry]


def _where(var, index, entry):
    name = entry.get("name")
    return "%s[%d] (%s)" % (var, index, name) if isinstance(name, str) else "%s[%d]" % (var, index)


def settings_problems(s):
    """Problems of the role's own variables (``s``: their values by variable name)."""
    out = []
    for name in ("proxy_listen_port", "proxy_tls_listen_port"):
        if not _port_ok(s[name]):
            out.append("%s must be a port 1-65535; got %s" % (name, _text(s[name])))
    if _scalar(s["proxy_listen_port"]) == _scalar(s["proxy_tls_listen_port"]):
        out.append("proxy_listen_port and proxy_tls_listen_port must differ; both are %s"
                   % _text(s["proxy_listen_port"]))
    for name in ("proxy_connect_timeout", "proxy_read_timeout", "proxy_send_timeout"):
        if not _matches(TIME_RE, s[name]):
            out.append("%s must be %s; got %s" % (name, TIME_RULE, _text(s[name])))
    if not _matches(SIZE_RE, s["proxy_client_max_body_size"]):
        out.append("proxy_client_max_body_size must be %s; got %s" % (SIZE_RULE, _text(s["proxy_client_max_body_size"])))
    for name in ("proxy_maintenance_retry_after", "proxy_hsts_max_age"):
        if not _matches(SECONDS_RE, s[name]):
            out.append("%s must be %s; got %s" % (name, SECONDS_RULE, _text(s[name])))
    for name in ("proxy_maintenance_dir", "proxy_upstream_dir", "proxy_sites_dir", "proxy_tls_dir"):
        if not (isinstance(s[name], str) and DIR_RE.match(s[name])):
            out.append("%s must be %s; got %s" % (name, DIR_RULE, _text(s[name])))
    if len({_scalar(s[n]) for n in ("proxy_upstream_dir", "proxy_sites_dir", "proxy_tls_dir")}) < 3:
        out.append("proxy_upstream_dir, proxy_sites_dir and proxy_tls_dir must be three different directories")
    if not (isinstance(s["proxy_package"], str) and PACKAGE_RE.match(s["proxy_package"])):
        out.append("proxy_package must be a Debian package name; got %s" % _text(s["proxy_package"]))
    return out


def _host_names(proxy):
    names = proxy.get("server_name", [])
    return names if isinstance(names, list) else [names]


def app_problems(where, proxy, s):
    """Problems of one app's ``proxy`` dict; ``where`` names the app as the user wrote it."""
    if not isinstance(proxy, dict):
        return ["%s: proxy must be a dict of settings; got %s" % (where, _text(proxy))]
    out = []
    unknown = sorted(set(proxy) - set(APP_KEYS))
    if unknown:
        out.append("%s: unknown proxy setting(s) %s; known: %s" % (where, ", ".join(unknown), ", ".join(APP_KEYS)))
    hosts = _host_names(proxy)
    bad = [h for h in hosts if not (isinstance(h, str) and HOST_RE.match(h) and len(h) <= 253)]
    if bad:
        out.append("%s: proxy.server_name must be %s; got %s" % (where, HOST_RULE, _text(bad)))
    if "listen" in proxy:
        if not _port_ok(proxy["listen"]):
            out.append("%s: proxy.listen must be a port 1-65535; got %s" % (where, _text(proxy["listen"])))
        elif _scalar(proxy["listen"]) == _scalar(s["proxy_tls_listen_port"]):
            out.append("%s: proxy.listen is the HTTPS port %s (proxy_tls_listen_port); plain HTTP needs another port"
                       % (where, _scalar(s["proxy_tls_listen_port"])))
    if "tls" in proxy:
        tls = proxy["tls"]
        if not (isinstance(tls, dict) and "certificate" in tls and "key" in tls):
            out.append("%s: proxy.tls needs both certificate and key (files on the controller)" % where)
        else:
            for option in ("certificate", "key"):
                if not (isinstance(tls[option], str) and FILE_RE.match(tls[option])):
                    out.append("%s: proxy.tls.%s must be a file path on the controller (no control or glob "
                               "characters, not starting with '-'); got %s" % (where, option, _text(tls[option])))
        if not hosts:
            out.append("%s: proxy.tls needs proxy.server_name (nginx picks the certificate by the name the "
                       "client asks for)" % where)
    for option in ("redirect_http", "hsts"):
        if option in proxy and not isinstance(proxy[option], bool):
            out.append("%s: proxy.%s must be true or false; got %s" % (where, option, _text(proxy[option])))
    if "hsts_max_age" in proxy and not _matches(SECONDS_RE, proxy["hsts_max_age"]):
        out.append("%s: proxy.hsts_max_age must be %s; got %s" % (where, SECONDS_RULE, _text(proxy["hsts_max_age"])))
    for option in TIME_OPTIONS:
        if option in proxy and not _matches(TIME_RE, proxy[option]):
            out.append("%s: proxy.%s must be %s; got %s" % (where, option, TIME_RULE, _text(proxy[option])))
    if "client_max_body_size" in proxy and not _matches(SIZE_RE, proxy["client_max_body_size"]):
        out.append("%s: proxy.client_max_body_size must be %s; got %s"
                   % (where, SIZE_RULE, _text(proxy["client_max_body_size"])))
    return out


def tls_files(apps, var="appfleet_apps", base_dir=None):
    """[(where, option, resolved path, relative as written?)] of every well-formed TLS file the apps name."""
    found = []
    for index, entry in proxied(apps):
        tls = entry["proxy"].get("tls") if isinstance(entry["proxy"], dict) else None
        if not (isinstance(tls, dict) and "certificate" in tls and "key" in tls):
            continue
        for option in ("certificate", "key"):
            value = tls.get(option)
            if isinstance(value, str) and FILE_RE.match(value):
                found.append((_where(var, index, entry), option) + controller_path(value, base_dir))
    return found


def proxy_problems(apps, s, var="appfleet_apps", facts=None):
    """Every problem of the settings ``s`` and the apps' proxy dicts, one line each; with
    ``facts``, of the host's release too."""
    release = release_problem(facts, "proxy")
    out = ([release] if release else []) + type_problems(s, SWITCH_SHAPES)[0] + settings_problems(s)
    entries = proxied(apps)
    seen = set()
    claimed = {}
    for index, entry in entries:
        where = _where(var, index, entry)
        name = entry.get("name")
        if not (isinstance(name, str) and APP_NAME_RE.match(name)):
            out.append("%s: an app with proxy settings needs a name of %s; got %s" % (where, APP_NAME_RULE, _text(name)))
            continue
        if name in seen:
            out.append("%s: two apps share a name: %s; names must be unique" % (where, name))
        seen.add(name)
        out.extend(app_problems(where, entry["proxy"], s))
        proxy = entry["proxy"]
        if not isinstance(proxy, dict):
            continue
        # A host name belongs to one app per port: two apps claiming it would
        # leave nginx serving only the first (with a mere warning).
        ports = {_scalar(proxy.get("listen", s["proxy_listen_port"]))}
        if "tls" in proxy:
            ports.add("tls")
        for host in sorted({h.lower() for h in _host_names(proxy) if isinstance(h, str)}):
            for port in sorted(ports):
                other = claimed.setdefault((host, port), name)
                if other != name:
                    shown = _scalar(s["proxy_tls_listen_port"]) if port == "tls" else port
                    out.append("%s: apps %s and %s both claim server_name %s (port %s); a host name may "
                               "belong to one app only" % (where, other, name, host, shown))
    if s.get("proxy_maintenance_state"):
        known = [e.get("name") for _i, e in entries if isinstance(e.get("name"), str)]
        if s.get("proxy_maintenance_app") not in known:
            out.append("proxy_maintenance_app: %s is not an app with proxy settings; known: %s"
                       % (_text(s.get("proxy_maintenance_app")), ", ".join(known) or "none"))
    return out


def proxy_sites(apps, absent, upstream_names, base_dir=None):
    """{app: proxy settings} of the apps nginx serves, TLS paths resolved on the controller.

    An app with ``state: absent`` keeps its server block (answering 410) while
    its upstream file is still on the host (``upstream_names``)."""
    sites = {}
    for _index, entry in proxied(apps):
        name = entry["name"]
        if name in absent and name not in upstream_names:
            continue
        proxy = dict(entry["proxy"])
        if isinstance(proxy.get("tls"), dict):
            proxy["tls"] = {k: controller_path(v, base_dir)[0] if isinstance(v, str) else v
                            for k, v in proxy["tls"].items()}
        sites[name] = proxy
    return sites
