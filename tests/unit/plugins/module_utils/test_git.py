"""The one git runner (safety options, a safe environment, no discovery, bounded calls); mask_url,
the one owner of how a repository URL with credentials is shown."""

from __future__ import annotations

import os
import subprocess

import pytest

from ansible_collections.appfleet.docker.plugins.module_utils import _git
from ansible_collections.appfleet.docker.plugins.module_utils import _deploy_state
from ansible_collections.appfleet.docker.plugins.module_utils._git import mask_url, url_secrets


def _repo(path):
    path.mkdir()
    subprocess.run(["git", "-C", str(path), "init", "-q"], check=True)
    subprocess.run(["git", "-C", str(path), "-c", "user.email=t@example.invalid", "-c", "user.name=t",
                    "commit", "-q", "--allow-empty", "-m", "first"], check=True)
    return path


def test_run_git_pins_the_work_tree_and_turns_hooks_and_fsmonitor_off(tmp_path, monkeypatch):
    repo = _repo(tmp_path / "repo")
    calls = []
    real = subprocess.run

    def spy(cmd, check, **kw):
        calls.append((cmd, dict(kw, check=check)))
        return real(cmd, check=check, **kw)

    monkeypatch.setattr(_git.subprocess, "run", spy)
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "elsewhere"))
    rc, out, err = _git.run_git(["rev-parse", "HEAD"], top=str(repo))
    assert rc == 0 and len(out.strip()) == 40 and err == ""
    cmd, kw = calls[0]
    assert cmd[:3] == ["git", "--git-dir=%s/.git" % repo, "--work-tree=%s" % repo]
    assert "core.fsmonitor=false" in cmd and "core.hooksPath=/dev/null" in cmd
    assert "safe.bareRepository=explicit" in cmd
    assert kw["cwd"] == str(repo) and "GIT_DIR" not in kw["env"]
    assert kw["env"]["GIT_CONFIG_GLOBAL"] == os.devnull and kw["env"]["GIT_CONFIG_NOSYSTEM"] == "1"


def test_run_git_without_a_work_tree_discovers_nothing(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr(_git.subprocess, "run",
                        lambda cmd, **kw: seen.update(cmd=cmd, **kw) or subprocess.CompletedProcess(cmd, 0, b"", b""))
    _git.run_git(["ls-remote", "--", "x"], own_config_only=False, env={"GIT_SSH_COMMAND": "ssh -o BatchMode=yes"})
    assert seen["cwd"] == "/" and not any(a.startswith("--git-dir") for a in seen["cmd"])
    assert "GIT_CONFIG_GLOBAL" not in seen["env"] and seen["env"]["GIT_SSH_COMMAND"] == "ssh -o BatchMode=yes"
    assert seen["env"]["GIT_TERMINAL_PROMPT"] == "0"


def test_run_git_is_bounded_and_says_when_git_is_missing(monkeypatch):
    def slow(cmd, **kw):
        raise subprocess.TimeoutExpired(cmd, kw["timeout"])
    monkeypatch.setattr(_git.subprocess, "run", slow)
    assert _git.run_git(["ls-remote"], timeout=3) == (124, b"", "no answer within 3 s")
    monkeypatch.undo()
    monkeypatch.setenv("PATH", "/nonexistent")
    rc, out, err = _git.run_git(["version"])
    assert rc == 127 and out == b"" and err.startswith("git is not installed")


def test_git_raises_git_error_with_gits_words(tmp_path):
    repo = _repo(tmp_path / "repo")
    with pytest.raises(_git.GitError) as err:
        _git.git(str(repo), "rev-parse", "--verify", "no-such-ref")
    assert err.value.msg.startswith("git: ") and err.value.needs_context is True


@pytest.mark.parametrize("url, masked, secrets", [
    ("https://user:tok3n@git.example.com/team/web.git", "https://user:***@git.example.com/team/web.git", ["tok3n"]),
    ("https://ghp_abc123@github.com/team/web.git", "https://***@github.com/team/web.git", ["ghp_abc123"]),
    ("http://u:p%40ss@h:8080/r", "http://u:***@h:8080/r", ["p%40ss"]),
    # git and curl take the userinfo up to the last "@" of the authority.
    ("https://u:p@ss@host/x", "https://u:***@host/x", ["p@ss"]),
    ("HTTPS://U:P@H/x", "HTTPS://U:***@H/x", ["P"]),
    ("https://:tok@h/x", "https://:***@h/x", ["tok"]),
    ("ssh://deploy:pw@git.example.com/web.git", "ssh://deploy:***@git.example.com/web.git", ["pw"]),
    # A user name alone is no secret outside HTTP(S): ssh and scp-like forms are kept.
    ("ssh://git@git.example.com:2222/web.git", "ssh://git@git.example.com:2222/web.git", []),
    ("git@git.example.com:team/web.git", "git@git.example.com:team/web.git", []),
    ("https://git.example.com/team/web.git", "https://git.example.com/team/web.git", []),
    ("file:///srv/git/web.git", "file:///srv/git/web.git", []),
    ("/srv/git/web.git", "/srv/git/web.git", []),
    ("", "", []),
])
def test_mask_url(url, masked, secrets):
    assert mask_url(url) == masked
    assert url_secrets(url) == secrets
    assert mask_url(masked) == masked


def test_mask_url_in_a_message():
    text = ("fatal: repository 'https://user:tok3n@h/r.git/' not found; "
            "see https://t0ken@h2/x and mail a@b, git@h:x")
    assert mask_url(text) == ("fatal: repository 'https://user:***@h/r.git/' not found; "
                              "see https://***@h2/x and mail a@b, git@h:x")


def test_git_error_masks_credentials():
    err = "fatal: unable to access 'https://user:tok3n@127.0.0.1:1/x.git/': Failed to connect\n"
    assert _deploy_state.git_error(128, err) == "fatal: unable to access 'https://user:***@127.0.0.1:1/x.git/': Failed to connect"


def test_answers_are_known_by_the_masked_repository():
    """state=resolve returns the masked URL; state=check looks its answer up by the same key."""
    source = {"app": "web", "repo": "https://user:tok3n@git.example.com/web.git", "version": "main"}
    assert _deploy_state.remote_key(source) == ("https://user:***@git.example.com/web.git", "main")
    assert _deploy_state.remote_key(dict(source, version=None)) == ("https://user:***@git.example.com/web.git", "HEAD")
