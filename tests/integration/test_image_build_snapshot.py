"""appfleet.docker.image_build builds from a snapshot of what its source id hashed.

BuildKit reads a context file when its COPY runs. A checkout of another commit in the
same work tree while the build runs (another run, a consumer's own play) must not put
that commit's files into the image tagged for the first one; and the snapshot is gone
after the build, whether it worked or failed, and after a run that was killed.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import threading
import time

import pytest

from conftest import process_argvs, run_module
# busybox_image is a fixture, used by name.
from images.helpers import (  # noqa: F401 pylint: disable=unused-import
    BUSYBOX_IMAGE,
    LABEL_APP,
    LABEL_GIT_COMMIT,
    busybox_image,
    cleanup,
    git,
    image_or_none,
    write_context,
)

RACE = "afa-build-snap-race"
FAIL = "afa-build-snap-fail"
APPS = [RACE, FAIL]
SNAPSHOT_ROOT = "/var/tmp"
SNAPSHOT_PREFIX = "appfleet-snapshot-"


@pytest.fixture(scope="module", autouse=True)
def _clean(docker_client, busybox_image):
    cleanup(docker_client, apps=APPS, repos=["afa-test/" + a for a in APPS])
    yield
    cleanup(docker_client, apps=APPS, repos=["afa-test/" + a for a in APPS])


def _build_argvs(app):
    """The argv of each running docker CLI build of ``app`` (its label names the app)."""
    marker = "%s=%s" % (LABEL_APP, app)
    return [(pid, [arg for arg in argv if arg]) for pid, argv in process_argvs()
            if marker in argv and "build" in argv]


class BuildInBackground(object):
    """image_build run in a thread; ``wait_for_builder`` returns once the docker CLI builds."""

    def __init__(self, args):
        self.result = None
        self.thread = threading.Thread(target=self._run, args=(args,), daemon=True)
        self.thread.start()

    def _run(self, args):
        self.result = run_module("image_build", args)

    def wait_for_builder(self, app, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.thread.is_alive():
            found = _build_argvs(app)
            if found:
                return found[0]
            time.sleep(0.02)
        raise AssertionError("the docker CLI never built %s: %s" % (app, self.join()))

    def join(self, timeout=300):
        self.thread.join(timeout)
        return self.result


def _repo_with_two_commits(path, nonce):
    """A work tree at commit X; Y changes the file the Dockerfile copies after a slow step."""
    ctx = write_context(path, """
        FROM %s
        RUN echo %s && sleep 4
        COPY index.html /www/index.html
    """ % (BUSYBOX_IMAGE, nonce), {"index.html": "commit X\n"})
    git(ctx, "init", "-q", "-b", "main")
    git(ctx, "add", "-A")
    git(ctx, "commit", "-qm", "X")
    x = git(ctx, "rev-parse", "HEAD")
    (ctx / "index.html").write_text("commit Y\n")
    git(ctx, "commit", "-qam", "Y")
    y = git(ctx, "rev-parse", "HEAD")
    git(ctx, "checkout", "-q", x)
    return ctx, x, y


def _file_in(docker_client, image, path):
    return docker_client.containers.run(image, ["cat", path], remove=True).decode()


def test_checkout_during_the_build_does_not_reach_the_image(docker_client, tmp_path):
    # A nonce in the slow step: a layer cached by an earlier run would skip the sleep.
    ctx, x, y = _repo_with_two_commits(tmp_path / "race", "afa-%s-%s" % (os.getpid(), time.time()))
    args = dict(name="afa-test/" + RACE, app=RACE, context=str(ctx), builder="buildkit")
    run = BuildInBackground(args)
    pid, argv = run.wait_for_builder(RACE)
    # The source id is computed, the builder runs its slow step: move the work tree to Y.
    git(ctx, "checkout", "-q", y)
    assert os.path.exists("/proc/%s" % pid), "the build ended before the checkout: this test would prove nothing"
    res = run.join()
    assert res is not None and res.get("failed") is not True, res and res.get("msg")
    image = res["image"]
    assert image["built"] is True and image["git_commit"] == x
    assert docker_client.images.get(image["tag"]).labels[LABEL_GIT_COMMIT] == x
    assert _file_in(docker_client, image["tag"], "/www/index.html") == "commit X\n"

    # The builder read a private snapshot, gone now.
    context = argv[-1]
    assert context.startswith(os.path.join(SNAPSHOT_ROOT, SNAPSHOT_PREFIX)) and context != str(ctx), argv
    assert not os.path.exists(os.path.dirname(context))

    # X checked out again (a later deploy or rollback of X) finds that image: it holds X's file.
    git(ctx, "checkout", "-q", x)
    again = run_module("image_build", args, check=True)
    assert again["changed"] is False and again["image"]["id"] == image["id"]


def _snapshot_dir(locked):
    """A snapshot directory as a run leaves it: killed (lock free), or still building (lock held)."""
    path = tempfile.mkdtemp(prefix=SNAPSHOT_PREFIX + "afa-", dir=SNAPSHOT_ROOT)
    os.mkdir(os.path.join(path, "context"))
    fd = os.open(os.path.join(path, "lock"), os.O_RDWR | os.O_CREAT, 0o600)
    if locked:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return path, fd
    os.close(fd)
    return path, None


def test_snapshot_is_removed_after_a_failed_build_and_after_a_killed_run(docker_client, tmp_path):
    ctx = write_context(tmp_path / "fail", """
        FROM %s
        COPY index.html /www/index.html
        RUN sleep 1 && echo afa-snap-boom && exit 3
    """ % BUSYBOX_IMAGE, {"index.html": "x\n"})
    killed, _none = _snapshot_dir(locked=False)
    live, live_fd = _snapshot_dir(locked=True)
    try:
        run = BuildInBackground(dict(name="afa-test/" + FAIL, app=FAIL, context=str(ctx), builder="buildkit"))
        _pid, argv = run.wait_for_builder(FAIL)
        context = argv[-1]
        assert context.startswith(os.path.join(SNAPSHOT_ROOT, SNAPSHOT_PREFIX)), argv
        assert os.stat(os.path.dirname(context)).st_mode & 0o777 == 0o700
        res = run.join()
        assert res.get("failed") is True and "afa-snap-boom" in "\n".join(res["build_log"]), res.get("msg")
        assert not os.path.exists(os.path.dirname(context)), "the failed build's snapshot is left"
        assert not os.path.exists(killed), "the killed run's snapshot is left"
        assert os.path.isdir(live), "a running build's snapshot was removed"
    finally:
        if live_fd is not None:
            os.close(live_fd)
        for path in (killed, live):
            if os.path.isdir(path):
                for root, dirs, files in os.walk(path, topdown=False):
                    for name in files:
                        os.unlink(os.path.join(root, name))
                    for name in dirs:
                        os.rmdir(os.path.join(root, name))
                os.rmdir(path)
