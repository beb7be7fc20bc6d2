"""appfleet.docker.image_archive against the real local engine.

Cheap on purpose (the CI suite is near its time limit): one tiny image for the whole
file, its archive saved once through the SDK, and the error cases in one playbook.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import subprocess
import tarfile

import pytest

from conftest import run_module, run_modules
# busybox_image is a fixture, used by name.
from images.helpers import (  # noqa: F401 pylint: disable=unused-import
    BUSYBOX_IMAGE,
    busybox_image,
    cleanup,
    image_or_none,
    ok,
)

REPO = "afa-test/afa-archive"
TAG = REPO + ":1"
# With expected_id the module loads only an archive root alone can change.
AS_ROOT = os.geteuid() == 0


@pytest.fixture(scope="module")
def image(docker_client, busybox_image):
    """Id of a tiny image of its own (busybox plus a label), removed with every tag of REPO at the end."""
    cleanup(docker_client, repos=[REPO])
    dockerfile = io.BytesIO(("FROM %s\nLABEL afa.archive=1\n" % BUSYBOX_IMAGE).encode())
    built, _logs = docker_client.images.build(fileobj=dockerfile, tag=TAG, rm=True, pull=False)
    yield built.id
    cleanup(docker_client, repos=[REPO])


@pytest.fixture(scope="module")
def saved(docker_client, image, tmp_path_factory):
    """The image's docker save, written by the SDK (not by the module under test)."""
    path = tmp_path_factory.mktemp("saved") / "web.tar"
    with open(str(path), "wb") as handle:
        for chunk in docker_client.api.get_image(TAG):
            handle.write(chunk)
    return path


def tar_images(path):
    """{tag: sha256 of the config blob} of a docker save tarball, read here independently of the module."""
    with tarfile.open(str(path)) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())
        return dict((tag, "sha256:" + hashlib.sha256(tar.extractfile(entry["Config"]).read()).hexdigest())
                    for entry in manifest for tag in entry["RepoTags"])


def archive(check=False, diff=False, **args):
    args.setdefault("name", TAG)
    return run_module("image_archive", args, check=check, diff=diff)


def test_export_check_apply_apply_again(image, tmp_path):
    path = tmp_path / "web.tar"

    res = ok(archive(check=True, diff=True, path=str(path), state="exported"))
    assert res["changed"] is True
    assert res["diff"] == {"before": {str(path): "absent"}, "after": {str(path): image}}
    assert os.listdir(str(tmp_path)) == [], "check mode must write nothing, not even a temporary file"

    res = ok(archive(path=str(path), state="exported"))
    assert res["changed"] is True
    assert res["image"] == {"id": image, "name": TAG}
    assert res["archive"] == {"path": str(path), "size": path.stat().st_size, "image_id": image}
    assert tar_images(path) == {TAG: image}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(str(tmp_path)) == ["web.tar"], "no temporary file left beside the archive"
    before = path.stat()

    again = ok(archive(diff=True, path=str(path), state="exported"))
    assert again["changed"] is False
    assert again["diff"]["before"] == again["diff"]["after"] == {str(path): image}
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (before.st_ino, before.st_mtime_ns, before.st_size)


def test_import_where_the_image_was_removed(docker_client, image, saved):
    docker_client.images.remove(TAG)
    assert image_or_none(docker_client, TAG) is None
    try:
        res = ok(archive(check=True, diff=True, path=str(saved), state="imported"))
        assert res["changed"] is True
        assert res["diff"] == {"before": {TAG: "absent"}, "after": {TAG: image}}
        assert image_or_none(docker_client, TAG) is None, "check mode must load nothing"

        res = ok(archive(path=str(saved), state="imported"))
        assert res["changed"] is True
        assert res["image"] == {"id": image, "name": TAG}
        assert res["archive"] == {"path": str(saved), "size": saved.stat().st_size, "image_id": image}
        assert docker_client.images.get(TAG).id == image

        again = ok(archive(path=str(saved), state="imported"))
        assert again["changed"] is False and again["image"]["id"] == image
    finally:
        if image_or_none(docker_client, TAG) is None:  # put it back for the other tests
            docker_client.api.tag(image, REPO, "1")
    assert docker_client.images.get(TAG).id == image


@pytest.mark.skipif(not AS_ROOT, reason="expected_id needs an archive that root owns")
def test_import_refuses_an_archive_of_another_image(docker_client, image, saved):
    """expected_id: the image id the exporter recorded; another one is refused before any load."""
    other = docker_client.images.get(BUSYBOX_IMAGE).id
    assert other != image
    calls = [dict(name=TAG, path=str(saved), state="imported", expected_id=other),
             dict(name=TAG, path=str(saved), state="imported", expected_id=image)]
    refusal = ("expected_id: %s holds %s as image %s, not the expected image %s; nothing was loaded or tagged; "
               "export the archive again on the host that built the image, or fix expected_id"
               % (saved, TAG, image, other))
    docker_client.images.remove(TAG)
    try:
        for check in (True, False):
            wrong, right = run_modules("image_archive", calls, check=check)
            assert wrong.get("failed") is True and wrong["msg"] == refusal, wrong
            # Run after the refusal: had it tagged anything, this would change nothing.
            assert right.get("failed") is not True and right["changed"] is True, right
            assert right["image"] == {"id": image, "name": TAG}
            if check:
                assert image_or_none(docker_client, TAG) is None, "check mode must load nothing"
        assert docker_client.images.get(TAG).id == image
    finally:
        if image_or_none(docker_client, TAG) is None:  # put it back for the other tests
            docker_client.api.tag(image, REPO, "1")


def test_errors_are_clear_and_change_nothing(docker_client, image, saved, tmp_path):
    corrupt = tmp_path / "corrupt.tar"
    corrupt.write_bytes(os.urandom(8192))
    cut = tmp_path / "cut.tar"
    cut.write_bytes(saved.read_bytes()[:saved.stat().st_size // 2])
    exports = tmp_path / "exports"
    exports.mkdir()
    # expected_id: the archive must be root's alone (the image id checked is the one loaded).
    open_to_all = tmp_path / "open-to-all.tar"
    open_to_all.write_bytes(saved.read_bytes())
    open_to_all.chmod(0o666)
    held = tmp_path / "held.tar"
    held.write_bytes(saved.read_bytes())
    cases = [
        (dict(name=REPO + ":other", path=str(saved), state="imported"),
         ["name: ", str(saved), "does not hold %s:other" % REPO, "it holds %s" % TAG]),
        (dict(path=str(corrupt), state="imported"), ["path: %s is not a docker save archive" % corrupt]),
        (dict(path=str(cut), state="imported"), ["path: %s is damaged" % cut, "truncated"]),
        (dict(path=str(tmp_path / "absent.tar"), state="imported"), ["path: ", "does not exist"]),
        (dict(name=REPO + ":absent", path=str(exports / "web.tar"), state="exported"),
         ["name: image %s:absent is not on this host" % REPO]),
        (dict(path=str(tmp_path / "nodir" / "web.tar"), state="exported"), ["path: directory", "does not exist"]),
        (dict(name=REPO, path=str(exports / "web.tar"), state="exported"), ["name ", "has no tag"]),
        (dict(path=str(exports / "web.tar"), state="exported", mode="u=rw"), ["mode ", "not an octal file mode"]),
        (dict(path=str(exports / "web.tar"), state="exported", expected_id=image),
         ["expected_id: only state=imported reads it"]),
        (dict(path=str(saved), state="imported", expected_id=image[len("sha256:"):]),
         ["expected_id: ", "is not an image id; give sha256: and 64 hex digits"]),
    ] + ([
        (dict(path=str(open_to_all), state="imported", expected_id=image),
         ["path: with expected_id the archive must be root's alone",
          "but %s is owned by uid 0 with mode 0666; nothing was loaded or tagged" % open_to_all]),
        (dict(path=str(held), state="imported", expected_id=image),
         ["path: with expected_id the archive must be root's alone", "a process holds it open for writing"]),
    ] if AS_ROOT else [])
    # This test holds held.tar open for writing while the module runs.
    with open(str(held), "ab"):
        results = run_modules("image_archive", [dict(dict(name=TAG), **args) for args, _words in cases])
    for (args, words), res in zip(cases, results):
        assert res.get("failed") is True, (args, res)
        assert "Traceback" not in json.dumps(res) and "MODULE FAILURE" not in res["msg"], res
        for word in words:
            assert word in res["msg"], (word, res["msg"])
    assert os.listdir(str(exports)) == []
    assert docker_client.images.get(TAG).id == image
    assert image_or_none(docker_client, REPO + ":other") is None


@pytest.fixture()
def tiny_fs(tmp_path):
    """A 512 KiB tmpfs: far smaller than the image's archive (about 2 MB)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mnt)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.skip("mounting a small tmpfs needs root: %s" % proc.stderr.strip())
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True)


def test_full_disk_leaves_nothing_behind(image, tiny_fs):
    (tiny_fs / "web.tar").write_bytes(b"previous archive")
    res = archive(path=str(tiny_fs / "web.tar"), state="exported")
    assert res.get("failed") is True
    assert res["msg"].startswith("path: saving %s to %s failed: no space left on device" % (TAG, tiny_fs / "web.tar"))
    assert "the partial file was removed" in res["msg"]
    assert os.listdir(str(tiny_fs)) == ["web.tar"], "the partial temporary file must be gone"
    assert (tiny_fs / "web.tar").read_bytes() == b"previous archive"
    assert image is not None
