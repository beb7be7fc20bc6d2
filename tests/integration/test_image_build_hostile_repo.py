"""appfleet.docker.image_build on a repository that tries to run code on the host.

A repository author commits a directory that looks like a git directory (HEAD,
objects/, refs/, a config with core.worktree=. and core.fsmonitor=<payload>, and
hooks). A git command run in or below that directory with plain discovery takes it
for the repository and runs the payload. The module must run git only on the
checkout's own .git: the payload never runs, the build works and the source id is
the real commit.
"""

from __future__ import annotations

import os
import time
import subprocess

import pytest

from conftest import run_module
# busybox_image is a fixture, used by name.
from images.helpers import (  # noqa: F401 pylint: disable=unused-import
    BUSYBOX_IMAGE,
    LABEL_GIT_COMMIT,
    app_image_ids,
    busybox_image,
    cleanup,
    git,
    image_or_none,
    write_context,
)

APP = "afa-build-hostile"
REPO_NAME = "afa-test/" + APP
REFUSED = "afa-build-refused"
DOCKERFILE = """
    FROM %s
    COPY index.html /www/index.html
""" % BUSYBOX_IMAGE
HOOKS = ("pre-commit", "post-checkout", "post-index-change", "reference-transaction", "fsmonitor-watchman")


@pytest.fixture(scope="module", autouse=True)
def _clean(docker_client, busybox_image):
    cleanup(docker_client, apps=[APP, REFUSED], repos=[REPO_NAME, "afa-test/" + REFUSED])
    yield
    cleanup(docker_client, apps=[APP, REFUSED], repos=[REPO_NAME, "afa-test/" + REFUSED])


def plant_fake_git_dir(path, marker):
    """Make ``path`` look like a git directory whose work tree is itself and whose
    fsmonitor and hooks write ``marker``."""
    payload = "touch %s" % marker
    for sub in ("objects", "refs", "hooks"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    (path / "objects" / "keep").write_text("")
    (path / "refs" / "keep").write_text("")
    (path / "HEAD").write_text("ref: refs/heads/main\n")
    (path / "config").write_text(
        "[core]\n\trepositoryformatversion = 0\n\tbare = false\n\tworktree = .\n"
        "\tfsmonitor = \"%s; false\"\n\thooksPath = hooks\n" % payload)
    for hook in HOOKS:
        (path / "hooks" / hook).write_text("#!/bin/sh\n%s\n" % payload)
        os.chmod(path / "hooks" / hook, 0o755)


def fake_git_dir_bites(path, marker):
    """Show that the planted directory is a working trap for plain git discovery."""
    subprocess.run(["git", "-c", "safe.directory=*", "-C", str(path), "status"],
                   capture_output=True, check=False)
    bites = marker.exists()
    if bites:
        marker.unlink()
    return bites


def hostile_repo(tmp_path, layout):
    """A repository with the trap; returns (work tree or None, build context, marker)."""
    marker = tmp_path / "markers" / "payload-ran"
    marker.parent.mkdir()
    top = tmp_path / "repo"
    trap = top / "app"
    # The context is the trap itself, or a directory below it.
    ctx = trap if layout != "below the trap" else trap / "web"
    write_context(ctx, DOCKERFILE, {"index.html": "hostile %s\n" % layout})
    plant_fake_git_dir(trap, marker)
    if layout == "no checkout around it":
        return None, ctx, marker
    git(top, "init", "-q", "-b", "main")
    git(top, "add", "-A")
    git(top, "commit", "-qm", "a trap")
    return top, ctx, marker


LAYOUTS = ["context is the trap", "below the trap", "no checkout around it"]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_fake_git_dir_runs_nothing_and_the_build_works(docker_client, tmp_path, layout):
    top, ctx, marker = hostile_repo(tmp_path, layout)
    assert fake_git_dir_bites(ctx, marker), "the trap does not work: this test would prove nothing"

    args = dict(name=REPO_NAME, app=APP, context=str(ctx))
    check = run_module("image_build", args, check=True)
    built = run_module("image_build", args)
    again = run_module("image_build", args)
    assert not marker.exists(), "the repository's payload ran"
    assert os.listdir(marker.parent) == []

    for res in (check, built, again):
        assert res.get("failed") is not True, res.get("msg")
    assert check["changed"] is True and built["changed"] is True and again["changed"] is False
    image = built["image"]
    assert image["built"] is True and again["image"]["id"] == image["id"]
    assert image["source_id"] == check["image"]["source_id"] == again["image"]["source_id"]
    label = docker_client.images.get(image["tag"]).labels.get(LABEL_GIT_COMMIT)
    if top is None:
        # no work tree: the context counts by content, no commit is claimed
        assert image["git_commit"] is None and label is None
    else:
        # the checkout's own commit, not anything the fake git directory says
        head = git(top, "rev-parse", "HEAD")
        assert image["git_commit"] == head == label and image["dirty"] is False
    out = docker_client.containers.run(image["id"], ["cat", "/www/index.html"], remove=True)
    assert out.decode() == "hostile %s\n" % layout


@pytest.mark.parametrize("target", ["plain directory", "another checkout"])
def test_context_through_a_symlink_out_of_the_checkout_is_refused(docker_client, tmp_path, target):
    outside = write_context(tmp_path / "outside", DOCKERFILE, {"index.html": "host files\n"})
    if target == "another checkout":
        git(outside, "init", "-q")
        git(outside, "add", "-A")
        git(outside, "commit", "-qm", "someone else's")
    top = write_context(tmp_path / "repo", DOCKERFILE, {"index.html": "repo\n"})
    (top / "app").symlink_to(outside)
    git(top, "init", "-q")
    git(top, "add", "-A")
    git(top, "commit", "-qm", "a link out")
    res = run_module("image_build", dict(name="afa-test/" + REFUSED, app=REFUSED, context=str(top / "app")))
    assert res.get("failed") is True
    assert "app %s: context %s" % (REFUSED, top / "app") in res["msg"] and "outside it" in res["msg"]
    assert app_image_ids(docker_client, REFUSED) == []


def test_dockerfile_linked_out_of_the_context_is_refused(docker_client, tmp_path):
    write_context(tmp_path, DOCKERFILE)
    ctx = write_context(tmp_path / "ctx", DOCKERFILE, {"index.html": "x\n"})
    (ctx / "Linked.Dockerfile").symlink_to(tmp_path / "Dockerfile")
    res = run_module("image_build", dict(name="afa-test/" + REFUSED, app=REFUSED, context=str(ctx),
                                         dockerfile="Linked.Dockerfile"))
    assert res.get("failed") is True
    assert "app %s: dockerfile Linked.Dockerfile resolves to %s, outside context" % (REFUSED, tmp_path / "Dockerfile") \
        in res["msg"], res["msg"]
    assert app_image_ids(docker_client, REFUSED) == []


@pytest.mark.parametrize("target", ["/dev/zero", "a host file"])
def test_dockerignore_linked_out_is_refused_at_once(docker_client, tmp_path, target):
    secret = tmp_path / "host" / "shadow"
    secret.parent.mkdir()
    secret.write_text("root:$6$not-for-the-image:19000:0:99999:7:::\n")
    link = "/dev/zero" if target == "/dev/zero" else str(secret)
    top = write_context(tmp_path / "repo", DOCKERFILE, {"index.html": "x\n"})
    (top / ".dockerignore").symlink_to(link)
    git(top, "init", "-q")
    git(top, "add", "-A")
    git(top, "commit", "-qm", "a link out")
    started = time.monotonic()
    res = run_module("image_build", dict(name="afa-test/" + REFUSED, app=REFUSED, context=str(top)), timeout=60)
    # the module process itself takes a while to start; a read of /dev/zero would never end
    assert time.monotonic() - started < 30
    assert res.get("failed") is True
    assert res["msg"] == ("app %s: .dockerignore is a symbolic link (to %s); a repository's .dockerignore "
                          "must be a regular file inside the build context" % (REFUSED, link)), res["msg"]
    assert "not-for-the-image" not in str(res)
    assert app_image_ids(docker_client, REFUSED) == []


def test_refused_before_any_base_is_pulled(docker_client, tmp_path):
    """The base is absent and its registry (127.0.0.1:1) answers nothing: had the module tried to
    pull it before reading .dockerignore, it would fail on the pull. It fails on the file."""
    base = "127.0.0.1:1/afa-absent/base:1"
    assert image_or_none(docker_client, base) is None
    top = write_context(tmp_path / "repo", "FROM %s\nCOPY index.html /www/index.html\n" % base, {"index.html": "x\n"})
    (top / ".dockerignore").symlink_to("/dev/zero")
    git(top, "init", "-q")
    git(top, "add", "-A")
    git(top, "commit", "-qm", "a link out and an absent base")
    res = run_module("image_build", dict(name="afa-test/" + REFUSED, app=REFUSED, context=str(top)), timeout=60)
    assert res.get("failed") is True
    assert res["msg"] == ("app %s: .dockerignore is a symbolic link (to /dev/zero); a repository's .dockerignore "
                          "must be a regular file inside the build context" % REFUSED), res["msg"]
    assert image_or_none(docker_client, base) is None
    assert app_image_ids(docker_client, REFUSED) == []
