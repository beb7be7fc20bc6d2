"""mask_url: the one owner of how a repository URL with credentials is shown."""

from __future__ import annotations

import pytest

from ansible_collections.appfleet.docker.plugins.module_utils import _deploy_state
from ansible_collections.appfleet.docker.plugins.module_utils._git import mask_url, url_secrets


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
