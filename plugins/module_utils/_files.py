# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Files on the managed host: the collection's one atomic writer, and the secret files.

Private to this collection (leading underscore): not a public API.

atomic_file is the only place that writes a file in place: streamed bytes
(image_archive's archives) directly, text (the nginx upstream include, the
release log) through write_file_atomic; SecretStore keeps the secret files of
an app, one release directory per value set, renamed into place.
"""

from __future__ import annotations

import binascii
import os
import re
import shutil
import stat
import tempfile
import time
from contextlib import contextmanager

from ansible_collections.appfleet.docker.plugins.module_utils._container_spec import ENV_KEY_RE

DEFAULT_SECRET_DIR = "/etc/appfleet/secrets"
SECRET_FILE_MODE = 0o400
# A release directory of secret files: <UTC time>-<random>, made by new_release_id().
RELEASE_RE = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}\Z")
TMP_RELEASE_RE = re.compile(r"^\.tmp-[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}\Z")


def read_file(path):
    """The text of a file, or None when it cannot be read (absent ...)."""
    try:
        with open(path, "r") as handle:
            return handle.read()
    except (IOError, OSError):
        return None


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_file(path, mode=0o644, check=None, sync_dir=True):
    """Yield a binary handle on a temporary file beside ``path``; rename it into place on success.

    On leaving the block the file is flushed, fsynced and closed, ``check(temp_path)``
    (when given) may raise to refuse it, then it gets ``mode`` and is renamed over
    ``path``. Any error (a full disk, a failed check, an interrupt) removes the
    temporary file and leaves ``path`` as it was. The directory of ``path`` must exist.
    ``sync_dir``: fsync the directory after the rename too (the rename survives a crash).
    """
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if check is not None:
            check(tmp)
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException:
        remove_file(tmp)
        raise
    if sync_dir:
        _fsync_dir(directory)


def write_file_atomic(path, content, mode=0o644, sync_dir=False, owner=None):
    """Write the text ``content`` to ``path`` through atomic_file, making its directory if needed.

    ``sync_dir``: fsync the directory afterwards too (the rename survives a crash).
    ``owner``: (uid, gid) given to the file before it is renamed into place.
    """
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, 0o755, exist_ok=True)
    check = (lambda tmp: os.chown(tmp, owner[0], owner[1])) if owner is not None else None
    with atomic_file(path, mode, check=check, sync_dir=sync_dir) as handle:
        handle.write(content.encode("utf-8"))


def path_state(path):
    """(mode bits, uid, gid) of ``path`` (links followed), or None when it does not exist."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid


class FilePlan(object):
    """One file a module owns, as its content, mode and (when given) owner should be.

    ``owner``: (uid, gid), or None to leave the owner alone. ``secret``: its diff
    shows no content, only that the content changes.
    """

    def __init__(self, path, content, mode=0o644, owner=None, secret=False):
        self.path = path
        self.content = content
        self.mode = mode
        self.owner = owner
        self.secret = secret
        self.before = read_file(path)
        self.before_state = path_state(path)
        self.before_mode = self.before_state[0] if self.before_state else None

    @property
    def changed(self):
        if self.before != self.content or self.before_mode != self.mode:
            return True
        return self.owner is not None and tuple(self.before_state[1:]) != tuple(self.owner)

    def diff(self):
        if not self.secret:
            return {"before_header": self.path, "after_header": self.path,
                    "before": self.before or "", "after": self.content}
        same = self.before == self.content
        return {"before_header": self.path, "after_header": self.path,
                "before": "" if self.before_state is None else "(secret content) mode %04o owner %d:%d\n" % self.before_state,
                "after": "(secret content%s) mode %04o%s\n" % (
                    "" if same else ", changed", self.mode, " owner %d:%d" % tuple(self.owner) if self.owner else "")}

    def write(self):
        write_file_atomic(self.path, self.content, self.mode, sync_dir=True, owner=self.owner)


def remove_file(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def new_release_id():
    """A name for a new directory of secret files: sortable by time, unique."""
    return "%s-%s" % (time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
                      binascii.hexlify(os.urandom(4)).decode("ascii"))


def passwd_uid(passwd_text, name):
    """The uid of user ``name`` in the text of an /etc/passwd, or None."""
    for line in (passwd_text or "").splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[0] == name and fields[2].isdigit():
            return int(fields[2])
    return None


class SecretStore(object):
    """The secret files of one app on the host.

    ``<base>/<app>/<release>/<KEY>``: the base and app directories are made
    root-only (0700), each release directory is written under a temporary name
    and renamed into place (atomic), its files are mode 0400, owned by the uid
    the container runs as (root until chown() is called). A release is never
    changed once written: a changed value makes a new release for a new
    container, and prune() removes the releases no container mounts any more.
    """

    def __init__(self, base, app):
        self.base = base or DEFAULT_SECRET_DIR
        self.app = app
        self.app_dir = os.path.join(self.base, app)

    def release_of(self, source):
        """The release name of a mount source of this app, or None for anything else."""
        parent, key = os.path.split(source or "")
        app_dir, release = os.path.split(parent)
        if app_dir != self.app_dir or not RELEASE_RE.match(release) or not ENV_KEY_RE.match(key):
            return None
        return release

    def releases(self):
        """Names of the release (and left-over temporary) directories present."""
        try:
            names = os.listdir(self.app_dir)
        except OSError:
            return []
        return sorted(n for n in names if RELEASE_RE.match(n) or TMP_RELEASE_RE.match(n))

    def exists(self):
        return os.path.lexists(self.app_dir)

    def changed_keys(self, values, mounts):
        """Names (never values) of the secrets whose mounted file is not the wanted value.

        ``mounts``: {KEY: host source} of a container's /run/secrets/* binds.
        A file that is missing, not a regular file, not mode 0400, outside this
        app's releases or with other content counts as changed.
        """
        changed = set(k for k in mounts if k not in values)
        for key, value in values.items():
            source = mounts.get(key)
            if not source or self.release_of(source) is None or os.path.basename(source) != key:
                changed.add(key)
                continue
            try:
                fd = os.open(source, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            except OSError:
                changed.add(key)
                continue
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode) or (st.st_mode & 0o7777) != SECRET_FILE_MODE:
                    changed.add(key)
                    continue
                want = str(value).encode("utf-8")
                have = os.read(fd, len(want) + 1)
                if have != want:
                    changed.add(key)
            finally:
                os.close(fd)
        return sorted(changed)

    def _ensure_dir(self, path):
        os.makedirs(path, 0o700, exist_ok=True)
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode):
            raise OSError("%s is not a directory" % path)
        if st.st_uid != 0 or st.st_gid != 0:
            os.chown(path, 0, 0)
        if (st.st_mode & 0o7777) != 0o700:
            os.chmod(path, 0o700)

    def write(self, values):
        """Write a new release of ``values``; return its directory."""
        os.makedirs(self.base, 0o700, exist_ok=True)
        self._ensure_dir(self.app_dir)
        name = new_release_id()
        tmp = os.path.join(self.app_dir, ".tmp-" + name)
        os.mkdir(tmp, 0o700)
        try:
            for key in sorted(values):
                path = os.path.join(tmp, key)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0),
                             SECRET_FILE_MODE)
                with os.fdopen(fd, "wb") as handle:
                    handle.write(str(values[key]).encode("utf-8"))
                    handle.flush()
                    os.fsync(handle.fileno())
                os.chmod(path, SECRET_FILE_MODE)
            _fsync_dir(tmp)
            final = os.path.join(self.app_dir, name)
            os.rename(tmp, final)
            _fsync_dir(self.app_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final

    def chown(self, release_dir, uid):
        """Give the files of a release to the container's uid (group root, mode 0400)."""
        for key in os.listdir(release_dir):
            path = os.path.join(release_dir, key)
            os.chown(path, uid, 0, follow_symlinks=False)
            os.chmod(path, SECRET_FILE_MODE)

    def remove_release(self, release_dir):
        """Remove a release no container uses (a failed rollout's); the app directory too once empty."""
        if release_dir and os.path.dirname(release_dir) == self.app_dir:
            shutil.rmtree(release_dir, ignore_errors=True)
            try:
                os.rmdir(self.app_dir)
            except OSError:
                pass  # not empty: other releases are in use

    def unused(self, keep):
        return [n for n in self.releases() if n not in keep]

    def prune(self, keep):
        """Remove the releases not in ``keep`` (and the app directory once empty); return their names."""
        removed = self.unused(keep)
        for name in removed:
            shutil.rmtree(os.path.join(self.app_dir, name), ignore_errors=True)
        try:
            if os.path.isdir(self.app_dir) and not os.listdir(self.app_dir):
                os.rmdir(self.app_dir)
        except OSError:
            pass
        return removed

    def remove_all(self):
        if os.path.isdir(self.app_dir) and not os.path.islink(self.app_dir):
            shutil.rmtree(self.app_dir, ignore_errors=True)
