"""Pure parts of image_archive: archive reading, image ids, references, modes."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile

import pytest

from ansible_collections.appfleet.docker.plugins.module_utils import _archive
from ansible_collections.appfleet.docker.plugins.module_utils._archive import ArchiveError
from ansible_collections.appfleet.docker.plugins.module_utils._docker import AppfleetError


CONFIG_A = b'{"architecture":"amd64","config":{"Cmd":["/bin/sh"]},"rootfs":{"type":"layers"}}'


CONFIG_B = b'{"architecture":"amd64","config":{"Cmd":["/bin/true"]},"rootfs":{"type":"layers"}}'


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def add(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def save_tar(path, images, layout="classic", manifest=None, skip_config=False):
    """A small tarball laid out like `docker save`: ``images`` is [(config bytes, [tags])]."""
    entries = []
    with tarfile.open(str(path), "w") as tar:
        for config, tags in images:
            hexd = hashlib.sha256(config).hexdigest()
            name = "%s.json" % hexd if layout == "classic" else "blobs/sha256/%s" % hexd
            layer = b"layer of " + hexd.encode()
            layer_name = "%s/layer.tar" % hexd[:12] if layout == "classic" else "blobs/sha256/" + "1" * 64
            add(tar, layer_name, layer)
            if not skip_config:
                add(tar, name, config)
            entries.append({"Config": name, "RepoTags": tags, "Layers": [layer_name]})
        add(tar, "manifest.json", manifest if manifest is not None else json.dumps(entries).encode())
    return path


@pytest.mark.parametrize("layout", ["classic", "oci"])
def test_read_archive_ids_are_config_hashes(tmp_path, layout):
    path = save_tar(tmp_path / "a.tar", [(CONFIG_A, ["appfleet/web:1", "appfleet/web:latest"]),
                                         (CONFIG_B, ["appfleet/api:2"])], layout=layout)
    assert _archive.read_archive(str(path)) == {
        "appfleet/web:1": sha(CONFIG_A), "appfleet/web:latest": sha(CONFIG_A), "appfleet/api:2": sha(CONFIG_B)}
    assert sha(CONFIG_A) != sha(CONFIG_B)


@pytest.mark.parametrize("ref, found", [
    ("web:1", True),
    ("docker.io/library/web:1", True),
    ("index.docker.io/library/web:1", True),
    ("web:2", False),
    ("team/web:1", False),
])
def test_archive_image_by_reference(tmp_path, ref, found):
    path = save_tar(tmp_path / "a.tar", [(CONFIG_A, ["web:1"]), (CONFIG_B, ["registry.example.com:5000/team/api:3"])])
    image_id, images = _archive.archive_image(str(path), ref)
    assert image_id == (sha(CONFIG_A) if found else None)
    assert sorted(images) == ["registry.example.com:5000/team/api:3", "web:1"]
    assert _archive.archive_image(str(path), "registry.example.com:5000/team/api:3")[0] == sha(CONFIG_B)


def test_missing_tag_lists_what_the_archive_holds(tmp_path):
    path = save_tar(tmp_path / "a.tar", [(CONFIG_A, ["web:1", "web:latest"]), (CONFIG_B, [])])
    image_id, images = _archive.archive_image(str(path), "web:2")
    assert image_id is None
    assert _archive.describe_tags(images) == "web:1, web:latest"
    assert _archive.describe_tags({}) == "no tags at all (saved by image id)"


def _raw(data):
    def make(tmp_path):
        path = tmp_path / "bad.tar"
        path.write_bytes(data)
        return path
    return make


def _truncated(tmp_path):
    whole = save_tar(tmp_path / "whole.tar", [(CONFIG_A * 200, ["web:1"])]).read_bytes()
    path = tmp_path / "bad.tar"
    path.write_bytes(whole[:1500])
    return path


@pytest.mark.parametrize("make, words", [
    (_raw(b""), ["not a tar file"]),
    (_raw(b"\x1f\x8b" + os.urandom(4094)), ["not a tar file"]),
    (lambda p: save_tar(p / "bad.tar", [(CONFIG_A, ["web:1"])], manifest=b"{not json"), ["manifest.json is not JSON"]),
    (lambda p: save_tar(p / "bad.tar", [(CONFIG_A, ["web:1"])], manifest=b'{"Config": "x"}'), ["not a list of images"]),
    (lambda p: save_tar(p / "bad.tar", [(CONFIG_A, ["web:1"])], manifest=b'[{"RepoTags": ["web:1"]}]'), ["no Config"]),
    (lambda p: save_tar(p / "bad.tar", [(CONFIG_A, ["web:1"])], skip_config=True), ["is damaged", ".json"]),
    (_truncated, ["is damaged", "truncated"]),
])
def test_bad_archives_raise_a_message_naming_path(tmp_path, make, words):
    path = make(tmp_path)
    with pytest.raises(ArchiveError) as err:
        _archive.read_archive(str(path))
    assert err.value.msg.startswith("path: %s " % path)
    assert "export it again" in err.value.msg
    for word in words:
        assert word in err.value.msg


@pytest.mark.parametrize("fraction", [0.1, 0.35, 0.6, 0.85, 0.99])
def test_an_archive_cut_short_is_damaged(tmp_path, fraction):
    """A copy cut anywhere before the tar's end marker: inside a header, a config, the manifest."""
    whole = save_tar(tmp_path / "whole.tar", [(CONFIG_A * 20, ["web:1"]), (CONFIG_B * 30, ["api:1"])])
    with tarfile.open(str(whole)) as tar:
        tar.getmembers()
        end = tar.offset + 2 * tarfile.BLOCKSIZE
    path = tmp_path / "cut.tar"
    path.write_bytes(whole.read_bytes()[:int(end * fraction)])
    with pytest.raises(ArchiveError, match=r"is damaged \(truncated"):
        _archive.read_archive(str(path))


def test_tar_without_manifest(tmp_path):
    path = tmp_path / "plain.tar"
    with tarfile.open(str(path), "w") as tar:
        add(tar, "etc/hostname", b"web\n")
    with pytest.raises(ArchiveError, match="no manifest.json"):
        _archive.read_archive(str(path))


def test_missing_file_is_an_os_error(tmp_path):
    with pytest.raises(OSError):
        _archive.read_archive(str(tmp_path / "absent.tar"))


@pytest.mark.parametrize("ref, words", [
    ("appfleet/web:src-0123abcd", None),
    ("registry.example.com:5000/team/web:1", None),
    ("web", ["has no tag"]),
    ("registry.example.com:5000/web", ["has no tag"]),
    ("web@sha256:" + "0" * 64, ["digest"]),
    ("Web:1", ["not a valid image name"]),
    ("web:-1", ["not a valid image tag"]),
    ("", ["has no tag"]),
])
def test_reference_error(ref, words):
    err = _archive.reference_error("name", ref)
    if words is None:
        assert err is None
    else:
        assert err.startswith("name ")
        for word in words:
            assert word in err


@pytest.mark.parametrize("value, mode", [("0600", 0o600), ("640", 0o640), ("0644", 0o644),
                                         (0o600, 0o600), (None, 0o600)])
def test_parse_mode(value, mode):
    assert _archive.parse_mode(value) == mode


@pytest.mark.parametrize("value", ["u=rw", "0999", "rw", 0o17777, True, 6.0])
def test_parse_mode_refuses(value):
    with pytest.raises(AppfleetError, match="mode"):
        _archive.parse_mode(value)
