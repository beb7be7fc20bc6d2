# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The proxy role's nginx files, rendered once (private to this collection).

Pure: no Ansible, no file system. :func:`render` turns the checked settings
(``_proxy_settings``), the sites (``_proxy_settings.proxy_sites``) and what the host
has (maintenance flags, upstream files) into the candidates ``nginx_apply`` takes:
``{"conf.d/appfleet.conf": text, "sites/<app>.conf": text, "upstreams/<app>.conf":
placeholder, ...}``. The upstream file's name and content belong to ``_proxy.py``.
"""

from __future__ import annotations

import os

from ansible_collections.appfleet.docker.plugins.module_utils._proxy import render_placeholder, slot_flag_file

HEADER = "# Ansible managed\n"
HTTP_SETTINGS = ("proxy_connect_timeout", "proxy_read_timeout", "proxy_send_timeout", "proxy_client_max_body_size")

GONE = """\
    # The app is being removed (state: absent): 410 Gone, no proxying.
    location / {
        default_type text/html;
        add_header Cache-Control no-store always;
        return 410 '<!doctype html><title>Gone</title><h1>Gone</h1><p>%(app)s is no longer served here.</p>\\n';
    }
"""
MAINTENANCE = """\
    # Maintenance mode (playbooks/maintenance.yml): 503 with Retry-After, no proxying.
    location / {
        default_type text/html;
        add_header Retry-After %(retry)s always;
        add_header Cache-Control no-store always;
        return 503 '<!doctype html><title>Down for maintenance</title><h1>Down for maintenance</h1><p>%(app)s \
is being maintained; please try again in a few minutes.</p>\\n';
    }
"""
PROXIED = """\
    # The app's active slot (module_utils/_proxy.py): slot b while the flag file
    # exists, read for every request, so a rollout moves traffic without a reload.
    set $appfleet_upstream appfleet_%(app)s;
    if (-f %(flag)s) {
        set $appfleet_upstream appfleet_%(app)s.b;
    }
    location / {
        proxy_pass http://$appfleet_upstream;
        proxy_http_version 1.1;
        # WebSocket upgrades pass through; other requests keep the upstream connection.
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $appfleet_connection_upgrade;
        proxy_set_header Host $host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
%(hide)s    }
"""
HTTP_CONF = """\
# appfleet.docker.proxy: settings for the apps, their upstreams and sites.

proxy_connect_timeout %(proxy_connect_timeout)s;
proxy_read_timeout %(proxy_read_timeout)s;
proxy_send_timeout %(proxy_send_timeout)s;
client_max_body_size %(proxy_client_max_body_size)s;
# server_tokens is set per server: Debian 13's nginx.conf already sets it in http.

# WebSocket: requests asking for an upgrade pass "Connection: upgrade" on;
# every other request sends no Connection header, so upstream keep-alive holds.
map $http_upgrade $appfleet_connection_upgrade {
    default upgrade;
    ''      '';
}

# One upstream per app (appfleet_<app>), written by appfleet.docker.app_container.
include %(proxy_upstream_dir)s/*.conf;
# One server per app, written by this role.
include %(proxy_sites_dir)s/*.conf;
"""
DEFAULT_SERVER = """
# Unknown host names get 404.
server {
%(listen)s    server_name _;
    server_tokens off;
    return 404;
}
"""
DEFAULT_TLS_SERVER = """
# Unknown host names over HTTPS (or no SNI): the TLS handshake is refused, so
# no app's certificate is shown for them.
server {
%(listen)s    server_name _;
    server_tokens off;
    ssl_reject_handshake on;
}
"""


def _listens(port, flags, ipv6):
    out = "    listen %s%s;\n" % (port, flags)
    return out + ("    listen [::]:%s%s;\n" % (port, flags) if ipv6 else "")


def _names(proxy):
    names = proxy.get("server_name", [])
    names = names if isinstance(names, list) else [names]
    return list(dict.fromkeys(names))


def _setting(proxy, option, s):
    """A per-app setting, else the role's ``proxy_<option>``."""
    return proxy[option] if option in proxy else s["proxy_" + option]


def _proxied(app, proxy, s, state, hsts):
    out = "    server_tokens off;\n"
    for option in ("connect_timeout", "read_timeout", "send_timeout"):
        if option in proxy:
            out += "    proxy_%s %s;\n" % (option, proxy[option])
    if "client_max_body_size" in proxy:
        out += "    client_max_body_size %s;\n" % proxy["client_max_body_size"]
    if state == "absent":
        return out + GONE % {"app": app}
    if state == "maintenance":
        return out + MAINTENANCE % {"app": app, "retry": s["proxy_maintenance_retry_after"]}
    hide = "        proxy_hide_header Strict-Transport-Security;\n" if hsts else ""
    flag = slot_flag_file(app, s["proxy_upstream_dir"])
    return out + PROXIED % {"app": app, "flag": flag, "hide": hide}


def site(app, proxy, s, state="serving"):
    """The server block(s) of ``app`` (``proxy``: its settings, TLS paths resolved).

    ``state``: serving, maintenance (503) or absent (410).
    """
    names = _names(proxy)
    listen = int(proxy.get("listen", s["proxy_listen_port"]))
    tls = "tls" in proxy
    hsts = tls and bool(_setting(proxy, "hsts", s))
    ipv6 = bool(s["proxy_listen_ipv6"])
    server_name = "    server_name %s;\n" % " ".join(names) if names else ""
    default = " default_server" if not names and listen != int(s["proxy_listen_port"]) else ""
    out = HEADER + "# appfleet.docker.proxy: app %s.\nserver {\n" % app
    out += _listens(listen, default, ipv6) + server_name
    if tls and _setting(proxy, "redirect_http", s):
        tls_port = int(s["proxy_tls_listen_port"])
        out += ("    server_tokens off;\n    # TLS is on: plain HTTP only redirects to HTTPS (proxy.redirect_http).\n"
                "    return 301 https://$host%s$request_uri;\n" % ("" if tls_port == 443 else ":%d" % tls_port))
    else:
        out += _proxied(app, proxy, s, state, hsts)
    out += "}\n"
    if not tls:
        return out
    out += "\nserver {\n" + _listens(s["proxy_tls_listen_port"], " ssl", ipv6) + server_name
    out += "    ssl_certificate %s.crt;\n    ssl_certificate_key %s.key;\n    ssl_protocols TLSv1.2 TLSv1.3;\n" % (
        (os.path.join(s["proxy_tls_dir"], app),) * 2)
    if hsts:
        out += '    add_header Strict-Transport-Security "max-age=%s" always;\n' % _setting(proxy, "hsts_max_age", s)
    return out + _proxied(app, proxy, s, state, hsts) + "}\n"


def http_conf(s, tls_apps):
    """The http-level file (conf.d/appfleet.conf): timeouts, the includes, the default servers."""
    out = HEADER + HTTP_CONF % s
    if not s["proxy_default_server"]:
        return out
    ipv6 = bool(s["proxy_listen_ipv6"])
    out += DEFAULT_SERVER % {"listen": _listens(s["proxy_listen_port"], " default_server", ipv6)}
    if tls_apps:
        out += DEFAULT_TLS_SERVER % {"listen": _listens(s["proxy_tls_listen_port"], " ssl default_server", ipv6)}
    return out


def _names_in(paths, directory, suffix=""):
    prefix = directory.rstrip("/") + "/"
    return [path[len(prefix):len(path) - len(suffix)] for path in paths
            if path.startswith(prefix) and "/" not in path[len(prefix):] and path.endswith(suffix)
            and len(path) > len(prefix) + len(suffix)]


def host_state(apps, found, s):
    """(apps being removed, apps with an upstream file, maintenance flags) of the apps
    and the paths ``found`` on the host in proxy_upstream_dir and proxy_maintenance_dir."""
    absent = [app["name"] for app in apps if isinstance(app, dict) and app.get("state") == "absent"]
    return (absent, _names_in(found, s["proxy_upstream_dir"], ".conf"),
            _names_in(found, s["proxy_maintenance_dir"]))


def maintenance_apps(flags, s):
    """The apps answering 503: the flags found on the host, with this run's switch applied."""
    apps = set(flags)
    if s["proxy_maintenance_state"] == "on":
        apps.add(s["proxy_maintenance_app"])
    elif s["proxy_maintenance_state"] == "off":
        apps.discard(s["proxy_maintenance_app"])
    return sorted(apps)


def render(sites, s, absent=(), flags=(), certificates=None):
    """The candidates for nginx_apply's ``files``: {"<kind>/<name>": text}.

    ``sites``: {app: proxy settings}; ``absent``: apps being removed (410, no
    placeholder upstream); ``flags``: the maintenance flags found on the host;
    ``certificates``: {app: certificate text} of the apps with TLS. An app's
    placeholder upstream is used only where it has none yet (nginx_apply keeps
    app_container's file).
    """
    certificates = certificates or {}
    down = maintenance_apps(flags, s)
    files = {"conf.d/appfleet.conf": http_conf(s, [app for app in sites if "tls" in sites[app]])}
    for app in sorted(sites):
        state = "absent" if app in absent else "maintenance" if app in down else "serving"
        files["sites/%s.conf" % app] = site(app, sites[app], s, state)
        if app not in absent:
            files["upstreams/%s.conf" % app] = render_placeholder(app)
        if "tls" in sites[app]:
            files["tls/%s.crt" % app] = certificates[app]
    return files
