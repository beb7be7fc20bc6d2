"""The proxy role's input rules (module_utils/_proxy_settings.py) and their filter.

Each bad input gives one line naming the variable as written (the app's index and
name) and what to write; good inputs give none. The role runs these through
plugins/filter/proxy.py (test_role_inputs_apps.py shows a few end to end).
"""

from __future__ import annotations

import os

import pytest

from ansible_collections.appfleet.docker.plugins.filter.proxy import FilterModule
from ansible_collections.appfleet.docker.plugins.module_utils import _proxy_settings as model

FILTERS = FilterModule().filters()
SETTINGS = {
    "proxy_listen_port": 80, "proxy_tls_listen_port": 443, "proxy_connect_timeout": "5s",
    "proxy_read_timeout": "60s", "proxy_send_timeout": "60s", "proxy_client_max_body_size": "10m",
    "proxy_maintenance_retry_after": 300, "proxy_maintenance_dir": "/etc/nginx/appfleet/maintenance",
    "proxy_hsts_max_age": 31536000, "proxy_upstream_dir": "/etc/nginx/appfleet/upstreams",
    "proxy_sites_dir": "/etc/nginx/appfleet/sites", "proxy_tls_dir": "/etc/nginx/appfleet/tls",
    "proxy_package": "nginx-light", "proxy_maintenance_app": "", "proxy_maintenance_state": "",
    "proxy_listen_ipv6": True, "proxy_default_server": True, "proxy_redirect_http": True, "proxy_hsts": True,
    "proxy_remove_default_site": True,
}
GOOD = {"name": "web", "port": 8080, "proxy": {"server_name": "web.example.com"}}
WHERE = "appfleet_apps[0] (web): "


def problems(apps, base_dir=None, **settings):
    return FILTERS["proxy_problems"](apps, dict(SETTINGS, **settings), "appfleet_apps", base_dir)


def web(**proxy):
    return [dict(GOOD, proxy={k: v for k, v in dict(GOOD["proxy"], **proxy).items() if v is not None})]


APP_CASES = {
    "server name with metacharacters": ({"server_name": "web.example.com;"},
                                        "proxy.server_name must be host names"),
    "server name with a trailing newline": ({"server_name": "web.example.com\n"}, "proxy.server_name must be"),
    "server name with a space": ({"server_name": "web.example.com evil.example.com"}, "proxy.server_name must be"),
    "server name with a unicode look-alike": ({"server_name": "w\u0435b.example.com"}, "proxy.server_name must be"),
    "server name with an empty label": ({"server_name": "web..example.com"}, "proxy.server_name must be"),
    "server name too long": ({"server_name": "a." * 130 + "com"}, "proxy.server_name must be"),
    "server name that is a regex": ({"server_name": "~^(?<x>.+)\\.example\\.com$"}, "proxy.server_name must be"),
    "server name list with a number": ({"server_name": ["web.example.com", 5]}, "got [5]"),
    "listen port out of range": ({"listen": 70000}, "proxy.listen must be a port 1-65535; got 70000"),
    "listen not a number": ({"listen": "80; include /etc/passwd"}, "proxy.listen must be a port 1-65535"),
    "listen with a trailing newline": ({"listen": "8080\n"}, "proxy.listen must be a port 1-65535"),
    "listen a boolean": ({"listen": True}, "proxy.listen must be a port 1-65535"),
    "listen on the https port": ({"listen": 443}, "proxy.listen is the HTTPS port 443 (proxy_tls_listen_port)"),
    "tls without key": ({"tls": {"certificate": "web.crt"}}, "proxy.tls needs both certificate and key"),
    "tls not a dict": ({"tls": "web.crt"}, "proxy.tls needs both certificate and key"),
    "tls certificate missing on the controller": ({"tls": {"certificate": "/nonexistent/web.crt", "key": "/etc/hostname"}},
                                                  "proxy.tls.certificate: no such file on the controller: /nonexistent/web.crt"),
    "tls key with a newline": ({"tls": {"certificate": "/etc/hostname", "key": "/etc/hostname\n"}},
                               "proxy.tls.key must be a file path on the controller"),
    "tls key that is an option": ({"tls": {"certificate": "/etc/hostname", "key": "-rf"}},
                                  "proxy.tls.key must be a file path on the controller"),
    "tls without server name": ({"server_name": None, "tls": {"certificate": "/etc/hostname", "key": "/etc/hostname"}},
                                "proxy.tls needs proxy.server_name"),
    "redirect_http not a boolean": ({"redirect_http": "no"}, 'proxy.redirect_http must be true or false; got "no"'),
    "hsts not a boolean": ({"hsts": "off"}, "proxy.hsts must be true or false"),
    "negative hsts max-age": ({"hsts_max_age": -1}, "proxy.hsts_max_age must be a number of seconds"),
    "read timeout with an injected directive": ({"read_timeout": "60s; proxy_pass http://evil.example.com"},
                                                "proxy.read_timeout must be an nginx time"),
    "send timeout with a trailing newline": ({"send_timeout": "60s\n"}, "proxy.send_timeout must be an nginx time"),
    "connect timeout with a unit nginx lacks": ({"connect_timeout": "5sec"}, "proxy.connect_timeout must be an nginx time"),
    "body size with a unit nginx lacks": ({"client_max_body_size": "1t"}, "proxy.client_max_body_size must be an nginx size"),
    "unknown setting": ({"redirect_https": False}, "unknown proxy setting(s) redirect_https; known: server_name"),
}


@pytest.mark.parametrize("case", sorted(APP_CASES))
def test_an_app_proxy_problem_is_one_line_naming_the_app_and_setting(case):
    proxy, needle = APP_CASES[case]
    found = problems(web(**proxy))
    assert len(found) == 1, found
    assert found[0].startswith(WHERE) and needle in found[0], found


FLEET_CASES = {
    "proxy that is not a dict": ([dict(GOOD, proxy="web.example.com")],
                                 [WHERE + 'proxy must be a dict of settings; got "web.example.com"']),
    "proxied app without a name": ([{"proxy": {"server_name": "x.example.com"}}],
                                   ["appfleet_apps[0]: an app with proxy settings needs a name of lowercase letters"]),
    "proxied app name with a newline": ([dict(GOOD, name="web\n")], ['needs a name of lowercase letters', '"web\\n"']),
    "two proxied apps with one name": ([GOOD, dict(GOOD, proxy={"server_name": "www.example.com"})],
                                       ["appfleet_apps[1] (web): two apps share a name: web"]),
    "duplicate server name": (
        [GOOD, {"name": "api", "proxy": {"server_name": ["api.example.com", "WEB.example.com"]}}],
        ["appfleet_apps[1] (api): apps web and api both claim server_name web.example.com (port 80)"]),
    "duplicate server name over https": (
        [dict(GOOD, proxy={"server_name": "web.example.com", "tls": {"certificate": "/etc/hostname", "key": "/etc/hostname"}}),
         {"name": "api", "proxy": {"server_name": "web.example.com", "listen": 8080,
                                   "tls": {"certificate": "/etc/hostname", "key": "/etc/hostname"}}}],
        ["apps web and api both claim server_name web.example.com (port 443)"]),
    "apps not a list": ({"web": GOOD}, ["appfleet_apps must be a list of apps; got dict"]),
}


@pytest.mark.parametrize("case", sorted(FLEET_CASES))
def test_fleet_problems(case):
    apps, needles = FLEET_CASES[case]
    found = "\n".join(problems(apps))
    for needle in needles:
        assert needle in found, found


SETTING_CASES = {
    "listen port with a trailing newline": ({"proxy_listen_port": "80\n"}, "proxy_listen_port must be a port 1-65535"),
    "tls port out of range": ({"proxy_tls_listen_port": 0}, "proxy_tls_listen_port must be a port 1-65535; got 0"),
    "one port for http and https": ({"proxy_tls_listen_port": 80}, "proxy_listen_port and proxy_tls_listen_port must differ"),
    "read timeout with an injected directive": ({"proxy_read_timeout": "60s; include /etc/shadow"},
                                                "proxy_read_timeout must be an nginx time"),
    "connect timeout with a trailing newline": ({"proxy_connect_timeout": "5s\n"}, "proxy_connect_timeout must be an nginx time"),
    "body size with a block": ({"proxy_client_max_body_size": "10m; } server { listen 8080"},
                               "proxy_client_max_body_size must be an nginx size"),
    "relative sites dir": ({"proxy_sites_dir": "appfleet/sites"}, "proxy_sites_dir must be an absolute path"),
    "upstream dir with ..": ({"proxy_upstream_dir": "/etc/nginx/../../tmp"}, "proxy_upstream_dir must be an absolute path"),
    "tls dir with a space": ({"proxy_tls_dir": "/etc/nginx/appfleet tls"}, "proxy_tls_dir must be an absolute path"),
    "sites and upstreams in one dir": ({"proxy_sites_dir": "/etc/nginx/appfleet/upstreams"},
                                       "proxy_upstream_dir, proxy_sites_dir and proxy_tls_dir must be three different"),
    "hsts max-age not a number": ({"proxy_hsts_max_age": "1y"}, "proxy_hsts_max_age must be a number of seconds"),
    "retry-after not a number": ({"proxy_maintenance_retry_after": "soon"}, "proxy_maintenance_retry_after must be"),
    "maintenance dir relative": ({"proxy_maintenance_dir": "maint"}, "proxy_maintenance_dir must be an absolute path"),
    "package with a command": ({"proxy_package": "nginx; reboot"}, "proxy_package must be a Debian package name"),
    "maintenance of an unknown app": ({"proxy_maintenance_app": "wbe", "proxy_maintenance_state": "on"},
                                      'proxy_maintenance_app: "wbe" is not an app with proxy settings; known: web'),
}


@pytest.mark.parametrize("case", sorted(SETTING_CASES))
def test_a_setting_problem_names_the_variable(case):
    settings, needle = SETTING_CASES[case]
    found = problems([GOOD], **settings)
    assert any(needle in line for line in found), found


def test_good_input_has_no_problem():
    good = [
        dict(GOOD, proxy={"server_name": ["web.example.com", "*.web.example.com", "WWW.Example.COM"],
                          "listen": 8080, "read_timeout": "1m30s", "client_max_body_size": "512k",
                          "redirect_http": False, "hsts": True, "hsts_max_age": 0}),
        # One name on two ports belongs to two apps.
        {"name": "api", "proxy": {"server_name": "web.example.com"}},
        {"name": "worker"},
    ]
    assert problems(good) == []


def test_relative_tls_paths_are_read_from_the_inventory_directory(tmp_path):
    (tmp_path / "tls").mkdir()
    for name in ("web.crt", "web.key"):
        (tmp_path / "tls" / name).write_text("x")
    apps = web(tls={"certificate": "tls/web.crt", "key": "tls/web.key"})
    assert problems(apps, base_dir=str(tmp_path)) == []
    missing = problems(apps, base_dir=str(tmp_path / "elsewhere"))
    assert missing == [
        WHERE + "proxy.tls.%s: no such file on the controller: %s/elsewhere/tls/web.%s (a relative path is "
                "read from the inventory directory %s/elsewhere)" % (option, tmp_path, ext, tmp_path)
        for option, ext in (("certificate", "crt"), ("key", "key"))]
    sites = FILTERS["proxy_sites"](apps, [], [], str(tmp_path))
    assert sites["web"]["tls"] == {"certificate": str(tmp_path / "tls" / "web.crt"),
                                   "key": str(tmp_path / "tls" / "web.key")}
    # Absolute paths stay as they are.
    absolute = web(tls={"certificate": "/etc/hostname", "key": "/etc/hostname"})
    assert FILTERS["proxy_sites"](absolute, [], [], str(tmp_path))["web"]["tls"]["key"] == "/etc/hostname"


def test_an_absent_app_keeps_its_server_block_while_its_upstream_exists():
    apps = [dict(GOOD, state="absent"), {"name": "api", "proxy": {"server_name": "api.example.com"}}]
    assert sorted(FILTERS["proxy_sites"](apps, ["web"], ["web"])) == ["api", "web"]
    assert sorted(FILTERS["proxy_sites"](apps, ["web"], [])) == ["api"]


def test_the_label_names_proxy_apps_when_the_user_set_it():
    found = FILTERS["proxy_problems"](web(listen=0), SETTINGS, "proxy_apps")
    assert found == ["proxy_apps[0] (web): proxy.listen must be a port 1-65535; got 0"]
    # The apps role's rule: ~ is the controller user's home, as for source.key_file.
    home = model.proxy_sites(web(tls={"certificate": "~/web.crt", "key": "/k"}), [], [], "/inv")["web"]["tls"]
    assert home["certificate"] == os.path.expanduser("~/web.crt") and home["key"] == "/k"


@pytest.mark.parametrize("switch, value, needle", [
    ("proxy_hsts", "perhaps", 'proxy_hsts: give true or false; got the string "perhaps"'),
    ("proxy_maintenance_state", "yes", 'proxy_maintenance_state: give one of "", "on", "off"'),
    ("proxy_maintenance_app", 3, "proxy_maintenance_app: give a string"),
])
def test_a_switch_of_the_wrong_shape_is_named(switch, value, needle):
    assert any(needle in line for line in problems(web(), **{switch: value}))


@pytest.mark.parametrize("facts, needle", [
    ({}, None),
    ({"distribution": "Debian", "distribution_major_version": "13"}, None),
    ({"distribution": "Ubuntu", "distribution_major_version": "24", "distribution_version": "24.04",
      "os_family": "Debian"}, "this host is Ubuntu 24.04 (os family Debian)"),
])
def test_the_release_is_checked_with_facts(facts, needle):
    found = FILTERS["proxy_problems"](web(), SETTINGS, "appfleet_apps", None, facts)
    assert found == ([] if needle is None else [
        "appfleet.docker.proxy supports the releases it is tested on: Debian 12 (bookworm) and 13 (trixie); "
        + needle + "."])
