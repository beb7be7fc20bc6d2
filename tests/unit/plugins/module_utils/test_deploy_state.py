"""The deploy plan: the filters deploy.yml computes the fingerprint with, and the record comparison."""

from __future__ import annotations

import os

import pytest

from ansible_collections.appfleet.docker.plugins.filter import deploy
from ansible_collections.appfleet.docker.plugins.module_utils import _deploy_state
from ansible_collections.appfleet.docker.plugins.module_utils._app_model import app_model

APPS = [
    {"name": "web", "source": {"repo": "git@git:/srv/git/web.git", "version": "main", "key_file": "/k/deploy",
                               "known_hosts": "git ssh-ed25519 AAAA"},
     "proxy": {"server_name": "web.test", "tls": {"certificate": "/c/web.crt", "key": "/c/web.key"}}},
    {"name": "api", "source": {"repo": "https://git.example/api.git"}},
    {"name": "cache", "image": "redis:7"},
    {"name": "db", "image": "postgres@sha256:" + "a" * 64},
    {"name": "old", "source": {"repo": "git@git:/srv/git/old.git"}, "state": "absent"},
]


def effective(apps, versions=None, base_refresh=False):
    """The app model's effective apps, as the role passes them to deploy_plan."""
    model = app_model(apps, {"directories": {"src": "/srv/src", "key": "/etc/keys"}, "versions": versions or {},
                             "defaults": {"strategy": "start-first", "keep_images": 3,
                                          "base_refresh": base_refresh}})
    assert model["problems"] == []
    return model["apps"]


def test_plan_lists_sources_mutable_images_and_controller_files():
    plan = deploy.deploy_plan(effective(APPS, {"api": "v2.0"}))
    assert plan["sources"] == [
        {"app": "web", "checkout": "/srv/src/web", "repo": "git@git:/srv/git/web.git", "version": "main",
         "key_file": "/etc/keys/web", "known_hosts": "/etc/keys/web.known_hosts"},
        # The pin wins; without version the role deploys main.
        {"app": "api", "checkout": "/srv/src/api", "repo": "https://git.example/api.git", "version": "v2.0"},
    ]
    # By digest: nothing a registry can move. Absent apps: nothing to compare.
    assert plan["mutable_images"] == [{"app": "cache", "image": "redis:7"}]
    assert plan["files"] == ["/k/deploy", "/c/web.crt", "/c/web.key"]
    assert plan["refresh_bases"] == []


@pytest.mark.parametrize("default, web, expected", [
    (False, None, []),
    (True, None, ["web", "api"]),
    (False, True, ["web"]),
    (True, "no", ["api"]),
    (True, False, ["api"]),
])
def test_plan_lists_the_apps_that_refresh_their_bases(default, web, expected):
    """An app's build.base_refresh wins over the role's default; image apps have no base to refresh."""
    apps = [dict(app) for app in APPS]
    if web is not None:
        apps[0]["build"] = {"base_refresh": web}
    assert deploy.deploy_plan(effective(apps, base_refresh=default))["refresh_bases"] == expected


def test_plan_refuses_apps_that_are_not_a_list():
    with pytest.raises(deploy.AnsibleFilterError, match="effective apps of appfleet.docker.app_model"):
        deploy.deploy_plan({"name": "web"})


def test_fingerprint_depends_on_content_not_key_order():
    one = deploy.deploy_fingerprint({"vars": {"a": 1, "b": [1, 2]}, "files": ["x"]})
    assert one == deploy.deploy_fingerprint({"files": ["x"], "vars": {"b": [1, 2], "a": 1}})
    assert one != deploy.deploy_fingerprint({"vars": {"a": 1, "b": [2, 1]}, "files": ["x"]})
    assert one != deploy.deploy_fingerprint({"vars": {"a": 1, "b": [1, 2]}, "files": ["y"]})


def test_collection_digest_follows_every_file_of_the_collection(tmp_path):
    (tmp_path / "roles" / "proxy" / "templates").mkdir(parents=True)
    template = tmp_path / "roles" / "proxy" / "templates" / "site.conf.j2"
    template.write_text("server {}\n")
    (tmp_path / "plugins" / "__pycache__").mkdir(parents=True)
    (tmp_path / "galaxy.yml").write_text("version: 1.0.0\n")
    first = deploy.collection_digest(str(tmp_path))
    # Byte code is not the collection.
    (tmp_path / "plugins" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    assert deploy.collection_digest(str(tmp_path)) == first
    template.write_text("server { listen 81; }\n")
    second = deploy.collection_digest(str(tmp_path))
    assert second != first
    template.rename(tmp_path / "roles" / "proxy" / "templates" / "other.conf.j2")
    assert deploy.collection_digest(str(tmp_path)) not in (first, second)


def state(**over):
    base = {"version": _deploy_state.STATE_VERSION, "fingerprint": "f", "sources": {"web": "a" * 40},
            "containers": {"web": {"id": "c1", "image": "i1", "state": "running", "status": "Up 3 hours"}},
            "images": {"i1": ["appfleet/web:x"]}, "files": {"/etc/x": "file 0644 0:0 abc"}}
    base.update(over)
    return base


SOURCES = [{"app": "web", "repo": "https://git.example.com/team/web.git", "version": "main"}]


@pytest.mark.parametrize("now, remote, reasons", [
    (state(), {"web": ("a" * 40, None)}, []),
    (state(), {"web": ("aaaaaaa", None)}, []),
    (state(fingerprint="g"), {"web": ("a" * 40, None)},
     ["the deploy's inputs changed (inventory, versions, key or certificate files, or the collection)"]),
    (state(), {"web": ("b" * 40, None)}, ["app web: main is at bbbbbbbbbbbb on the git server; aaaaaaaaaaaa is deployed"]),
    (state(), {"web": (None, "git ls-remote failed: timeout")}, ["app web: git ls-remote failed: timeout"]),
    (state(sources={"web": None}), {"web": ("a" * 40, None)}, ["app web: its checkout is not the one recorded"]),
    (state(containers={"web": {"id": "c1", "image": "i1", "state": "running", "status": "Up 1 s (unhealthy)"}}),
     {"web": ("a" * 40, None)}, []),
    (state(containers={}), {"web": ("a" * 40, None)}, ["container web: gone since the last deploy"]),
    (state(images={}), {"web": ("a" * 40, None)}, ["the app images differ from those the last deploy left"]),
    (state(files={"/etc/%d" % n: "absent" for n in range(7)}), {"web": ("a" * 40, None)},
     ["files changed since the last deploy: /etc/0, /etc/1, /etc/2, /etc/3, /etc/4 and 3 more"]),
])
def test_compare_gives_each_reason(now, remote, reasons):
    assert _deploy_state.compare(state(), now, remote, SOURCES, []) == reasons


@pytest.mark.parametrize("recorded, reason", [
    (None, "no record of a complete deploy on this host yet"),
    ({}, "the state file is unreadable or from another version of the collection"),
    (dict(state(), version=0), "the state file is unreadable or from another version of the collection"),
])
def test_compare_without_a_usable_record(recorded, reason):
    assert _deploy_state.compare(recorded, state(), {}, SOURCES, []) == [reason]


def test_file_entries_name_kind_mode_owner_and_content(tmp_path):
    target = tmp_path / "a.conf"
    target.write_text("x")
    target.chmod(0o640)
    (tmp_path / "link").symlink_to("a.conf")
    entries = _deploy_state.watched_files([str(tmp_path), str(tmp_path / "none")])
    uid, gid = target.stat().st_uid, target.stat().st_gid
    assert entries[str(target)] == "file 0640 %d:%d %s" % (
        uid, gid, "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881")
    assert entries[str(tmp_path / "link")].startswith("link ") and entries[str(tmp_path / "link")].endswith(" a.conf")
    assert entries[str(tmp_path)].startswith("dir ")
    assert entries[str(tmp_path / "none")] == "absent"


# -- asking the git server: a real git, an ssh on PATH that plays the server --------

FLAKY_SSH = """#!/bin/sh
# ssh as git calls it (ssh [options] HOST COMMAND): turned away $FAIL_TIMES times
# before authentication, as sshd does past MaxStartups, then the command runs here.
count=$(cat "$SSH_STATE" 2>/dev/null || echo 0)
echo $((count + 1)) > "$SSH_STATE"
if [ "$count" -lt "$FAIL_TIMES" ]; then
  echo "$SSH_ERROR" >&2
  exit 255
fi
for last; do :; done
exec sh -c "$last"
"""


@pytest.fixture
def git_server(tmp_path, monkeypatch):
    """A bare repository with a branch main, reached as git@git:<path> through the flaky ssh."""
    import subprocess

    work, bare = tmp_path / "work", tmp_path / "web.git"
    env = dict(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    (work / "app.py").write_text("print(1)\n")
    subprocess.run(["git", "-C", str(work), "add", "."], check=True)
    subprocess.run(["git", "-C", str(work), "commit", "-qm", "one"], check=True, env=dict(os.environ, **env))
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    head = subprocess.run(["git", "-C", str(work), "rev-parse", "HEAD"], check=True, capture_output=True,
                          text=True).stdout.strip()
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "ssh").write_text(FLAKY_SSH)
    (bindir / "ssh").chmod(0o755)
    monkeypatch.setenv("PATH", "%s:%s" % (bindir, os.environ["PATH"]))
    monkeypatch.setenv("SSH_STATE", str(tmp_path / "ssh-calls"))
    monkeypatch.setenv("SSH_ERROR", "kex_exchange_identification: Connection closed by remote host")
    monkeypatch.setattr(_deploy_state.time, "sleep", lambda seconds: None)
    return {"source": {"app": "web", "repo": "git@git:%s" % bare, "version": "main"}, "head": head,
            "calls": tmp_path / "ssh-calls"}


def test_git_server_turning_connections_away_is_asked_again(git_server, monkeypatch):
    monkeypatch.setenv("FAIL_TIMES", "2")
    assert _deploy_state.resolve_remote(git_server["source"]) == (git_server["head"], None)
    assert git_server["calls"].read_text().strip() == "3"


def test_git_server_that_keeps_turning_away_is_named_with_gits_own_words(git_server, monkeypatch):
    monkeypatch.setenv("FAIL_TIMES", "99")
    commit, why = _deploy_state.resolve_remote(git_server["source"])
    assert commit is None
    assert why.startswith("git ls-remote failed: kex_exchange_identification: Connection closed by remote host;")
    assert "Could not read from remote repository." in why and "Please make sure" not in why
    assert why.endswith("(asked %d times)" % _deploy_state.LS_REMOTE_ATTEMPTS)
    assert git_server["calls"].read_text().strip() == str(_deploy_state.LS_REMOTE_ATTEMPTS)


def test_other_git_failures_are_not_asked_again(git_server, monkeypatch):
    monkeypatch.setenv("FAIL_TIMES", "99")
    monkeypatch.setenv("SSH_ERROR", "git@git: Permission denied (publickey).")
    commit, why = _deploy_state.resolve_remote(git_server["source"])
    assert commit is None and "Permission denied (publickey)." in why and "asked" not in why
    assert git_server["calls"].read_text().strip() == "1"
