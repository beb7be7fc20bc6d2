# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What image_archive does: save an image to a file atomically, or load it from one.

Private to this collection (leading underscore): not a public API.
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import stat

from ansible_collections.appfleet.docker.plugins.module_utils._archive import (
    ArchiveError,
    archive_image,
    describe_tags,
    parse_mode,
    reference_error,
)
from ansible_collections.appfleet.docker.plugins.module_utils._docker import AppfleetError
from ansible_collections.appfleet.docker.plugins.module_utils._engine import image_id
from ansible_collections.appfleet.docker.plugins.module_utils._files import atomic_file
# An image id as the archive and the engine give it: sha256: and 64 hex digits, the form of a digest.
from ansible_collections.appfleet.docker.plugins.module_utils._image_ref import DIGEST_RE as IMAGE_ID_RE

ABSENT = "absent"
# Errors of a write that mean the filesystem is full (or the file too large for it).
FULL_DISK = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def check_input(am):
    p = am.params
    err = reference_error("name", p["name"])
    if err:
        am.fail(err)
    try:
        mode = parse_mode(p["mode"])
    except AppfleetError as exc:
        am.fail(exc.msg)
    expected = p["expected_id"]
    if expected is not None:
        if p["state"] != "imported":
            am.fail("expected_id: only state=imported reads it (the image id the archive must hold); remove it")
        if not IMAGE_ID_RE.match(expected):
            am.fail("expected_id: %r is not an image id; give sha256: and 64 hex digits, as image.id of "
                    "state=exported returns it" % expected)
    return mode


def _size(path):
    try:
        return os.stat(path).st_size
    except OSError:
        return None


def _existing_archive_id(path, name):
    """Image id of ``name`` in the archive at ``path``; None when absent, unreadable or without it."""
    if not os.path.isfile(path):
        return None
    try:
        found, _images = archive_image(path, name)
    except (ArchiveError, OSError):
        return None  # anything else than a good archive of name is overwritten
    return found


def _root_only_problem(path):
    """None when root alone can change the file at ``path``, now and until the load; else why not.

    The file and every directory above it are root's and writable by root alone (a
    sticky directory keeps others from renaming root's entries), and no process holds
    the file open for writing: the kernel refuses a read lease (F_SETLEASE) while one
    does. The lease is only a probe, given back at once.
    """
    real = os.path.realpath(path)
    current = real
    while True:
        info = os.stat(current)
        writable = info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        if info.st_uid != 0 or (writable and not (current != real and info.st_mode & stat.S_ISVTX)):
            return "%s is owned by uid %d with mode %04o" % (current, info.st_uid, stat.S_IMODE(info.st_mode))
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    fd = os.open(real, os.O_RDONLY)
    # A root process opening the file for writing during the probe breaks the
    # lease; its SIGIO would otherwise end this module.
    previous = signal.signal(signal.SIGIO, signal.SIG_IGN)
    try:
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
    except OSError as exc:
        if exc.errno == errno.EAGAIN:
            return "a process holds it open for writing"
        return "whether a process holds it open for writing cannot be checked (%s)" % os.strerror(exc.errno).lower()
    finally:
        signal.signal(signal.SIGIO, previous)
        os.close(fd)
    return None


def _verify_saved(name, want_id):
    """A check for atomic_file: the temporary archive holds ``name`` at ``want_id``."""
    def check(tmp):
        found, images = archive_image(tmp, name)
        if found != want_id:
            raise AppfleetError(
                "name: the engine's docker save of %s does not hold it at its image id %s (it holds %s); "
                "nothing was written; run again, and check the engine's image store if it repeats"
                % (name, want_id, describe_tags(images) if found is None else found))
    return check


def export(am, mode):
    p = am.params
    name, path = p["name"], p["path"]
    directory = os.path.dirname(path) or "."
    if os.path.isdir(path):
        am.fail("path: %s is a directory; give the archive's file name, e.g. %s"
                % (path, os.path.join(path, "image.tar")))
    if not os.path.isdir(directory):
        am.fail("path: directory %s does not exist; create it first (ansible.builtin.file with "
                "state=directory) or choose another path" % directory)
    am.step = "looking up the image"
    want = image_id(am.client, name)
    if want is None:
        am.fail("name: image %s is not on this host (docker image ls); build or load it here first, "
                "or fix name" % name)
    have = _existing_archive_id(path, name)
    current_mode = None
    if have is not None:
        current_mode = os.stat(path).st_mode & 0o7777
    result = dict(changed=have != want or current_mode != mode, image=dict(id=want, name=name),
                  archive=dict(path=path, size=_size(path), image_id=want))
    if am.diff_mode:
        result["diff"] = dict(before={path: have or ABSENT}, after={path: want})
    if not result["changed"] or am.check_mode:
        if am.check_mode and have != want:
            result["archive"]["size"] = None
        return result
    if have == want:
        am.step = "setting the mode of %s" % path
        os.chmod(path, mode)
        return result
    am.step = "saving %s to %s" % (name, path)
    try:
        with atomic_file(path, mode, check=_verify_saved(name, want)) as handle:
            for chunk in am.client.api.get_image(name):
                handle.write(chunk)
    except OSError as exc:
        if exc.errno in FULL_DISK:
            raise AppfleetError(
                "path: saving %s to %s failed: %s; the partial file was removed and %s is as it was; "
                "free space on that filesystem or choose another path"
                % (name, path, os.strerror(exc.errno).lower(), path))
        raise
    result["archive"]["size"] = _size(path)
    return result


def load(am):
    p = am.params
    name, path = p["name"], p["path"]
    am.step = "reading the archive"
    if not os.path.isfile(path):
        am.fail("path: %s %s; copy the archive to this host first (state=exported writes it)"
                % (path, "is not a regular file" if os.path.exists(path) else "does not exist"))
    expected = p["expected_id"]
    try:
        # With expected_id the image id read here must be the one loaded below.
        problem = _root_only_problem(path) if expected is not None else None
        if problem:
            am.fail("path: with expected_id the archive must be root's alone until it is loaded, but %s; "
                    "nothing was loaded or tagged; copy it as root, 0600, into a directory only root can write"
                    % problem)
        want, images = archive_image(path, name)
    except OSError as exc:
        am.fail("path: %s cannot be read (%s); check its permissions"
                % (path, (exc.strerror or str(exc)).lower()))
    if want is None:
        am.fail("name: %s does not hold %s; it holds %s; export the archive again with this name or fix name"
                % (path, name, describe_tags(images)))
    if expected is not None and want != expected:
        am.fail("expected_id: %s holds %s as image %s, not the expected image %s; nothing was loaded or tagged; "
                "export the archive again on the host that built the image, or fix expected_id"
                % (path, name, want, expected))
    am.step = "looking up the image"
    have = image_id(am.client, name)
    result = dict(changed=have != want, image=dict(id=want, name=name),
                  archive=dict(path=path, size=_size(path), image_id=want))
    if am.diff_mode:
        result["diff"] = dict(before={name: have or ABSENT}, after={name: want})
    if not result["changed"] or am.check_mode:
        return result
    am.step = "loading %s" % path
    with open(path, "rb") as handle:
        for message in am.client.api.load_image(handle):
            error = isinstance(message, dict) and (message.get("error") or
                                                   (message.get("errorDetail") or {}).get("message"))
            if error:
                raise AppfleetError("path: docker load of %s failed: %s; the image was not loaded; export "
                                    "the archive again, or check the engine's free space" % (path, error))
    after = image_id(am.client, name)
    if after != want:
        raise AppfleetError("name: after docker load of %s, %s is %s, not the archive's image %s; "
                            "check the engine's image store (a containerd image store uses other ids)"
                            % (path, name, after or ABSENT, want))
    return result


def logic(am):
    mode = check_input(am)
    am.step = None
    if am.params["state"] == "exported":
        return export(am, mode)
    return load(am)
