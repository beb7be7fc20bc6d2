"""The one commit-and-push of the lab (e2e tests and benchmarks release with it),
against a bare repository on this machine in place of the git host."""

from __future__ import annotations

import subprocess

import pytest

from .fresh import fresh_labtool


def git(*args, cwd=None):
    return subprocess.run(["git"] + list(args), cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture()
def lab(tmp_path, monkeypatch):
    """labtool with its state in tmp_path, pushing to tmp_path/remote/<app>.git."""
    monkeypatch.setenv("APPFLEET_LAB_DIR", str(tmp_path / "state"))
    with fresh_labtool() as module:
        remotes = tmp_path / "remote"
        for app in module.sample_apps():
            git("init", "-q", "--bare", "-b", "main", str(remotes / ("%s.git" % app)))
        monkeypatch.setattr(module.githost, "push_url", lambda app: str(remotes / ("%s.git" % app)))
        yield module, remotes


def test_commit_and_push_writes_commits_and_pushes_every_change(lab):
    labtool, remotes = lab
    labtool.push_app("web")
    work = labtool.work_tree("web")
    assert git("rev-parse", "main", cwd=remotes / "web.git") == git("rev-parse", "HEAD", cwd=work)
    (work / "NOTES.md").write_text("made by the test itself\n")
    head = labtool.commit_and_push("web", {"VERSION": "9.9.9\n"}, "web: release 9.9.9")
    assert head == git("rev-parse", "HEAD", cwd=work) == git("rev-parse", "main", cwd=remotes / "web.git")
    assert git("log", "-1", "--format=%s", "main", cwd=remotes / "web.git") == "web: release 9.9.9"
    assert git("show", "main:VERSION", cwd=remotes / "web.git") == "9.9.9"
    assert git("show", "main:NOTES.md", cwd=remotes / "web.git") == "made by the test itself"
    assert git("status", "--porcelain", cwd=work) == ""


def test_commit_and_push_without_a_change_fails(lab):
    labtool, dummy = lab
    labtool.push_app("web")
    with pytest.raises(subprocess.CalledProcessError):
        labtool.commit_and_push("web", {}, "web: nothing")
