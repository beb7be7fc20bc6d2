"""Files a repository controls are read as data: regular, inside the context, capped."""

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.appfleet.docker.plugins.module_utils._repo_files import (
    RepositoryFileRefused,
    clean_path,
    read_repo_file,
)


def test_a_small_regular_file_is_read(tmp_path):
    (tmp_path / "f").write_bytes(b"x" * 10)
    assert read_repo_file(str(tmp_path), "f", "file", 10) == b"x" * 10
    assert read_repo_file(str(tmp_path), "absent", "file", 10, missing_ok=True) is None


@pytest.mark.parametrize("make, why", [
    (lambda d: os.symlink("/dev/zero", str(d / "f")), "is a symbolic link (to /dev/zero)"),
    (lambda d: os.symlink("g", str(d / "f")) or (d / "g").write_text("in the context"), "is a symbolic link (to g)"),
    (lambda d: os.mkfifo(str(d / "f")), "is a named pipe"),
    (lambda d: (d / "f").mkdir(), "is a directory"),
    (lambda d: (d / "f").write_bytes(b"x" * 11), "is bigger than 10 bytes"),
    (lambda d: None, "cannot be read (No such file or directory)"),
])
def test_anything_else_is_refused_naming_the_file_and_why(tmp_path, make, why):
    make(tmp_path)
    with pytest.raises(RepositoryFileRefused) as err:
        read_repo_file(str(tmp_path), "f", ".dockerignore", 10)
    assert err.value.msg == "f %s; a repository's .dockerignore must be a regular file inside the build context" % why


def test_a_file_below_a_directory_linked_out_is_refused(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "f").write_text("host\n")
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "d").symlink_to(tmp_path / "out")
    with pytest.raises(RepositoryFileRefused, match="resolves to %s, outside the context" % (tmp_path / "out" / "f")):
        read_repo_file(str(tmp_path / "ctx"), "d/f", "Dockerfile", 100)


@pytest.mark.parametrize("path, want", [("a//b/./c", "a/b/c"), ("a/../b", "b"), ("../a", "../a"), ("/../a", "/a"),
                                        ("", "."), ("./", ".")])
def test_clean_path(path, want):
    assert clean_path(path) == want


def test_a_device_is_refused_naming_the_file(tmp_path):
    """docs/security.md: "a device ... is refused with a message naming the file" (a character
    device with /dev/zero's numbers: read as data it would never end)."""
    try:
        os.mknod(str(tmp_path / "Dockerfile"), 0o644 | stat.S_IFCHR, os.makedev(1, 5))
    except PermissionError:
        pytest.skip("making a device node needs root")
    with pytest.raises(RepositoryFileRefused) as err:
        read_repo_file(str(tmp_path), "Dockerfile", "Dockerfile", 1024)
    assert err.value.msg.startswith("Dockerfile is a ") and "device" in err.value.msg, err.value.msg
    assert err.value.msg.endswith("; a repository's Dockerfile must be a regular file inside the build context")
