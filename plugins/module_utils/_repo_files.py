# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Files a repository controls, read as data: only regular files inside the checkout, with a size cap.

Private to this collection (leading underscore): not a public API.

A repository's author controls its .dockerignore and its Dockerfile: a link to /dev/zero,
a FIFO or a link to a file of the host must never make the module read forever or read the
host. Each reader names its own cap (DOCKERIGNORE_MAX_BYTES, DOCKERFILE_MAX_BYTES).
"""

from __future__ import annotations

import errno
import os
import stat

from ansible_collections.appfleet.docker.plugins.module_utils._docker import AppfleetError


_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


class RepositoryFileRefused(AppfleetError):
    """A file the repository controls is not a small regular file inside the checkout."""

    def __init__(self, rel, why, noun):
        super(RepositoryFileRefused, self).__init__(
            "%s %s; a repository's %s must be a regular file inside the build context" % (rel, why, noun))
        self.rel = rel


def _kind(mode):
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def open_regular(path):
    """A file descriptor on the regular file ``path`` (never through a final symlink, never
    blocking on a FIFO), or None when it is no regular file."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except (IOError, OSError):
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return fd


def read_repo_file(context, rel, noun, limit, missing_ok=False):
    """The bytes of the repository file ``rel`` (below ``context``), read as data.

    Refused (RepositoryFileRefused) unless it is a regular file, not a symlink, whose real
    path is inside the context, of at most ``limit`` bytes. None when it is absent and
    ``missing_ok``.
    """
    context = os.path.abspath(context)
    path = os.path.join(context, rel)
    try:
        st = os.lstat(path)
    except (IOError, OSError) as exc:
        if missing_ok and exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise RepositoryFileRefused(rel, "cannot be read (%s)" % (exc.strerror or exc), noun)
    if stat.S_ISLNK(st.st_mode):
        raise RepositoryFileRefused(rel, "is a symbolic link (to %s)" % os.readlink(path), noun)
    if not stat.S_ISREG(st.st_mode):
        raise RepositoryFileRefused(rel, "is %s" % _kind(st.st_mode), noun)
    real = os.path.realpath(path)
    if not inside(real, os.path.realpath(context)):
        raise RepositoryFileRefused(rel, "resolves to %s, outside the context" % real, noun)
    too_big = "is bigger than %d bytes" % limit
    if st.st_size > limit:
        raise RepositoryFileRefused(rel, too_big, noun)
    fd = open_regular(path)
    if fd is None:
        raise RepositoryFileRefused(rel, "changed while it was read", noun)
    try:
        with os.fdopen(fd, "rb") as f:
            data = f.read(limit + 1)
    except (IOError, OSError) as exc:
        raise RepositoryFileRefused(rel, "cannot be read (%s)" % (exc.strerror or exc), noun)
    if len(data) > limit:
        raise RepositoryFileRefused(rel, too_big, noun)
    return data


def inside(path, top):
    return path == top or path.startswith(top.rstrip(os.sep) + os.sep)


def clean_path(path):
    """Go filepath.Clean for slash paths."""
    rooted = path.startswith("/")
    parts = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(part)
    cleaned = "/".join(parts)
    if rooted:
        return "/" + cleaned
    return cleaned or "."
