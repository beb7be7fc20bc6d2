# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The build context as a private snapshot of what the source id hashed.

Private to this collection (leading underscore): not a public API.

BuildKit reads context files when a COPY runs, long after the source id was computed:
a build from the live checkout would take whatever another run (a ``git checkout``)
has put there meanwhile, and tag it with the source id of the commit before. So a
build reads a snapshot instead, made of exactly what the id hashed:

* git context: the blobs of the tree entries hashed, by blob id (``git cat-file
  --batch``: no filter, hook or fsmonitor runs), with git's modes (100644, 100755,
  symlinks as symlinks); the uncommitted files as hashed (each copy checked against
  the hash taken then); each submodule at the commit hashed, read from its own git
  directory;
* other context: a copy of each file hashed, checked the same way;
* the Dockerfile and .dockerignore bytes hashed.

The snapshot lives in a private (0700) directory under /var/tmp, removed after the
build whatever happens; one left by a killed run (its lock no longer held) is
removed by the next build.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import shutil
import stat
import tempfile
import time

from ansible_collections.appfleet.docker.plugins.module_utils._docker import AppfleetError
from ansible_collections.appfleet.docker.plugins.module_utils._git import (
    GITLINK_MODE,
    SHA_RE,
    owned_by_us_or_root,
    popen_git,
    run_git,
    submodule_git_dir,
)
from ansible_collections.appfleet.docker.plugins.module_utils._dockerignore import IgnoreFilter
from ansible_collections.appfleet.docker.plugins.module_utils._repo_files import inside, open_regular

SNAPSHOT_ROOT = "/var/tmp"
PREFIX = "appfleet-snapshot-"
LOCK = "lock"
# A snapshot directory without a lock file is one whose run was killed while making it.
UNLOCKED_GRACE_SECONDS = 600
CHUNK = 1024 * 1024
LINK_MAX = 4096
GIT_TIMEOUT = 300
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
MODES = {"100644": 0o644, "100755": 0o755, "100664": 0o644}


class SnapshotError(AppfleetError):
    """The snapshot of the build context could not be made; the wrapper adds the app and the step."""

    needs_context = True

    def __init__(self, msg):
        super(SnapshotError, self).__init__("build snapshot: %s" % msg)


def _check_path(rel):
    """``rel`` (slash separated, from git or the walk) as a safe relative path."""
    parts = rel.split("/")
    if not rel or any(part in ("", ".", "..") for part in parts) or "\0" in rel:
        raise SnapshotError("the repository holds a path %r that no checkout can have; nothing was built" % rel)
    return rel


class Plan(object):
    """What goes into the snapshot: {path: what to write}, decided before anything is written.

    Each value is ("blob", mode, blob id, git dir or None) for a git tree entry, ("copy",
    record) for a file read when the id was computed (see _source_id.hash_file_into), ("dir",)
    for a directory, ("bytes", data, mode) for the Dockerfile and .dockerignore as hashed.
    """

    def __init__(self, snapshot):
        self.source = snapshot["context"]
        self.top = snapshot.get("top")
        self.items = {}
        kind = snapshot["kind"]
        if kind == "git":
            for path, mode, oid in snapshot["entries"]:
                if mode != GITLINK_MODE:
                    self.items[_check_path(path)] = ("blob", mode, oid, None)
            for path, record in snapshot["overlay"].items():
                self._overlay(_check_path(path), record)
            keep = IgnoreFilter(snapshot["ignore"])
            for path, commit in sorted(snapshot["submodules"].items()):
                self._submodule(_check_path(path), commit, keep)
        else:
            for path, record in snapshot["files"].items():
                self._overlay(_check_path(path), record)
        self._file(snapshot["dockerfile"], snapshot["dockerfile_bytes"])
        if snapshot["dockerignore_bytes"]:
            self._file(".dockerignore", snapshot["dockerignore_bytes"])

    def _overlay(self, path, record):
        kind = record["kind"]
        if kind in ("file", "link"):
            self.items[path] = ("copy", record)
        elif kind == "dir":
            self.items[path] = ("dir",)
        else:
            # Deleted, or no regular file when hashed: the builder gets nothing there.
            self.items.pop(path, None)

    def _file(self, path, data):
        old = self.items.get(path)
        mode = MODES.get(old[1], 0o644) if old and old[0] == "blob" else 0o644
        if old and old[0] == "copy" and old[1].get("x"):
            mode = 0o755
        self.items[_check_path(path)] = ("bytes", data, mode)

    def _submodule(self, path, commit, keep):
        """The submodule at ``path`` as its commit ``commit`` records it (what the id hashed)."""
        self.items[path] = ("dir",)
        if commit is None:
            return  # nothing checked out there: an empty directory
        git_dir = submodule_git_dir(os.path.join(self.source, path))
        if not commit or not SHA_RE.match(commit) or git_dir in (None, "unreadable") \
                or not all(owned_by_us_or_root(os.path.join(git_dir, p)) for p in ("", "config")):
            raise SnapshotError("submodule %s: its checked-out commit or git directory cannot be read; "
                                "check it out again (git submodule update)" % path)
        rc, out, err = run_git(["ls-tree", "-r", "-z", "--full-tree", commit], git_dir=git_dir, timeout=GIT_TIMEOUT)
        if rc != 0:
            raise SnapshotError("submodule %s: cannot list commit %s (%s)" % (path, commit, err.strip()))
        for entry in out.split(b"\0"):
            meta, _tab, raw = entry.partition(b"\t")
            fields = meta.decode("ascii", "replace").split()
            if len(fields) != 3:
                continue
            rel = path + "/" + _check_path(raw.decode("utf-8", "surrogateescape"))
            if keep.ignored(rel):
                continue
            if fields[0] == GITLINK_MODE:
                self.items[rel] = ("dir",)  # a nested submodule: not part of the id
            else:
                self.items[rel] = ("blob", fields[0], fields[2], git_dir)


def _mkdirs(root, rel):
    """Make the real directories of ``rel`` below ``root`` (none is a link yet: links come last)."""
    path = root
    for part in rel.split("/"):
        path = os.path.join(path, part)
        try:
            os.mkdir(path, 0o755)
            os.chmod(path, 0o755)
        except OSError as exc:
            if exc.errno != errno.EEXIST or not stat.S_ISDIR(os.lstat(path).st_mode):
                raise SnapshotError("%s is a file and a directory at once; nothing was built" % rel)
    return path


def _create(root, rel, mode):
    parent = os.path.dirname(rel)
    if parent:
        _mkdirs(root, parent)
    try:
        fd = os.open(os.path.join(root, rel), _CREATE, mode)
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            raise SnapshotError("%s is a file and a directory at once; nothing was built" % rel)
        raise
    os.fchmod(fd, mode)
    return os.fdopen(fd, "wb")


def _read_exactly(stream, size, out):
    left = size
    while left:
        block = stream.read(min(CHUNK, left))
        if not block:
            raise SnapshotError("git cat-file ended early")
        out(block)
        left -= len(block)


def _write_blobs(root, blobs, git_dir, top, work):
    """Write the blobs [(path, mode, blob id)] of one git directory; return {path: link target}."""
    links = {}
    if not blobs:
        return links
    wanted = os.path.join(work, "blobs")
    with open(wanted, "w") as f:
        for _path, _mode, oid in blobs:
            f.write(oid + "\n")
    with open(wanted, "rb") as stdin:
        proc = popen_git(["cat-file", "--batch"], stdin, top=top, git_dir=git_dir)
        try:
            for path, mode, oid in blobs:
                header = proc.stdout.readline().decode("ascii", "replace").split()
                if len(header) != 3 or header[0] != oid or header[1] != "blob":
                    raise SnapshotError("git has no blob %s for %s (%s)" % (oid, path, " ".join(header)))
                size = int(header[2])
                if mode == "120000":
                    if size > LINK_MAX:
                        raise SnapshotError("symbolic link %s is longer than %d bytes" % (path, LINK_MAX))
                    chunks = []
                    _read_exactly(proc.stdout, size, chunks.append)
                    links[path] = b"".join(chunks)
                else:
                    with _create(root, path, MODES.get(mode, 0o644)) as out:
                        _read_exactly(proc.stdout, size, out.write)
                proc.stdout.read(1)
        finally:
            proc.stdout.close()
            try:
                proc.wait(GIT_TIMEOUT)
            except Exception:  # pylint: disable=broad-except
                proc.kill()
                proc.wait()
            proc.stderr.close()
    return links


def _copy(root, source, rel, record):
    """Copy the work tree file ``rel`` into the snapshot, as it was hashed; else SnapshotError."""
    full = os.path.join(source, rel)
    changed = SnapshotError("%s changed after the source id was computed (a checkout or a write in the work "
                            "tree while image_build ran); nothing was built; run again" % rel)
    if not inside(os.path.realpath(full), os.path.realpath(source)):
        raise changed
    fd = open_regular(full)
    if fd is None:
        raise changed
    digest = hashlib.sha256()
    size = 0
    with os.fdopen(fd, "rb") as src, _create(root, rel, 0o755 if record["x"] else 0o644) as out:
        while size <= record["size"]:
            block = src.read(CHUNK)
            if not block:
                break
            size += len(block)
            digest.update(block)
            out.write(block)
    if size != record["size"] or digest.hexdigest() != record["sha256"]:
        raise changed


def write_snapshot(plan, root, work):
    """Write ``plan`` below the directory ``root``; ``work`` is a private directory for scratch files."""
    links = {}
    by_git_dir = {}
    for rel in sorted(plan.items):
        item = plan.items[rel]
        if item[0] == "blob":
            by_git_dir.setdefault(item[3], []).append((rel, item[1], item[2]))
        elif item[0] == "copy":
            if item[1]["kind"] == "link":
                links[rel] = item[1]["target"]
            else:
                _copy(root, plan.source, rel, item[1])
        elif item[0] == "dir":
            _mkdirs(root, rel)
        else:
            with _create(root, rel, item[2]) as out:
                out.write(item[1])
    for git_dir, blobs in by_git_dir.items():
        top = plan.top if git_dir is None else None
        links.update(_write_blobs(root, blobs, git_dir, top, work))
    # Links last: no file is ever written through one.
    for rel in sorted(links):
        parent = os.path.dirname(rel)
        if parent:
            _mkdirs(root, parent)
        try:
            os.symlink(links[rel], os.path.join(root, rel))
        except OSError as exc:
            if exc.errno == errno.EEXIST:
                raise SnapshotError("%s is a link and a directory at once; nothing was built" % rel)
            raise


def remove_stale(base=SNAPSHOT_ROOT):
    """Remove the snapshot directories of runs that are gone (their lock is free); return their paths."""
    removed = []
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return removed
    for name in names:
        if not name.startswith(PREFIX):
            continue
        path = os.path.join(base, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
            continue
        try:
            fd = os.open(os.path.join(path, LOCK), os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            if time.time() - st.st_mtime > UNLOCKED_GRACE_SECONDS:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # a live build's snapshot
        try:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
        finally:
            os.close(fd)
    return removed


class Snapshot(object):
    """``with Snapshot(src["snapshot"]) as context:`` a private copy of what the source id hashed.

    Removed on exit, whatever happened in the block.
    """

    def __init__(self, snapshot, base=SNAPSHOT_ROOT):
        self.snapshot = snapshot
        self.base = base
        self.path = None
        self.lock_fd = None

    def __enter__(self):
        remove_stale(self.base)
        plan = Plan(self.snapshot)
        # mkdtemp makes it 0700: only root reads the snapshot.
        self.path = tempfile.mkdtemp(prefix=PREFIX, dir=self.base)
        try:
            self.lock_fd = os.open(os.path.join(self.path, LOCK), os.O_RDWR | os.O_CREAT | os.O_EXCL
                                   | getattr(os, "O_CLOEXEC", 0), 0o600)
            fcntl.flock(self.lock_fd, fcntl.LOCK_EX)
            context = os.path.join(self.path, "context")
            os.mkdir(context, 0o755)
            os.chmod(context, 0o755)
            work = os.path.join(self.path, "work")
            os.mkdir(work, 0o700)
            write_snapshot(plan, context, work)
        except EnvironmentError as exc:
            self.__exit__(None, None, None)
            raise SnapshotError("cannot write it under %s: %s; free space there and run again"
                                % (self.base, exc.strerror or exc))
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return context

    def __exit__(self, *exc_info):
        if self.path:
            shutil.rmtree(self.path, ignore_errors=True)
            self.path = None
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None
        return False
