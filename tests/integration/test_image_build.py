"""appfleet.docker.image_build against the real local engine."""

from __future__ import annotations

import io
import os
import threading
import time

import pytest

from conftest import process_argvs, run_module, run_modules
# busybox_image is a fixture, used by name.
from images.helpers import (  # noqa: F401 pylint: disable=unused-import
    BUSYBOX_IMAGE,
    LABEL_APP,
    LABEL_BUILT_AT,
    LABEL_GIT_COMMIT,
    LABEL_SOURCE_ID,
    app_image_ids,
    _rootfs_tar,
    busybox_image,
    cleanup,
    git,
    image_or_none,
    write_context,
)
from images.registry import Registry

WEB_DOCKERFILE = """
    FROM %s
    COPY index.html /www/index.html
    CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]
""" % BUSYBOX_IMAGE

APPS = ["afa-build-web", "afa-build-git", "afa-build-fail", "afa-build-bk", "afa-build-api", "afa-build-tag",
        "afa-build-ign", "afa-build-pull-api", "afa-build-pull-buildkit"]


@pytest.fixture(scope="module", autouse=True)
def _clean(docker_client, busybox_image):
    cleanup(docker_client, apps=APPS, repos=["afa-test/" + a for a in APPS])
    yield
    cleanup(docker_client, apps=APPS, repos=["afa-test/" + a for a in APPS])


def build(ctx, app, check=False, diff=False, **extra):
    args = dict(name="afa-test/" + app, app=app, context=str(ctx))
    args.update(extra)
    return run_module("image_build", args, check=check, diff=diff)


def test_check_apply_apply_again(docker_client, tmp_path):
    app = "afa-build-web"
    ctx = write_context(tmp_path / "web", WEB_DOCKERFILE, {"index.html": "v1\n", "notes.log": "x\n"})
    (ctx / ".dockerignore").write_text("*.log\n")

    res = build(ctx, app, check=True)
    assert res.get("failed") is not True, res.get("msg")
    assert res["changed"] is True and res["image"]["built"] is False
    tag = res["image"]["tag"]
    assert tag == "afa-test/%s:%s" % (app, res["image"]["source_id"][:12])
    assert image_or_none(docker_client, tag) is None, "check mode must not build"

    res = build(ctx, app)
    assert res.get("failed") is not True, res.get("msg")
    assert res["changed"] is True and res["image"]["built"] is True
    assert res["image"]["tag"] == tag
    img = image_or_none(docker_client, tag)
    assert img is not None and img.id == res["image"]["id"]
    labels = img.labels
    assert labels[LABEL_APP] == app
    assert labels[LABEL_SOURCE_ID] == res["image"]["source_id"]
    assert labels[LABEL_BUILT_AT].endswith("Z")
    assert LABEL_GIT_COMMIT not in labels
    assert image_or_none(docker_client, "afa-test/%s:latest" % app) is None, "latest must not move implicitly"

    again = build(ctx, app)
    assert again["changed"] is False and again["image"]["built"] is False
    assert again["image"]["id"] == img.id and again["image"]["tag"] == tag

    # a .dockerignored file does not count, a real file does
    (ctx / "notes.log").write_text("y\n")
    assert build(ctx, app, check=True)["changed"] is False
    (ctx / "index.html").write_text("v2\n")
    diff = build(ctx, app, check=True, diff=True)
    assert diff["changed"] is True
    assert diff["diff"]["before"]["source_id"] == img.labels[LABEL_SOURCE_ID]
    assert diff["diff"]["after"]["source_id"] == diff["image"]["source_id"] != img.labels[LABEL_SOURCE_ID]
    assert app_image_ids(docker_client, app) == [img.id], "check mode must not build"


def test_git_context_labels_and_rebuild_on_commit(docker_client, tmp_path):
    app = "afa-build-git"
    ctx = write_context(tmp_path / "repo", WEB_DOCKERFILE, {"index.html": "v1\n"})
    git(ctx, "init", "-q")
    git(ctx, "add", "-A")
    git(ctx, "commit", "-qm", "v1")
    head = git(ctx, "rev-parse", "HEAD")

    first = build(ctx, app)
    assert first["changed"] is True, first.get("msg")
    assert first["image"]["git_commit"] == head and first["image"]["dirty"] is False
    assert docker_client.images.get(first["image"]["tag"]).labels[LABEL_GIT_COMMIT] == head
    assert build(ctx, app)["changed"] is False

    (ctx / "index.html").write_text("v2\n")
    dirty = build(ctx, app)
    assert dirty["changed"] is True and dirty["image"]["dirty"] is True
    git(ctx, "commit", "-qam", "v2")
    committed = build(ctx, app)
    assert committed["changed"] is True and committed["image"]["dirty"] is False
    assert committed["image"]["git_commit"] == git(ctx, "rev-parse", "HEAD") != head
    assert len({first["image"]["id"], dirty["image"]["id"], committed["image"]["id"]}) == 3
    assert build(ctx, app)["changed"] is False


def test_failed_build_leaves_previous_image_and_tag(docker_client, tmp_path):
    app = "afa-build-fail"
    ctx = write_context(tmp_path / "fail", WEB_DOCKERFILE, {"index.html": "v1\n"})
    good = build(ctx, app, also_tag=["latest"])
    assert good["changed"] is True, good.get("msg")
    before = app_image_ids(docker_client, app)

    (ctx / "Dockerfile").write_text((ctx / "Dockerfile").read_text() + "RUN echo afa-boom && exit 7\n")
    (ctx / "index.html").write_text("v2\n")
    bad = build(ctx, app, also_tag=["latest"])
    assert bad.get("failed") is True
    msg = bad["msg"]
    assert "app %s: image build failed" % app in msg
    assert "RUN echo afa-boom && exit 7" in msg and bad["failed_step"] == "RUN echo afa-boom && exit 7"
    assert "afa-boom" in "\n".join(bad["build_log"])
    # nothing tagged, nothing moved
    assert app_image_ids(docker_client, app) == before
    assert docker_client.images.get("afa-test/%s:latest" % app).id == good["image"]["id"]
    assert docker_client.images.get(good["image"]["tag"]).id == good["image"]["id"]
    assert image_or_none(docker_client, "afa-test/%s:%s" % (app, bad["source_id"][:12])) is None


def test_buildkit_cache_mount_builds(docker_client, tmp_path):
    app = "afa-build-bk"
    ctx = write_context(tmp_path / "bk", """
        FROM %s
        RUN --mount=type=cache,target=/cache echo cached-by-buildkit > /cache/x && cp /cache/x /out
    """ % BUSYBOX_IMAGE)
    res = build(ctx, app)
    assert res.get("failed") is not True, res.get("msg")
    assert res["image"]["built"] is True and res["image"]["builder"] == "buildkit"
    out = docker_client.containers.run(res["image"]["id"], ["cat", "/out"], remove=True)
    assert out.decode().strip() == "cached-by-buildkit"
    assert build(ctx, app)["changed"] is False


def test_api_builder(docker_client, tmp_path):
    app = "afa-build-api"
    ctx = write_context(tmp_path / "api", WEB_DOCKERFILE, {"index.html": "api\n"})
    res = build(ctx, app, builder="api", build_args={"UNUSED": "1"})
    assert res.get("failed") is not True, res.get("msg")
    assert res["image"]["builder"] == "api" and res["image"]["built"] is True
    assert docker_client.images.get(res["image"]["tag"]).labels[LABEL_APP] == app
    # the classic builder cannot do BuildKit syntax: it fails and tags nothing
    write_context(ctx, "FROM %s\nRUN --mount=type=cache,target=/c true\n" % BUSYBOX_IMAGE)
    bad = build(ctx, app, builder="api")
    assert bad.get("failed") is True and "BuildKit" in bad["msg"]
    assert app_image_ids(docker_client, app) == [res["image"]["id"]]


def test_also_tag_and_force(docker_client, tmp_path):
    app = "afa-build-tag"
    ctx = write_context(tmp_path / "tag", WEB_DOCKERFILE, {"index.html": "t\n"})
    first = build(ctx, app)
    assert image_or_none(docker_client, "afa-test/%s:latest" % app) is None
    tagged = build(ctx, app, also_tag=["latest"])
    assert tagged["changed"] is True and tagged["image"]["built"] is False
    assert docker_client.images.get("afa-test/%s:latest" % app).id == first["image"]["id"]
    assert build(ctx, app, also_tag=["latest"])["changed"] is False
    forced = build(ctx, app, force=True)
    assert forced["changed"] is True and forced["image"]["built"] is True
    assert docker_client.images.get(forced["image"]["tag"]).id == forced["image"]["id"] != first["image"]["id"]


BAD_INPUTS = [
    (dict(name="Bad Name"), ["name", "not a valid image name"]),
    (dict(name="afa-test/x:1.0"), ["name", "no tag"]),
    (dict(context="/nonexistent/afa"), ["context", "not a directory"]),
    (dict(dockerfile="Missing.Dockerfile"), ["dockerfile", "not found"]),
    (dict(dockerfile="/etc/hostname"), ["dockerfile '/etc/hostname' must be a path relative to context"]),
    (dict(dockerfile="../Dockerfile"), ["dockerfile '../Dockerfile'", "without '..'"]),
    (dict(dockerfile="sub/../../Dockerfile"), ["dockerfile 'sub/../../Dockerfile'", "without '..'"]),
    (dict(also_tag=["-bad"]), ["also_tag", "not a valid image tag"]),
    (dict(builder="kaniko"), ["builder"]),
    (dict(build_args={"DOCKER_HOST": "tcp://elsewhere:2375"}),
     ["build_args key DOCKER_HOST is a variable the docker CLI reads itself", "builder=api"]),
]


@pytest.fixture(scope="module")
def bad_input_results(tmp_path_factory):
    """Every BAD_INPUTS case run once, in one playbook (one Ansible start, not one per case)."""
    ctx = write_context(tmp_path_factory.mktemp("bad"), WEB_DOCKERFILE, {"index.html": "x\n"})
    return run_modules("image_build", [dict(dict(name="afa-test/afa-build-bad", app="afa-build-bad", context=str(ctx)),
                                            **args) for args, _words in BAD_INPUTS])


@pytest.mark.parametrize("args, words", BAD_INPUTS)
def test_bad_input_fails_before_the_engine(docker_client, bad_input_results, args, words):
    res = bad_input_results[BAD_INPUTS.index((args, words))]
    assert res.get("failed") is True
    for word in words:
        assert word in res["msg"]
    assert app_image_ids(docker_client, "afa-build-bad") == []


def test_refreshed_base_image_triggers_rebuild(docker_client, tmp_path):
    app = "afa-build-base"
    base = "afa-test/afa-build-base-parent:1"
    cleanup(docker_client, apps=[app], repos=["afa-test/" + app, "afa-test/afa-build-base-parent"])
    try:
        docker_client.images.build(fileobj=_dockerfile("FROM %s\nLABEL rev=1\n" % BUSYBOX_IMAGE), tag=base, rm=True)
        ctx = write_context(tmp_path / "base", "FROM %s\nCOPY index.html /www/\n" % base, {"index.html": "x\n"})
        first = build(ctx, app)
        assert first["changed"] is True, first.get("msg")
        assert build(ctx, app)["changed"] is False
        # the same tag now names a different base image: the app must be rebuilt on it
        docker_client.images.build(fileobj=_dockerfile("FROM %s\nLABEL rev=2\n" % BUSYBOX_IMAGE), tag=base, rm=True)
        second = build(ctx, app)
        assert second["changed"] is True and second["image"]["source_id"] != first["image"]["source_id"]
        assert docker_client.images.get(second["image"]["id"]).labels["rev"] == "2"
    finally:
        cleanup(docker_client, apps=[app], repos=["afa-test/" + app, "afa-test/afa-build-base-parent"])


def _dockerfile(text):
    return io.BytesIO(text.encode())


def test_commit_the_builder_does_not_see_builds_nothing(docker_client, tmp_path):
    app = "afa-build-ign"
    repo = tmp_path / "mono"
    files = {"index.html": "v1\n", "notes.log": "1\n", "README.md": "web\n"}
    ctx = write_context(repo / "web", WEB_DOCKERFILE, files)
    (ctx / ".dockerignore").write_text("*.log\nREADME.md\n")
    write_context(repo / "api", WEB_DOCKERFILE, {"index.html": "api\n"})
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "v1")
    first = build(ctx, app)
    assert first["changed"] is True and first["image"]["built"] is True, first.get("msg")

    for rel, msg in (("web/notes.log", "ignored file"), ("web/README.md", "ignored readme"),
                     ("api/index.html", "sibling app")):
        (repo / rel).write_text("changed by %s\n" % msg)
        git(repo, "commit", "-qam", msg)
        assert build(ctx, app, check=True)["changed"] is False, msg
        res = build(ctx, app)
        assert res["changed"] is False and res["image"]["built"] is False, msg
        assert res["image"]["id"] == first["image"]["id"] and res["image"]["source_id"] == first["image"]["source_id"]
        # the commit reported is the one checked out; the image keeps the one it was built from
        assert res["image"]["git_commit"] == git(repo, "rev-parse", "HEAD") != first["image"]["git_commit"]
    assert app_image_ids(docker_client, app) == [first["image"]["id"]]

    (ctx / "index.html").write_text("v2\n")
    git(repo, "commit", "-qam", "v2")
    second = build(ctx, app)
    assert second["changed"] is True and second["image"]["built"] is True
    out = docker_client.containers.run(second["image"]["id"], ["cat", "/www/index.html"], remove=True)
    assert out.decode() == "v2\n"


@pytest.mark.parametrize("builder", ["api", "buildkit"])
def test_second_run_after_a_build_that_pulled_its_base(docker_client, tmp_path, builder):
    """The base is absent, the build pulls it (from a registry on 127.0.0.1): the API builder
    leaves it in the image store, BuildKit in its own cache. Either way the id the first run
    records is the one the second run computes."""
    app = "afa-build-pull-" + builder
    with Registry("afa-test/%s-base" % app, "1", _rootfs_tar(), "%s %s" % (app, time.time())) as reg:
        try:
            assert image_or_none(docker_client, reg.ref) is None
            ctx = write_context(tmp_path / builder, "FROM %s\nCOPY index.html /www/index.html\n" % reg.ref,
                                {"index.html": builder + "\n"})
            git(ctx, "init", "-q")
            git(ctx, "add", "-A")
            git(ctx, "commit", "-qm", "v1")

            check = build(ctx, app, check=True, builder=builder)
            assert check["changed"] is True and reg.pulls == 0, "check mode must not pull"
            first = build(ctx, app, builder=builder)
            assert first.get("failed") is not True, first.get("msg")
            assert first["image"]["built"] is True and first["image"]["builder"] == builder
            assert reg.pulls >= 1, "the build did not pull its base: this test would prove nothing"
            image = docker_client.images.get(first["image"]["tag"])
            assert image.id == first["image"]["id"]
            assert image.labels[LABEL_SOURCE_ID] == first["image"]["source_id"]
            assert first["image"]["tag"].endswith(":" + first["image"]["source_id"][:12])
            # the base left in the image store (or not) decides the recorded id
            base_now = image_or_none(docker_client, reg.ref)
            if base_now is None:
                assert first["image"]["source_id"] == check["image"]["source_id"]
            else:
                assert base_now.id == reg.image_id
                assert first["image"]["source_id"] != check["image"]["source_id"]
            out = docker_client.containers.run(first["image"]["id"], ["cat", "/www/index.html"], remove=True)
            assert out.decode() == builder + "\n"

            pulls = reg.pulls
            for run in ("check", "second", "third"):
                again = build(ctx, app, check=run == "check", builder=builder)
                assert again["changed"] is False and again["image"]["built"] is False, run
                assert again["image"]["id"] == first["image"]["id"], run
                assert again["image"]["source_id"] == first["image"]["source_id"], run
            assert reg.pulls == pulls, "a run that builds nothing must not pull"
            assert app_image_ids(docker_client, app) == [first["image"]["id"]]
        finally:
            cleanup(docker_client, apps=[app], repos=["afa-test/" + app])
            if image_or_none(docker_client, reg.ref) is not None:
                docker_client.images.remove(reg.ref, force=True)


def _cmdlines_with(marker):
    """The command lines (argv joined by spaces) of the processes whose argv holds ``marker``."""
    return [" ".join(argv) for _pid, argv in process_argvs() if any(marker in arg for arg in argv)]


def test_buildkit_build_arg_reaches_the_image_but_not_argv(docker_client, tmp_path):
    """A build arg's value is in the image (written by RUN), never on any process's command line."""
    app = "afa-build-args-sec3"
    secret = "tok-%d-%s" % (os.getpid(), "x y=z")
    ctx = write_context(tmp_path / "sec3-build-args", """
        FROM %s
        ARG TOKEN
        RUN echo "$TOKEN" > /token && sleep 2
    """ % BUSYBOX_IMAGE)
    seen, stop = [], threading.Event()

    def watch():
        # Every 20 ms while the build runs: the docker CLI's argv names the app (its label).
        while not stop.is_set():
            seen.extend(_cmdlines_with("%s=%s" % (LABEL_APP, app)))
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        res = build(ctx, app, builder="buildkit", build_args={"TOKEN": secret})
        stop.set()
        watcher.join(5)
        assert res.get("failed") is not True, res.get("msg")
        assert res["image"]["builder"] == "buildkit" and res["image"]["built"] is True
        out = docker_client.containers.run(res["image"]["id"], ["cat", "/token"], remove=True)
        assert out.decode().strip() == secret
        builds = [line for line in seen if " build " in line]
        assert builds, "the docker CLI's build process was never seen"
        assert all("--build-arg TOKEN " in line for line in builds), builds
        assert not [line for line in seen if secret in line], seen
    finally:
        stop.set()
        cleanup(docker_client, apps=[app], repos=["afa-test/" + app])
