"""The proxy role's nginx files (module_utils/_proxy_config.py) and the proxy_files filter.

The expected texts are what the role's Jinja templates rendered before the
rendering moved here, byte for byte: a host converged before sees no change.
"""

from __future__ import annotations

import pytest

from ansible_collections.appfleet.docker.plugins.filter.proxy import FilterModule
from ansible_collections.appfleet.docker.plugins.module_utils import _proxy_config as config
from ansible_collections.appfleet.docker.plugins.module_utils._proxy import render_placeholder

from .test_proxy_settings import SETTINGS

FILTERS = FilterModule().filters()
S = dict(SETTINGS, proxy_maintenance_dir="/etc/appfleet/maintenance")
PROXIED_WEB = """\
    # The app's active slot (module_utils/_proxy.py): slot b while the flag file
    # exists, read for every request, so a rollout moves traffic without a reload.
    set $appfleet_upstream appfleet_web;
    if (-f /etc/nginx/appfleet/upstreams/web.slot-b) {
        set $appfleet_upstream appfleet_web.b;
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
%s    }
"""
# The plain-HTTP server's first lines, for web.test on port 80.
HEAD = """\
# Ansible managed
# appfleet.docker.proxy: app web.
server {
    listen 80;
    listen [::]:80;
    server_name web.test;
    server_tokens off;
"""
WEB = HEAD + "    proxy_read_timeout 120s;\n" + PROXIED_WEB % "" + "}\n"
WEB_TLS = HEAD + """\
    # TLS is on: plain HTTP only redirects to HTTPS (proxy.redirect_http).
    return 301 https://$host$request_uri;
}

server {
    listen 443 ssl;
    listen [::]:443 ssl;
    server_name web.test;
    ssl_certificate /etc/nginx/appfleet/tls/web.crt;
    ssl_certificate_key /etc/nginx/appfleet/tls/web.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    add_header Strict-Transport-Security "max-age=600" always;
    server_tokens off;
""" + PROXIED_WEB % "        proxy_hide_header Strict-Transport-Security;\n" + "}\n"
TLS = {"certificate": "/c/web.crt", "key": "/c/web.key"}


def test_a_plain_site():
    assert config.site("web", {"server_name": "web.test", "read_timeout": "120s"}, S) == WEB


def test_a_tls_site_redirects_and_sends_hsts():
    assert config.site("web", {"server_name": "web.test", "hsts_max_age": 600, "tls": TLS}, S) == WEB_TLS


def test_the_switches_of_a_tls_site():
    text = config.site("web", {"server_name": ["web.test", "www.web.test", "web.test"], "redirect_http": False,
                               "hsts": False, "tls": TLS}, dict(S, proxy_listen_ipv6=False, proxy_tls_listen_port=8443))
    assert "listen [::]" not in text and "return 301" not in text and "Strict-Transport-Security" not in text
    assert text.count("server_name web.test www.web.test;") == 2
    assert "    listen 8443 ssl;\n" in text and text.count("proxy_pass") == 2
    redirect = config.site("web", {"server_name": "web.test", "tls": TLS}, dict(S, proxy_tls_listen_port=8443))
    assert "return 301 https://$host:8443$request_uri;" in redirect


def test_a_nameless_site_on_its_own_port_is_the_default_server():
    assert "    listen 8080 default_server;\n" in config.site("web", {"listen": "8080"}, S)
    assert "    listen 80;\n" in config.site("web", {}, S)


@pytest.mark.parametrize("state, needles", [
    ("absent", ["return 410", "<p>web is no longer served here.</p>"]),
    ("maintenance", ["return 503", "add_header Retry-After 300 always;", "<p>web is being maintained"]),
])
def test_a_site_that_does_not_proxy(state, needles):
    text = config.site("web", {"server_name": "web.test", "connect_timeout": "1s"}, S, state)
    assert "proxy_pass" not in text and "    proxy_connect_timeout 1s;\n" in text
    for needle in needles:
        assert needle in text


def test_the_http_level_file():
    text = config.http_conf(S, [])
    assert text.startswith("# Ansible managed\n# appfleet.docker.proxy: settings")
    assert "proxy_connect_timeout 5s;\n" in text and "client_max_body_size 10m;\n" in text
    assert "\ninclude /etc/nginx/appfleet/upstreams/*.conf;\n" in text
    assert "\ninclude /etc/nginx/appfleet/sites/*.conf;\n" in text
    assert "    listen 80 default_server;\n    listen [::]:80 default_server;\n" in text
    assert "ssl_reject_handshake" not in text
    assert "    listen 443 ssl default_server;\n" in config.http_conf(S, ["web"])
    assert "server {" not in config.http_conf(dict(S, proxy_default_server=False), ["web"])


@pytest.mark.parametrize("flags, state, expected", [
    (["api"], "", ["api"]),
    (["api"], "on", ["api", "web"]),
    (["api", "web"], "off", ["api"]),
    ([], "off", []),
])
def test_maintenance_apps(flags, state, expected):
    s = dict(S, proxy_maintenance_app="web", proxy_maintenance_state=state)
    assert config.maintenance_apps(flags, s) == expected


def test_host_state_reads_the_found_paths():
    apps = [{"name": "web", "state": "absent"}, {"name": "api"}, "not an app"]
    found = ["/etc/nginx/appfleet/upstreams/web.conf", "/etc/nginx/appfleet/upstreams/web.slot-b",
             "/etc/nginx/appfleet/upstreams/sub/x.conf", "/etc/appfleet/maintenance/api"]
    assert config.host_state(apps, found, S) == (["web"], ["web"], ["api"])


def test_render_gives_every_candidate():
    sites = {"web": {"server_name": "web.test"}, "api": {"server_name": "api.test", "tls": TLS},
             "old": {"server_name": "old.test"}}
    files = config.render(sites, S, absent=["old"], flags=["web"], certificates={"api": "CERT"})
    assert sorted(files) == ["conf.d/appfleet.conf", "sites/api.conf", "sites/old.conf", "sites/web.conf",
                             "tls/api.crt", "upstreams/api.conf", "upstreams/web.conf"]
    assert files["upstreams/web.conf"] == render_placeholder("web") and files["tls/api.crt"] == "CERT"
    assert "return 410" in files["sites/old.conf"] and "return 503" in files["sites/web.conf"]
    assert "ssl_reject_handshake on;" in files["conf.d/appfleet.conf"]


def test_the_filter_reads_the_tls_files_on_the_controller(tmp_path):
    (tmp_path / "web.crt").write_text("CERT\n")
    (tmp_path / "web.key").write_text("KEY\n")
    apps = [{"name": "web", "proxy": {"server_name": "web.test", "tls": {"certificate": "web.crt", "key": "web.key"}}},
            {"name": "gone", "state": "absent", "proxy": {"server_name": "gone.test"}}, {"name": "worker"}]
    result = FILTERS["proxy_files"](apps, S, [], str(tmp_path))
    assert result["private_keys"] == {"web": "KEY\n"}
    assert result["files"]["tls/web.crt"] == "CERT\n"
    # The absent app has no upstream file left: its server block goes too.
    assert sorted(result["files"]) == ["conf.d/appfleet.conf", "sites/web.conf", "tls/web.crt", "upstreams/web.conf"]
    kept = FILTERS["proxy_files"](apps, S, ["/etc/nginx/appfleet/upstreams/gone.conf"], str(tmp_path))
    assert "return 410" in kept["files"]["sites/gone.conf"] and "upstreams/gone.conf" not in kept["files"]
