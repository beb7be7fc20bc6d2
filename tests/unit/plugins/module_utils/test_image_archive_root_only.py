"""docs/security.md, "Build once": with expected_id, image_archive loads only an archive that root
alone can change: the file and every directory above it root's and writable by no one else (a
sticky directory aside), and no process holding the file open for writing."""

from __future__ import annotations

import os

import pytest

from ansible_collections.appfleet.docker.plugins.module_utils._image_archive import _root_only_problem

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the check asks for root's files: run as root")


def _archive(tmp_path, dir_mode=0o700, dir_uid=0, file_mode=0o600, file_uid=0):
    """tmp_path/d/web.tar (tmp_path is root's, 0700), with the given owners and modes."""
    directory = tmp_path / "d"
    directory.mkdir()
    path = directory / "web.tar"
    path.write_bytes(b"archive")
    os.chown(str(path), file_uid, 0)
    os.chmod(str(path), file_mode)
    os.chown(str(directory), dir_uid, 0)
    os.chmod(str(directory), dir_mode)
    return directory, path


def test_root_only_archive_passes(tmp_path):
    _directory, path = _archive(tmp_path)
    assert _root_only_problem(str(path)) is None


@pytest.mark.parametrize("layout, culprit, owner, mode", [
    (dict(file_mode=0o666), "file", 0, "0666"),
    (dict(file_mode=0o620), "file", 0, "0620"),
    (dict(file_uid=1000), "file", 1000, "0600"),
    (dict(dir_mode=0o777), "dir", 0, "0777"),
    (dict(dir_mode=0o770), "dir", 0, "0770"),
    (dict(dir_uid=1000, dir_mode=0o755), "dir", 1000, "0755"),
], ids=["file open to all", "file group-writable", "file not root's", "directory open to all",
        "directory group-writable", "directory not root's"])
def test_anything_another_user_could_change_is_named(tmp_path, layout, culprit, owner, mode):
    directory, path = _archive(tmp_path, **layout)
    named = path if culprit == "file" else directory
    assert _root_only_problem(str(path)) == "%s is owned by uid %d with mode %s" % (named, owner, mode)


def test_a_sticky_directory_above_is_fine_but_not_a_sticky_file(tmp_path):
    _directory, path = _archive(tmp_path, dir_mode=0o1777)
    assert _root_only_problem(str(path)) is None
    os.chmod(str(path), 0o1666)
    assert _root_only_problem(str(path)) == "%s is owned by uid 0 with mode 1666" % path


def test_a_link_is_judged_by_the_file_it_names(tmp_path):
    """A root-only link to an archive in a directory others can write: the archive's place counts."""
    directory, path = _archive(tmp_path, dir_mode=0o777)
    safe = tmp_path / "safe"
    safe.mkdir(mode=0o700)
    (safe / "web.tar").symlink_to(path)
    assert _root_only_problem(str(safe / "web.tar")) == "%s is owned by uid 0 with mode 0777" % directory


def test_a_writer_holding_the_file_open_is_named(tmp_path):
    _directory, path = _archive(tmp_path)
    with open(str(path), "ab"):
        assert _root_only_problem(str(path)) == "a process holds it open for writing"
    assert _root_only_problem(str(path)) is None
