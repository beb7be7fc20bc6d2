# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Image archives (``docker save`` tarballs) read without Docker: pure functions and file reads.

Private to this collection (leading underscore): not a public API.

An archive's manifest.json lists its images: the Config blob (whose sha256 is the
image id) and the RepoTags. read_archive() reads the manifest and hashes the config
blobs straight out of the tar, extracting nothing to disk and never reading a
layer, so an archive is known by its content and not by what ``docker load`` says.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import tarfile

from ansible_collections.appfleet.docker.plugins.module_utils._docker import AppfleetError
from ansible_collections.appfleet.docker.plugins.module_utils._image_ref import familiar, name_error, split_ref, tag_error

MANIFEST = "manifest.json"
# manifest.json lists a few entries per image: anything this large is not one.
MANIFEST_LIMIT = 16 * 1024 * 1024
HASH_CHUNK = 1024 * 1024
DEFAULT_MODE = 0o600
_OCTAL_RE = re.compile(r"^0?[0-7]{3,4}\Z")


class ArchiveError(AppfleetError):
    """An archive that cannot be used; the message names the option and the path."""


def reference_error(option, ref):
    """None when ``ref`` is an image name with a tag (and no digest), else a message."""
    if "@" in (ref or ""):
        return ("%s %r has a digest; use a name with a tag, e.g. appfleet/web:1 (docker save "
                "records tags, not digests)" % (option, ref))
    repo, tag, _digest = split_ref(ref)
    if tag is None:
        return ("%s %r has no tag; use a name with a tag, e.g. %s:1 (the archive records the "
                "image under that exact tag)" % (option, ref, repo or "appfleet/web"))
    err = name_error(option, repo)
    if err:
        return err.replace(", and no tag", ", then :tag")
    return tag_error(option, tag)


def parse_mode(value):
    """The file mode of the ``mode`` option: an octal string (``"0600"``) or a number as Ansible reads YAML 0600."""
    if value is None:
        return DEFAULT_MODE
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and _OCTAL_RE.match(value.strip()):
        number = int(value.strip(), 8)
    else:
        raise AppfleetError("mode %r is not an octal file mode; quote it as a string such as \"0600\" "
                            "(symbolic modes are not supported)" % (value,))
    if number < 0 or number > 0o7777:
        raise AppfleetError("mode %r is out of range; quote it as an octal string such as \"0600\"" % (value,))
    return number


def _member_name(name):
    return posixpath.normpath(name).lstrip("/") if name else name


def parse_manifest(data, path="the archive"):
    """Entries of a manifest.json (bytes): a list of dicts with config (member name) and tags."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ArchiveError("path: %s is not a docker save archive: its manifest.json is not JSON (%s); "
                           "export it again with state=exported" % (path, exc))
    if not isinstance(doc, list) or not all(isinstance(e, dict) for e in doc):
        raise ArchiveError("path: %s is not a docker save archive: its manifest.json is not a list of "
                           "images; export it again with state=exported" % path)
    entries = []
    for entry in doc:
        config = entry.get("Config")
        tags = entry.get("RepoTags") or []
        if not isinstance(config, str) or not config or not isinstance(tags, list) \
                or not all(isinstance(t, str) for t in tags):
            raise ArchiveError("path: %s is not a docker save archive: an entry of its manifest.json has no "
                               "Config or bad RepoTags; export it again with state=exported" % path)
        entries.append(dict(config=_member_name(config), tags=list(tags)))
    return entries


def _sha256_member(tar, member):
    handle = tar.extractfile(member)
    if handle is None:
        return None
    digest = hashlib.sha256()
    with handle:
        while True:
            chunk = handle.read(HASH_CHUNK)
            if not chunk:
                break
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def read_archive(path):
    """What the docker save archive at ``path`` holds: {tag: image id}.

    The image id is ``sha256:`` + the sha256 of the image's config blob in the tar.
    The tar is read in place (headers, manifest.json and the config blobs only).
    Raises ArchiveError naming ``path`` when it is not such an archive; an OSError
    when it cannot be opened.
    """
    with open(path, "rb") as handle:
        try:
            tar = tarfile.open(fileobj=handle, mode="r:")
        except tarfile.TarError as exc:
            raise ArchiveError("path: %s is not a docker save archive (not a tar file: %s); export it again "
                               "with state=exported, or check that the copy to this host was complete"
                               % (path, exc))
        with tar:
            try:
                listed = tar.getmembers()
                size = os.fstat(handle.fileno()).st_size
                # A complete tar ends with two zero blocks after its last member (docker save writes them).
                if size - tar.offset < 2 * tarfile.BLOCKSIZE or any(m.offset_data + m.size > size for m in listed):
                    raise ArchiveError("path: %s is damaged (truncated: it ends before the tar's end marker); "
                                       "export it again with state=exported, or check that the copy to this host "
                                       "was complete" % path)
                members = dict((_member_name(m.name), m) for m in listed)
                manifest = members.get(MANIFEST)
                if manifest is None or not manifest.isfile():
                    raise ArchiveError("path: %s is not a docker save archive (no manifest.json in the tar); "
                                       "export it again with state=exported" % path)
                if manifest.size > MANIFEST_LIMIT:
                    raise ArchiveError("path: %s is not a docker save archive (its manifest.json is %d bytes); "
                                       "export it again with state=exported" % (path, manifest.size))
                entries = parse_manifest(tar.extractfile(manifest).read(), path)
                images = {}
                for entry in entries:
                    member = members.get(entry["config"])
                    image_id = _sha256_member(tar, member) if member is not None else None
                    if image_id is None:
                        raise ArchiveError("path: %s is damaged: the config %s that its manifest.json names is "
                                           "not in the tar; export it again with state=exported"
                                           % (path, entry["config"]))
                    for tag in entry["tags"]:
                        images[tag] = image_id
            except (tarfile.TarError, EOFError) as exc:
                what = "truncated" if isinstance(exc, EOFError) or "end of data" in str(exc) else (
                    "%s: %s" % (type(exc).__name__, exc))
                raise ArchiveError("path: %s is damaged (%s); export it again with state=exported, or "
                                   "check that the copy to this host was complete" % (path, what))
    return images


def archive_image(path, ref):
    """(image id of ``ref`` in the archive, or None, {tag: id} of the archive)."""
    images = read_archive(path)
    return images.get(familiar(ref)), images


def describe_tags(images):
    """The tags an archive holds, for a message."""
    return ", ".join(sorted(images)) if images else "no tags at all (saved by image id)"
