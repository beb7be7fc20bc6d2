"""The pure parts of module_utils/_nginx_apply.py: plan, order, messages, path rewriting, diffs."""

from __future__ import annotations

import pytest

from ansible_collections.appfleet.docker.plugins.module_utils import _nginx_apply as na
from ansible_collections.appfleet.docker.plugins.module_utils._docker import AppfleetError
from ansible_collections.appfleet.docker.plugins.module_utils._proxy import upstream_file

LAYOUT = na.Layout("/tmp/stage", "/etc/nginx/conf.d/", "/etc/nginx/appfleet/sites", "/etc/nginx/appfleet/upstreams",
                   "/etc/nginx/appfleet/tls", "/etc/nginx/nginx.conf")
SITES, UPSTREAMS, TLS = (LAYOUT.dirs[k] for k in ("sites", "upstreams", "tls"))


def state(text, mode=0o644, uid=0):
    return na.FileState(text.encode(), mode, uid, 0, None)


def plan(staged, live=None, listing=None, absent=()):
    return na.plan_changes(LAYOUT, staged, live or {}, listing or {}, list(absent))


def test_layout_normalises_and_refuses_relative_paths():
    assert LAYOUT.dirs["conf.d"] == "/etc/nginx/conf.d"
    assert LAYOUT.roots()[0] == "/etc/nginx"
    with pytest.raises(AppfleetError, match="^tls_dir must be an absolute path"):
        na.Layout("/s", "/c", "/si", "/u", "tls", "/etc/nginx/nginx.conf")


def test_upstream_target_is_the_file_app_container_owns():
    assert LAYOUT.target("upstreams", "web.conf") == upstream_file("web", UPSTREAMS)
    assert LAYOUT.target("sites", "web.conf") == SITES + "/web.conf"


@pytest.mark.parametrize("live, action", [
    (None, "create"),
    (state("old"), "update"),
    (state("new", mode=0o600), "update"),
    (state("new", uid=1000), "update"),
    (state("new"), None),
])
def test_plan_compares_content_mode_and_owner(live, action):
    changes = plan({"sites": {"web.conf": state("new")}}, {SITES + "/web.conf": live})
    assert [c.action for c in changes] == ([action] if action else [])


def test_plan_never_replaces_an_existing_upstream():
    staged = {"upstreams": {"web.conf": state("placeholder"), "api.conf": state("placeholder")}}
    changes = plan(staged, {UPSTREAMS + "/web.conf": state("app_container's")})
    assert [(c.path, c.action) for c in changes] == [(UPSTREAMS + "/api.conf", "create")]


def test_plan_removes_unstaged_sites_and_tls_files_and_absent_paths():
    live = {SITES + "/old.conf": state("x"), SITES + "/notes.txt": state("x"), TLS + "/old.crt": state("c"),
            TLS + "/old.key": state("k", 0o600), "/etc/nginx/sites-enabled/default": state("d")}
    listing = {"sites": ["notes.txt", "old.conf", "web.conf"], "tls": ["old.crt", "old.key"]}
    staged = {"sites": {"web.conf": state("w")}}
    live[SITES + "/web.conf"] = state("w")
    changes = plan(staged, live, listing, absent=["/etc/nginx/sites-enabled/default", "/etc/nginx/gone"])
    assert sorted((c.kind, c.path) for c in changes if c.action == "remove") == [
        ("absent", "/etc/nginx/sites-enabled/default"), ("sites", SITES + "/old.conf"),
        ("tls", TLS + "/old.crt"), ("tls", TLS + "/old.key")]
    assert all(c.action == "remove" for c in changes)


def test_install_order_writes_roots_first_and_removes_them_last():
    def change(kind, new):
        return na.Change(kind, kind, "/" + kind + ("+" if new else "-"), "x", None, state("n") if new else None)
    changes = [change(kind, new) for kind in ("sites", "absent", "tls", "conf.d", "upstreams") for new in (True, False)
               if kind != "absent" or not new]
    order = [c.path for c in na.install_order(changes)]
    assert order == ["/tls+", "/upstreams+", "/conf.d+", "/sites+", "/absent-", "/sites-", "/conf.d-",
                     "/upstreams-", "/tls-"]


NGINX_OUT = ('nginx: [emerg] "proxy_read_timeout" directive invalid value in '
             '/etc/nginx/appfleet/sites/web.conf:4\nnginx: configuration file /etc/nginx/nginx.conf test failed\n')


@pytest.mark.parametrize("output, files, expected", [
    (NGINX_OUT, {SITES + "/web.conf": b"server {\n listen 80;\n server_name w;\n proxy_read_timeout 10s1m;\n}\n"},
     "app web, option proxy.read_timeout: line 4 of /etc/nginx/appfleet/sites/web.conf is `proxy_read_timeout 10s1m;`"
     ' -- nginx: [emerg] "proxy_read_timeout" directive invalid value in /etc/nginx/appfleet/sites/web.conf:4'),
    (NGINX_OUT.replace(SITES + "/web.conf:4", "/etc/nginx/conf.d/appfleet.conf:1"),
     {"/etc/nginx/conf.d/appfleet.conf": b"proxy_read_timeout 1x;\n"},
     "the proxy role's http-level settings, option proxy_read_timeout: line 1"),
    ('2026/12/06 10:00:00 [emerg] 12#12: cannot load certificate key "/etc/nginx/appfleet/tls/api.key": '
     "PEM_read_bio_PrivateKey() failed\n", {},
     'app api, proxy.tls.key: /etc/nginx/appfleet/tls/api.key -- nginx: [emerg] cannot load certificate key'),
    ("nginx: [emerg] unknown directive \"x\" in /etc/nginx/nginx.conf:3\n", {},
     'nginx: [emerg] unknown directive "x" in /etc/nginx/nginx.conf:3'),
])
def test_explain_names_the_app_and_option(output, files, expected):
    assert na.explain(output, LAYOUT, files).startswith(expected)


def test_rewrite_paths_moves_whole_components_only():
    pattern = na.path_pattern(LAYOUT.roots())
    text = ("include /etc/nginx/appfleet/sites/*.conf;\ninclude /etc/nginx/mime.types;\n"
            "root /etc/nginxfoo;\nlog /var/etc/nginx/x;\n")
    assert na.rewrite_paths(text, pattern, "/T").splitlines() == [
        "include /T/etc/nginx/appfleet/sites/*.conf;", "include /T/etc/nginx/mime.types;",
        "root /etc/nginxfoo;", "log /var/etc/nginx/x;"]


@pytest.mark.parametrize("old, new, before, after", [
    (None, "k1", "", "(private key changed)\n"),
    ("k0", "k1", "(private key)\n", "(private key changed)\n"),
    ("k0", None, "(private key)\n", ""),
])
def test_file_diff_never_shows_a_private_key(old, new, before, after):
    change = na.Change("tls", "api.key", TLS + "/api.key", "x", old and state(old), new and state(new))
    assert na.file_diff(change) == {"before_header": TLS + "/api.key", "after_header": TLS + "/api.key",
                                    "before": before, "after": after}


def test_file_diff_shows_text_links_and_mode_changes():
    site = na.Change("sites", "web.conf", SITES + "/web.conf", "update", state("a\n"), state("b\n"))
    assert (na.file_diff(site)["before"], na.file_diff(site)["after"]) == ("a\n", "b\n")
    link = na.Change("absent", "default", "/d", "remove", na.FileState(None, None, 0, 0, "/x"), None)
    assert na.file_diff(link)["before"] == "(symbolic link to /x)\n"
    mode = na.Change("tls", "api.crt", TLS + "/api.crt", "update", state("c", 0o600), state("c"))
    expected = ("(mode 0o600, owner 0:0)\n", "(mode 0o644, owner 0:0)\n")
    assert (na.file_diff(mode)["before"], na.file_diff(mode)["after"]) == expected
