"""The build's snapshot holds what the source id hashed: kept files, git's modes, links as links."""

from __future__ import annotations

import fcntl
import os
import stat
import subprocess

import pytest

from ansible_collections.appfleet.docker.plugins.module_utils import _snapshot
from ansible_collections.appfleet.docker.plugins.module_utils._snapshot import Plan, Snapshot, SnapshotError
from ansible_collections.appfleet.docker.plugins.module_utils._source_id import compute_source_id

DOCKERFILE = "FROM base:1\nCOPY . /app\n"


def git(path, *args):
    subprocess.run(["git", "-C", str(path), "-c", "user.email=t@example.invalid", "-c", "user.name=t",
                    "-c", "protocol.file.allow=always"] + list(args), check=True, capture_output=True)


def make_context(path, use_git):
    """A context with a kept file, an executable, ignored files, a link inside and a link out."""
    path.mkdir()
    (path / "Dockerfile").write_text(DOCKERFILE)
    (path / ".dockerignore").write_text("*.log\nscratch/\n")
    (path / "app.txt").write_text("v1\n")
    (path / "bin").mkdir()
    (path / "bin" / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(path / "bin" / "run.sh", 0o755)
    os.chmod(path / "app.txt", 0o600)
    (path / "debug.log").write_text("log\n")
    (path / "scratch").mkdir()
    (path / "scratch" / "tmp.bin").write_text("tmp\n")
    os.symlink("app.txt", str(path / "current"))
    os.symlink("/etc/hostname", str(path / "host"))
    if use_git:
        (path / ".gitignore").write_text("local.env\n")
        git(path, "init", "-q")
        git(path, "add", "-A")
        git(path, "commit", "-qm", "first")
        (path / "local.env").write_text("SECRET=1\n")
    return path


def listing(root):
    """{relative path: ("file", mode, bytes) | ("link", target) | ("dir", mode)} below ``root``."""
    found = {}
    for base, dirs, files in os.walk(root):
        for name in dirs + files:
            full = os.path.join(base, name)
            rel = os.path.relpath(full, root)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                found[rel] = ("link", os.readlink(full))
            elif stat.S_ISDIR(st.st_mode):
                found[rel] = ("dir", stat.S_IMODE(st.st_mode))
            else:
                with open(full, "rb") as handle:
                    found[rel] = ("file", stat.S_IMODE(st.st_mode), handle.read())
    return found


def snapshot_of(ctx, tmp_path, **kwargs):
    src = compute_source_id(str(ctx), **kwargs)
    base = tmp_path / "var-tmp"
    base.mkdir(exist_ok=True)
    with Snapshot(src["snapshot"], base=str(base)) as context:
        found = listing(context)
        parent = os.path.dirname(context)
        assert stat.S_IMODE(os.stat(parent).st_mode) == 0o700
    assert not os.path.exists(parent), "the snapshot must be removed on exit"
    return src, found


@pytest.mark.parametrize("use_git", [True, False], ids=["git", "plain"])
def test_what_goes_into_the_snapshot(tmp_path, use_git):
    ctx = make_context(tmp_path / "ctx", use_git)
    src, found = snapshot_of(ctx, tmp_path)
    assert src["kind"] == ("git" if use_git else "files")
    # ignored by .dockerignore (and, for git, by git): absent
    for absent in ("debug.log", "scratch", "scratch/tmp.bin", "local.env"):
        assert absent not in found, absent
    # links are links, never followed; modes are the exec bit as git (or the hash) records it
    assert found["current"] == ("link", "app.txt")
    assert found["host"] == ("link", "/etc/hostname")
    assert found["app.txt"] == ("file", 0o644, b"v1\n")
    assert found["bin/run.sh"] == ("file", 0o755, b"#!/bin/sh\n")
    assert found["bin"] == ("dir", 0o755)
    assert found["Dockerfile"] == ("file", 0o644, DOCKERFILE.encode())
    assert found[".dockerignore"][2] == b"*.log\nscratch/\n"


def test_git_snapshot_is_the_commit_hashed_plus_the_dirty_files_as_hashed(tmp_path):
    ctx = make_context(tmp_path / "ctx", True)
    (ctx / "app.txt").write_text("dirty\n")
    (ctx / "new.txt").write_text("untracked\n")
    os.unlink(str(ctx / "current"))
    src = compute_source_id(str(ctx))
    # The work tree moves to another commit after the id was computed: the blobs hashed stay.
    git(ctx, "stash", "-q", "-u")
    (ctx / "bin" / "run.sh").write_text("#!/bin/sh\necho other commit\n")
    git(ctx, "commit", "-qam", "second")
    git(ctx, "stash", "pop", "-q")
    base = tmp_path / "var-tmp"
    base.mkdir()
    with Snapshot(src["snapshot"], base=str(base)) as context:
        found = listing(context)
    assert found["bin/run.sh"] == ("file", 0o755, b"#!/bin/sh\n")
    assert found["app.txt"] == ("file", 0o644, b"dirty\n")
    assert found["new.txt"] == ("file", 0o644, b"untracked\n")
    assert "current" not in found


@pytest.mark.parametrize("use_git", [True, False], ids=["git", "plain"])
def test_a_file_changed_since_the_hash_fails_and_leaves_nothing(tmp_path, use_git):
    ctx = make_context(tmp_path / "ctx", use_git)
    (ctx / "new.txt").write_text("as hashed\n")
    src = compute_source_id(str(ctx))
    (ctx / "new.txt").write_text("written later\n")
    base = tmp_path / "var-tmp"
    base.mkdir()
    with pytest.raises(SnapshotError, match="new.txt changed after the source id was computed"):
        with Snapshot(src["snapshot"], base=str(base)):
            pass
    assert os.listdir(str(base)) == []


def test_dockerfile_ignored_or_in_a_directory_is_in_the_snapshot(tmp_path):
    ctx = make_context(tmp_path / "ctx", True)
    (ctx / "docker").mkdir()
    (ctx / "docker" / "Dockerfile.prod").write_text(DOCKERFILE + "ENV PROD=1\n")
    (ctx / ".dockerignore").write_text("docker/\n*.log\n")
    git(ctx, "add", "-A")
    git(ctx, "commit", "-qm", "prod")
    src, found = snapshot_of(ctx, tmp_path, dockerfile="./docker/Dockerfile.prod")
    assert src["snapshot"]["dockerfile"] == "docker/Dockerfile.prod"
    assert found["docker/Dockerfile.prod"] == ("file", 0o644, (DOCKERFILE + "ENV PROD=1\n").encode())


def test_submodule_is_its_commit_hashed(tmp_path):
    lib = tmp_path / "lib-src"
    lib.mkdir()
    git(lib, "init", "-q")
    (lib / "lib.txt").write_text("lib 1\n")
    (lib / "lib.log").write_text("ignored\n")
    git(lib, "add", "-A")
    git(lib, "commit", "-qm", "lib 1")
    ctx = make_context(tmp_path / "ctx", True)
    git(ctx, "submodule", "add", "-q", str(lib), "lib")
    (ctx / ".dockerignore").write_text("*.log\nscratch/\nlib/*.log\n")
    git(ctx, "commit", "-qam", "lib")
    # a change not committed in the submodule is not part of the id, so not of the snapshot
    (ctx / "lib" / "lib.txt").write_text("uncommitted\n")
    src, found = snapshot_of(ctx, tmp_path)
    assert found["lib/lib.txt"] == ("file", 0o644, b"lib 1\n")
    assert "lib/lib.log" not in found and "lib/.git" not in found


@pytest.mark.parametrize("path", ["../escape", "a/../../b", "/etc/passwd", "a//b", "./a"])
def test_a_path_no_checkout_can_have_is_refused(path):
    plan = dict(kind="git", context="/nonexistent", top="/nonexistent", prefix="", entries=[(path, "100644", "0" * 40)],
                overlay={}, submodules={}, ignore=None, dockerfile="Dockerfile", dockerfile_bytes=b"",
                dockerignore_bytes=b"")
    with pytest.raises(SnapshotError, match="no checkout can have"):
        Plan(plan)


def test_stale_snapshots_go_live_ones_stay(tmp_path):
    killed = tmp_path / (_snapshot.PREFIX + "killed")
    live = tmp_path / (_snapshot.PREFIX + "live")
    other = tmp_path / "appfleet-iid-other"
    for path in (killed, live, other):
        path.mkdir()
        (path / "lock").write_text("")
    fd = os.open(str(live / "lock"), os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert _snapshot.remove_stale(str(tmp_path)) == [str(killed)]
    finally:
        os.close(fd)
    assert not killed.exists() and live.exists() and other.exists()


def test_no_file_is_written_through_a_link_of_the_snapshot(tmp_path):
    """docs/security.md: links are written last, so no file is written through one. A plan where
    "d" is a link out of the snapshot and "d/Dockerfile" a file: written links-first, the file
    would land outside; written as it is, "d" is a real directory when the link comes."""
    outside = tmp_path / "outside"
    outside.mkdir()
    plan = Plan(dict(kind="files", context=str(tmp_path / "ctx"), files={"d": {"kind": "link", "target": str(outside)}},
                     ignore=None, dockerfile="d/Dockerfile", dockerfile_bytes=b"FROM scratch\n", dockerignore_bytes=b""))
    root, work = tmp_path / "root", tmp_path / "work"
    root.mkdir()
    work.mkdir()
    with pytest.raises(SnapshotError, match="d is a link and a directory at once; nothing was built$"):
        _snapshot.write_snapshot(plan, str(root), str(work))
    assert os.listdir(str(outside)) == []
    assert not os.path.islink(str(root / "d")) and (root / "d" / "Dockerfile").read_bytes() == b"FROM scratch\n"
