"""The release log of app_container against the real engine and a private real nginx:
rollback to the previous good release (idempotent), hold after rollback, resume,
named rollback, failed releases. Apps, containers and images are named afr-*."""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import run_module  # noqa: E402  (tests/conftest.py helpers)
pytest.register_assert_rewrite("app_container.fixtures")
from app_container.fixtures import App, Probe  # noqa: E402

# The private nginx and the base test images (afb-app:<variant>) come from there.
pytest_plugins = ["app_container.fixtures"]

# afr-app:<tag> = afb-app:<variant> plus the labels image_build sets: a source id and a git commit.
RELEASES = {
    "v1": ("v1", "a1" * 20),
    "v2": ("v2", "b2" * 20),
    "v3": ("v3", "c3" * 20),
    "v4": ("crash", "d4" * 20),   # never healthy
    "v5": ("v1", "e5" * 20),      # a new source (new image id), serving "version v1"
}


@pytest.fixture(scope="module")
def release_images(app_images, docker_client):
    ids = {}
    for tag, (variant, commit) in RELEASES.items():
        dockerfile = ("FROM afb-app:%s\nLABEL io.appfleet.git-commit=%s "
                      "io.appfleet.source-id=%s\n" % (variant, commit, commit[::-1] + "f" * 24))
        image, _logs = docker_client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag="afr-app:%s" % tag,
                                                  rm=True, forcerm=True)
        ids[tag] = image.id
    return ids


@pytest.fixture
def release_app(request, nginx, state_dir, release_images, docker_client):
    name = "afr-%s-%d" % (request.node.name.replace("test_", "")[:16].replace("_", "-").strip("-"),
                          os.getpid())
    app = App(name, nginx, state_dir, docker_client)
    app.release_dir = Path(tempfile.mkdtemp(prefix="afr-releases-"))
    app.log = app.release_dir / ("%s.json" % name)
    base_args = app.args

    def args(**over):
        return base_args(**dict({"release_dir": str(app.release_dir), "release_by": "tester"}, **over))

    app.args = args
    yield app
    for container in app.containers():
        container.remove(force=True)
    shutil.rmtree(app.secret_dir, ignore_errors=True)
    shutil.rmtree(app.release_dir, ignore_errors=True)


def entries(app):
    return json.loads(app.log.read_text())["releases"]


def deploy(app, tag, **over):
    return run_module("app_container", app.args(image="afr-app:%s" % tag, **over))


def test_release_log_rollback_hold_resume_named(release_app, release_images):
    app, ids = release_app, release_images
    for tag in ("v1", "v2", "v3"):
        res = deploy(app, tag)
        assert res.get("changed") is True, res
        assert res["release"]["image_id"] == ids[tag] and res["release"]["kind"] == "deploy", res
        assert res["release"]["git_commit"] == RELEASES[tag][1] and res["release"]["by"] == "tester"
    assert app.get() == (200, "version v3\n")
    assert oct(app.log.stat().st_mode & 0o777) == "0o644"
    log = entries(app)
    assert [(e["image_id"], e["result"], e["image"]) for e in log] == [
        (ids[t], "serving", "afr-app:%s" % t) for t in ("v1", "v2", "v3")]

    # A release that never becomes healthy: recorded as failed, v3 still serves.
    bad = deploy(app, "v4")
    assert bad.get("failed") and "still serving" in bad["msg"], bad
    assert entries(app)[-1]["image_id"] == ids["v4"] and entries(app)[-1]["result"] == "failed"
    assert app.get() == (200, "version v3\n")

    # Rollback in check mode: says where it would go, changes nothing.
    check = run_module("app_container", app.args(rollback=True), check=True, diff=True)
    assert check.get("changed") is True and check["action"] == "rolled_back", check
    assert check["release"]["image_id"] == ids["v2"]
    assert app.get() == (200, "version v3\n") and len(entries(app)) == 4

    # Rollback: the previous *good* release (v4 failed, skipped), zero failed requests.
    with Probe(app.proxy_port) as probe:
        probe.wait_ok(10)
        back = run_module("app_container", app.args(rollback=True))
    assert back.get("changed") is True and back["action"] == "rolled_back", back
    assert probe.failures == [], probe.failures[:5]
    assert back["container"]["image"] == ids["v2"] and app.get() == (200, "version v2\n")
    log = entries(app)
    assert log[2]["result"] == "rolled_back" and log[-1]["kind"] == "rollback"
    assert log[-1]["image_id"] == ids["v2"] and log[-1]["from"] == log[2]["id"]

    # Again: nothing to do, still v2 (it does not flip back to v3).
    again = run_module("app_container", app.args(rollback=True))
    assert again.get("changed") is False and again["action"] == "unchanged", again
    assert app.get() == (200, "version v2\n") and entries(app) == log

    # A plain deploy of v3 (rolled back from): held, changed=false, a warning says how to resume.
    held = deploy(app, "v3")
    assert held.get("changed") is False, held
    assert held["held"]["release"] == log[-1]["id"] and "resume" in held["held"]["resume"]
    assert any("held on release" in w for w in held.get("warnings", [])), held
    assert app.get() == (200, "version v2\n") and entries(app) == log
    check_held = run_module("app_container", app.args(image="afr-app:v3"), check=True)
    assert check_held.get("changed") is False and check_held["held"], check_held

    # resume: rolls forward to v3.
    resumed = deploy(app, "v3", resume=True)
    assert resumed.get("changed") is True and "held" not in resumed, resumed
    assert app.get() == (200, "version v3\n")
    assert entries(app)[-1]["kind"] == "deploy" and entries(app)[-1]["image_id"] == ids["v3"]

    # Named rollback to v1 by release id, then to v2 by a 7-character git commit prefix.
    v1_id = entries(app)[0]["id"]
    named = run_module("app_container", app.args(rollback_to=v1_id))
    assert named.get("changed") is True and named["release"]["image_id"] == ids["v1"], named
    assert app.get() == (200, "version v1\n")
    same = run_module("app_container", app.args(rollback_to=v1_id))
    assert same.get("changed") is False, same
    by_rev = run_module("app_container", app.args(rollback_to=RELEASES["v2"][1][:7]))
    assert by_rev.get("changed") is True and by_rev["release"]["image_id"] == ids["v2"], by_rev
    assert app.get() == (200, "version v2\n")

    # Unknown release: fails, lists the available ones, changes nothing.
    unknown = run_module("app_container", app.args(rollback_to="0123456789abcdef"))
    assert unknown.get("failed") and "available releases" in unknown["msg"], unknown
    assert RELEASES["v1"][1][:12] in unknown["msg"] and RELEASES["v3"][1][:12] in unknown["msg"]
    assert RELEASES["v4"][1][:12] not in unknown["msg"]   # failed: not a choice
    assert app.get() == (200, "version v2\n")

    # A new source (another image) is not held and ends the hold.
    new = deploy(app, "v5")
    assert new.get("changed") is True and "held" not in new, new
    assert new["container"]["image"] == ids["v5"]
    assert entries(app)[-1]["kind"] == "deploy" and entries(app)[-1]["image_id"] == ids["v5"]
    assert len(entries(app)) <= 20


def test_no_log_falls_back_to_the_label_and_starts_one(release_app, release_images):
    app, ids = release_app, release_images
    deploy(app, "v1")
    deploy(app, "v2")
    app.log.unlink()   # as a container made before the release log
    back = run_module("app_container", app.args(rollback=True))
    assert back.get("changed") is True and back["container"]["image"] == ids["v1"], back
    assert app.get() == (200, "version v1\n")
    log = entries(app)
    assert [(e["image_id"], e["result"], e["kind"]) for e in log] == [
        (ids["v2"], "rolled_back", "deploy"), (ids["v1"], "serving", "rollback")]
    again = run_module("app_container", app.args(rollback=True))
    assert again.get("changed") is False, again


def test_corrupt_log_is_moved_aside_with_a_warning(release_app, release_images):
    app = release_app
    deploy(app, "v1")
    app.log.write_text("{broken")
    res = deploy(app, "v2")
    assert res.get("changed") is True, res
    assert any("moved to" in w and "release log" in w for w in res.get("warnings", [])), res
    assert len(list(app.release_dir.glob("*.json.bad-*"))) == 1
    assert [e["image_id"] for e in entries(app)] == [release_images["v1"], release_images["v2"]]
    assert app.get() == (200, "version v2\n")


def test_rollback_target_pruned_names_the_available_releases(release_app, release_images, docker_client):
    app = release_app
    deploy(app, "v1")
    deploy(app, "v2")
    log = entries(app)
    log[0]["image_id"] = "sha256:" + "0" * 64     # its image is gone from the host
    app.log.write_text(json.dumps({"version": 1, "app": app.name, "releases": log}))
    res = run_module("app_container", app.args(rollback=True))
    assert res.get("failed") and "no longer on this host" in res["msg"], res
    assert "rollback_to" in res["msg"] and RELEASES["v2"][1][:12] in res["msg"]
    assert app.get() == (200, "version v2\n")
