"""The deploy state: the record comparison, the watched files, asking the git server."""

from __future__ import annotations

import os
import subprocess

import pytest

from ansible_collections.appfleet.docker.plugins.module_utils import _deploy_state


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


TWO = SOURCES + [{"app": "api", "repo": "https://git.example.com/team/api.git", "version": "main"}]
BOTH_AT_A = {"web": ("a" * 40, None), "api": ("a" * 40, None)}
STRAY = {"id": "c9", "image": "i9", "state": "running", "status": ""}


def two(**over):
    base = state(sources={"web": "a" * 40, "api": "a" * 40},
                 containers={"web": {"id": "c1", "image": "i1", "state": "running", "status": ""},
                             "api": {"id": "c2", "image": "i2", "state": "running", "status": ""}})
    base.update(over)
    return base


@pytest.mark.parametrize("now, remote, mutable, apps", [
    # Nothing differs: no app; one app's commit moved or its checkout differs: that app alone.
    (two(), BOTH_AT_A, [], []),
    (two(), dict(BOTH_AT_A, web=("b" * 40, None)), [], ["web"]),
    (two(sources={"web": "a" * 40, "api": None}), BOTH_AT_A, [], ["api"]),
    (two(), dict(BOTH_AT_A, api=(None, "git ls-remote failed")), [], ["api"]),
    # A stopped or replaced container of an app, a tag that may have moved: that app.
    (two(containers={"web": {"id": "c1", "image": "i1", "state": "paused", "status": ""},
                     "api": {"id": "c2", "image": "i2", "state": "running", "status": ""}}), BOTH_AT_A, [], ["web"]),
    (two(), BOTH_AT_A, [{"app": "api", "image": "redis:7"}], ["api"]),
    (two(), dict(BOTH_AT_A, web=("b" * 40, None)), [{"app": "api", "image": "redis:7"}], ["api", "web"]),
    # Anything of the whole host, or a container no app owns: every app (None).
    (two(fingerprint="g"), dict(BOTH_AT_A, web=("b" * 40, None)), [], None),
    (two(images={}), BOTH_AT_A, [], None),
    (two(files={"/etc/x": "absent"}), BOTH_AT_A, [], None),
    (dict(two(), containers=dict(two()["containers"], stray=STRAY)), BOTH_AT_A, [], None),
])
def test_apps_to_deploy_names_the_apps_when_every_reason_is_one_apps(now, remote, mutable, apps):
    found = _deploy_state.findings(two(), now, remote, TWO, mutable)
    assert _deploy_state.apps_to_deploy(found) == apps
    assert [reason for _app, reason in found] == _deploy_state.compare(two(), now, remote, TWO, mutable)


MARKER = "/etc/nginx/appfleet/upstreams/api.reload-pending"
MARKER_REASON = ("app api: its nginx upstream file was rewritten but nginx not reloaded with it (a run was "
                 "stopped in between; %s exists)" % MARKER)


@pytest.mark.parametrize("recorded_files, now_files, reasons", [
    # Recorded with the marker (a record written after a killed switch): still not converged.
    ({MARKER: "file 0644 0:0 abc"}, {MARKER: "file 0644 0:0 abc"}, [MARKER_REASON]),
    # Appeared since the record: its app's reason, not a change of the whole host's files.
    ({}, {MARKER: "file 0644 0:0 abc"}, [MARKER_REASON]),
    # Gone since the record (the next run reloaded nginx): no reason.
    ({MARKER: "file 0644 0:0 abc"}, {}, []),
    # A file that only looks like a marker is a plain watched file.
    ({}, {"/etc/nginx/api.reload-pending.bak": "file 0644 0:0 abc"},
     ["files changed since the last deploy: /etc/nginx/api.reload-pending.bak"]),
])
def test_a_reload_marker_is_a_reason_naming_its_app(recorded_files, now_files, reasons):
    found = _deploy_state.findings(two(files=recorded_files), two(files=now_files), BOTH_AT_A, TWO, [])
    assert [reason for _app, reason in found] == reasons
    assert _deploy_state.apps_to_deploy(found) == (["api"] if reasons == [MARKER_REASON] else (None if reasons else []))


DRAINING = {"id": "c0", "image": "i0", "state": "running", "status": ""}


@pytest.mark.parametrize("name, reasons, apps", [
    # Before its deadline the old container of a swap is neither drift nor recorded.
    ("web--draining-1100", [], []),
    # After it, its remover was stopped: a reason for its app, whose next run removes it.
    ("web--draining-900", ["container web--draining-900: its drain ended 100 s ago but it is still there (the "
                           "process that removes it was stopped); a deploy of app web removes it"], ["web"]),
    ("other--draining-900", ["container other--draining-900: its drain ended 100 s ago but it is still there "
                             "(the process that removes it was stopped); a deploy of app other removes it"], None),
])
def test_a_draining_container_is_a_reason_only_after_its_deadline(name, reasons, apps):
    now = two(containers=dict(two()["containers"], **{name: DRAINING}))
    found = _deploy_state.findings(two(), now, BOTH_AT_A, TWO, [], at=1000)
    assert [reason for _app, reason in found] == reasons
    assert _deploy_state.apps_to_deploy(found) == apps
    assert name not in _deploy_state.recordable(now)["containers"]
    # Recorded by an earlier version while it drained, and gone since: no reason either.
    assert _deploy_state.findings(dict(two(), containers=now["containers"]), two(), BOTH_AT_A, TWO, [], at=1000) == []


def test_a_draining_container_whose_remover_runs_is_no_reason():
    """Past its deadline but its remover still stops it (the app's stop_timeout): no reason yet."""
    now = two(containers=dict(two()["containers"], **{"web--draining-900": DRAINING}))
    assert _deploy_state.findings(two(), now, BOTH_AT_A, TWO, [], at=1000, live={"c0"}) == []
    assert len(_deploy_state.findings(two(), now, BOTH_AT_A, TWO, [], at=1000, live={"c9"})) == 1


def test_apps_to_deploy_without_a_record_is_every_app():
    assert _deploy_state.apps_to_deploy(_deploy_state.findings(None, two(), BOTH_AT_A, TWO, [])) is None


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


def _run(argv):
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.mark.parametrize("rc, state, warned", [
    (0, "in place", None),
    (1, "missing", "the DOCKER-USER rules are not in place"),
    (2, "unknown", "the DOCKER-USER rules could not be checked"),
])
def test_firewall_state_runs_the_rules_check(tmp_path, rc, state, warned):
    program = tmp_path / "appfleet-docker-user"
    program.write_text("#!/bin/sh\n[ \"$1\" = --check ] || exit 9\necho why >&2\nexit %d\n" % rc)
    program.chmod(0o755)
    found, warning = _deploy_state.firewall_state(_run, str(program))
    assert found == state
    if warned:
        assert warning.startswith(warned) and str(program) in warning
    else:
        assert warning is None


def test_firewall_state_without_the_rules_program(tmp_path):
    assert _deploy_state.firewall_state(_run, str(tmp_path / "none")) == (None, None)
