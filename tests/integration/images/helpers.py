"""Helpers for the image_build / app_info / image_prune module tests.

Everything these tests create is named with the ``afa-`` prefix: images
``afa-test/...``, apps ``afa-...``, containers ``afa-...``.

The base image ``afa-test/busybox:1`` is imported from the host's busybox-static
binary (no registry needed) once and kept across runs.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import textwrap

import pytest

from conftest import machine_lock

BUSYBOX_IMAGE = "afa-test/busybox:1"
BUSYBOX_BIN = "/bin/busybox"
APPLETS = ["sh", "cat", "cp", "echo", "false", "true", "httpd", "ls", "mkdir", "sleep", "test", "wc"]

LABEL_APP = "io.appfleet.app"
LABEL_SOURCE_ID = "io.appfleet.source-id"
LABEL_GIT_COMMIT = "io.appfleet.git-commit"
LABEL_BUILT_AT = "io.appfleet.built-at"
LABEL_PREVIOUS_IMAGE = "io.appfleet.previous-image"
LABEL_CONFIG_HASH = "io.appfleet.config-hash"


def _rootfs_tar():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in ("bin", "tmp", "www"):
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o1777 if d == "tmp" else 0o755
            tar.addfile(info)
        tar.add(BUSYBOX_BIN, arcname="bin/busybox")
        for applet in APPLETS:
            info = tarfile.TarInfo("bin/" + applet)
            info.type = tarfile.SYMTYPE
            info.linkname = "busybox"
            tar.addfile(info)
    return buf.getvalue()


@pytest.fixture(scope="session")
def busybox_image(docker_client):
    """Id of the local busybox base image, imported once when missing."""
    import docker

    # One xdist worker imports it, the others wait and find it: an import per worker would
    # give the tag a new id under the images another worker has just built on it.
    with machine_lock("busybox-image"):
        try:
            return docker_client.images.get(BUSYBOX_IMAGE).id
        except docker.errors.ImageNotFound:
            pass
        if not os.path.exists(BUSYBOX_BIN):
            pytest.fail("these tests need %s: apt-get install -y busybox-static" % BUSYBOX_BIN)
        repo, tag = BUSYBOX_IMAGE.split(":")
        docker_client.api.import_image_from_data(_rootfs_tar(), repository=repo, tag=tag,
                                                 changes=['CMD ["/bin/sh"]'])
        return docker_client.images.get(BUSYBOX_IMAGE).id


def write_context(path, dockerfile, files=None):
    """Create a build context: Dockerfile plus ``files`` ({relpath: text})."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "Dockerfile").write_text(textwrap.dedent(dockerfile).lstrip())
    for rel, text in (files or {}).items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_text(text)
    return path


def git(path, *args):
    return subprocess.run(["git", "-C", str(path), "-c", "user.email=t@example.invalid",
                           "-c", "user.name=t"] + list(args),
                          check=True, capture_output=True, text=True).stdout.strip()


def image_or_none(client, ref):
    import docker

    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None


def app_image_ids(client, app):
    return sorted(i.id for i in client.images.list(filters={"label": "%s=%s" % (LABEL_APP, app)}))


def cleanup(client, apps=(), containers=(), repos=()):
    """Remove this test's containers, then every image of its apps and repositories."""
    import docker

    for name in containers:
        try:
            client.containers.get(name).remove(force=True)
        except docker.errors.NotFound:
            pass
    ids = set()
    for app in apps:
        ids.update(app_image_ids(client, app))
    for repo in repos:
        ids.update(i.id for i in client.images.list(name=repo))
    for image_id in ids:
        try:
            client.images.remove(image_id, force=True)
        except docker.errors.NotFound:
            pass


def copy_tree(src, dst):
    shutil.copytree(src, dst)
    return dst


def labelled_image(client, base, app, day, tag=None, extra_labels=None):
    """A tiny image of ``app`` built (API builder, no context) with a fixed build time label.

    ``day`` orders the images: the build time label is 2024-01-<day>.
    """
    labels = {LABEL_APP: app, LABEL_BUILT_AT: "2024-01-%02dT00:00:00.000000Z" % day,
              LABEL_SOURCE_ID: "%064x" % day}
    labels.update(extra_labels or {})
    dockerfile = io.BytesIO(("FROM %s\nLABEL afa.day=%d\n" % (base, day)).encode())
    image, _logs = client.images.build(fileobj=dockerfile, labels=labels, tag=tag, rm=True, pull=False)
    return image.id


def ok(res):
    """A module result that did not fail (its message shown when it did)."""
    assert res.get("failed") is not True, res.get("msg")
    return res
