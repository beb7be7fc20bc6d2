"""appfleet.docker.nginx_apply against the machine's own nginx, on a private configuration tree.

Never touches the machine's /etc/nginx: nginx_conf points at a temporary
nginx.conf that includes the temporary managed directories.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess

import pytest

from conftest import run_module

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

pytestmark = pytest.mark.skipif(not os.path.exists(NGINX), reason="nginx is not installed (apt-get install nginx-light)")

SITE = """server {
    listen 127.0.0.1:18089;
    server_name %(app)s.test;
    proxy_read_timeout %(timeout)s;
%(tls)s    location / { proxy_pass http://appfleet_%(app)s; }
}
"""
TLS = """    listen 127.0.0.1:18443 ssl;
    ssl_certificate %(tls_dir)s/%(app)s.crt;
    ssl_certificate_key %(tls_dir)s/%(app)s.key;
"""


class Tree(object):
    """A live nginx configuration and a stage under one temporary directory."""

    def __init__(self, root):
        self.root = str(root)
        self.etc = os.path.join(self.root, "etc", "nginx")
        self.conf_dir = os.path.join(self.etc, "conf.d")
        self.sites_dir = os.path.join(self.etc, "appfleet", "sites")
        self.upstream_dir = os.path.join(self.etc, "appfleet", "upstreams")
        self.tls_dir = os.path.join(self.etc, "appfleet", "tls")
        self.default_site = os.path.join(self.etc, "sites-enabled", "default")
        self.stage = os.path.join(self.root, "stage")
        self.nginx_conf = os.path.join(self.etc, "nginx.conf")
        for directory in (self.conf_dir, self.sites_dir, self.upstream_dir, self.tls_dir,
                          os.path.dirname(self.default_site), os.path.join(self.root, "log")):
            os.makedirs(directory)
        self.write(self.nginx_conf, "pid %(root)s/nginx.pid;\nerror_log %(root)s/log/error.log;\n"
                   "events {}\nhttp {\n    access_log off;\n    include %(etc)s/conf.d/*.conf;\n"
                   "    include %(etc)s/sites-enabled/*;\n}\n" % {"root": self.root, "etc": self.etc})
        self.write(self.default_site, "server { listen 127.0.0.1:18090 default_server; return 404; }\n")
        key, cert = os.path.join(self.root, "key.pem"), os.path.join(self.root, "cert.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                        "/CN=api.test", "-keyout", key, "-out", cert], check=True, capture_output=True)
        with open(key) as handle:
            self.key = handle.read()
        with open(cert) as handle:
            self.cert = handle.read()

    @staticmethod
    def write(path, text, mode=0o644):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as handle:
            handle.write(text)
        os.chmod(path, mode)

    def stage_apps(self, apps):
        """A fresh stage for ``apps``: {name: {"timeout": ..., "tls": bool}}."""
        shutil.rmtree(self.stage, ignore_errors=True)
        for kind in ("conf.d", "sites", "upstreams", "tls"):
            os.makedirs(os.path.join(self.stage, kind))
        self.write(os.path.join(self.stage, "conf.d", "appfleet.conf"),
                   "include %s/*.conf;\ninclude %s/*.conf;\n" % (self.upstream_dir, self.sites_dir))
        for app, spec in apps.items():
            tls = TLS % {"tls_dir": self.tls_dir, "app": app} if spec.get("tls") else ""
            self.write(os.path.join(self.stage, "sites", app + ".conf"),
                       SITE % {"app": app, "timeout": spec.get("timeout", "60s"), "tls": tls})
            self.write(os.path.join(self.stage, "upstreams", app + ".conf"),
                       "upstream appfleet_%s { server 127.0.0.1:9; }\n" % app)
            if spec.get("tls"):
                self.write(os.path.join(self.stage, "tls", app + ".crt"), self.cert)
                self.write(os.path.join(self.stage, "tls", app + ".key"), self.key, 0o600)

    def args(self, **extra):
        args = {"stage": self.stage, "conf_dir": self.conf_dir, "sites_dir": self.sites_dir,
                "upstream_dir": self.upstream_dir, "tls_dir": self.tls_dir, "nginx_conf": self.nginx_conf,
                "absent": [self.default_site], "nginx": NGINX}
        args.update(extra)
        return args

    def snapshot(self):
        """{relative path: (mode, sha256 or link target)} of every file of the live tree."""
        found = {}
        for directory, _subdirs, names in os.walk(self.etc):
            for name in names:
                path = os.path.join(directory, name)
                info = os.lstat(path)
                if os.path.islink(path):
                    found[os.path.relpath(path, self.etc)] = ("link", os.readlink(path))
                else:
                    with open(path, "rb") as handle:
                        found[os.path.relpath(path, self.etc)] = (oct(info.st_mode), hashlib.sha256(handle.read()).hexdigest())
        return found


def apply(tree, check=False, diff=False, verbosity=0, printed=False, **extra):
    """Run the module on the tree; an option given as None is left out."""
    args = dict((k, v) for k, v in tree.args(**extra).items() if v is not None)
    return run_module("nginx_apply", args, check=check, diff=diff, verbosity=verbosity, printed=printed)


def key_body(tree):
    """The base64 lines of the private key: none may appear in any output."""
    return [line for line in tree.key.splitlines() if line and not line.startswith("-----")]


def test_check_apply_again_diff_and_removal(tmp_path):
    tree = Tree(tmp_path)
    tree.stage_apps({"web": {}, "api": {"tls": True}})
    before = tree.snapshot()

    res = apply(tree, check=True, diff=True)
    assert res.get("failed") is not True, res.get("msg")
    assert res["changed"] is True
    assert tree.snapshot() == before, "check mode must change nothing"
    paths = {change["path"]: change["action"] for change in res["changes"]}
    assert paths[os.path.join(tree.sites_dir, "web.conf")] == "create"
    assert paths[os.path.join(tree.tls_dir, "api.key")] == "create"
    assert paths[tree.default_site] == "remove"
    diffs = {d["after_header"]: d for d in res["diff"]}
    assert "proxy_read_timeout 60s;" in diffs[os.path.join(tree.sites_dir, "web.conf")]["after"]
    assert diffs[os.path.join(tree.tls_dir, "api.key")]["after"] == "(private key changed)\n"
    assert "default_server" in diffs[tree.default_site]["before"] and diffs[tree.default_site]["after"] == ""
    for line in key_body(tree):
        assert line not in json.dumps(res) and line not in res.stdout and line not in res.stderr

    res = apply(tree, diff=True)
    assert res.get("failed") is not True, res.get("msg")
    assert res["changed"] is True
    with open(os.path.join(tree.sites_dir, "web.conf")) as handle:
        assert "server_name web.test;" in handle.read()
    key = os.stat(os.path.join(tree.tls_dir, "api.key"))
    assert oct(key.st_mode & 0o777) == "0o600" and key.st_uid == 0
    assert not os.path.lexists(tree.default_site)
    for line in key_body(tree):
        assert line not in res.stdout and line not in res.stderr and line not in json.dumps(res)
    assert subprocess.run([NGINX, "-t", "-c", tree.nginx_conf], capture_output=True, check=False).returncode == 0

    # app_container's upstream file is never replaced by the staged placeholder.
    upstream = os.path.join(tree.upstream_dir, "web.conf")
    tree.write(upstream, "upstream appfleet_web { server 127.0.0.1:18000; }\n")
    applied = tree.snapshot()
    res = apply(tree, check=True)
    assert res["changed"] is False, res
    res = apply(tree)
    assert res.get("failed") is not True, res.get("msg")
    assert res["changed"] is False and res["changes"] == []
    assert tree.snapshot() == applied

    # api is no longer staged: its server block and TLS files go, web's stay.
    tree.stage_apps({"web": {}})
    res = apply(tree)
    assert res["changed"] is True, res
    assert sorted(os.listdir(tree.sites_dir)) == ["web.conf"]
    assert os.listdir(tree.tls_dir) == []
    assert sorted(c["action"] for c in res["changes"]) == ["remove", "remove", "remove"]
    with open(upstream) as handle:
        assert "18000" in handle.read()


def test_bad_directive_is_refused_and_nothing_changes(tmp_path):
    tree = Tree(tmp_path)
    tree.stage_apps({"web": {}})
    res = apply(tree)
    assert res.get("failed") is not True, res.get("msg")
    applied = tree.snapshot()

    # A value the role's input check lets through, but nginx refuses.
    tree.stage_apps({"web": {"timeout": "10s1m"}, "api": {}})
    for check in (True, False):
        res = apply(tree, check=check)
        assert res.get("failed") is True, res
        assert res["changed"] is False
        msg = res["msg"]
        assert msg.startswith("nginx -t refused the new configuration, so it was not put in place"), msg
        assert "app web, option proxy.read_timeout" in msg, msg
        assert "proxy_read_timeout 10s1m;" in msg and "invalid value" in msg, msg
        assert os.path.join(tree.sites_dir, "web.conf") in msg and "appfleet-nginx-candidate" not in msg, msg
        assert tree.snapshot() == applied
    assert not [n for n in os.listdir("/tmp") if n.startswith("appfleet-nginx-candidate.")]


def test_relative_path_is_refused_naming_the_option(tmp_path):
    tree = Tree(tmp_path)
    tree.stage_apps({"web": {}})
    res = apply(tree, sites_dir="appfleet/sites")
    assert res.get("failed") is True
    assert "sites_dir must be an absolute path" in res["msg"], res["msg"]


def staged_contents(tree):
    """The stage directory as the role passes it (files, private_keys)."""
    files, keys = {}, {}
    for kind in sorted(os.listdir(tree.stage)):
        for name in sorted(os.listdir(os.path.join(tree.stage, kind))):
            with open(os.path.join(tree.stage, kind, name)) as handle:
                text = handle.read()
            if kind == "tls" and name.endswith(".key"):
                keys[name[:-len(".key")]] = text
            else:
                files["%s/%s" % (kind, name)] = text
    return files, keys


def test_contents_install_what_the_stage_would_and_hide_the_key(tmp_path):
    """files + private_keys (how the proxy role passes what it rendered on the controller) give the
    live tree a stage directory gives; the key is 0600, in no output; a second run changes nothing."""
    by_stage, by_contents = Tree(tmp_path / "a"), Tree(tmp_path / "b")
    for tree in (by_stage, by_contents):
        tree.stage_apps({"web": {}, "api": {"tls": True}})
    assert apply(by_stage)["changed"] is True
    files, keys = staged_contents(by_contents)
    # Tree b's paths differ from tree a's only by the directory: compare relative trees.
    first = apply(by_contents, stage=None, files=files, private_keys=keys, diff=True, verbosity=3)
    assert first.get("failed") is not True, first.get("msg")
    assert first["changed"] is True
    assert set(by_contents.snapshot()) == set(by_stage.snapshot())
    key = os.stat(os.path.join(by_contents.tls_dir, "api.key"))
    assert oct(key.st_mode & 0o777) == "0o600" and key.st_uid == 0
    for line in key_body(by_contents):
        assert line not in first.stdout and line not in first.stderr and line not in json.dumps(first)
    again = apply(by_contents, stage=None, files=files, private_keys=keys)
    assert again["changed"] is False and again["changes"] == []
    # A name with a directory part, or a key among the files, is refused naming the option.
    for bad in ({"sites/../x.conf": ""}, {"tls/api.key": keys["api"]}, {"nginx/x.conf": ""}):
        # What Ansible prints: the module's own output echoes its arguments (``invocation``).
        res = apply(by_contents, stage=None, files=bad, printed=True)
        assert res.get("failed") is True and res["msg"].startswith("files: "), res
        assert keys["api"].splitlines()[1] not in res.stdout + json.dumps(res)
