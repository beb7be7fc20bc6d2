# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Source id of an image build: what the image is built from, without building it.

Private to this collection (leading underscore): not a public API.

The source id (version 2) is a sha256 over what the builder gets:

* the build context: when it sits in a git work tree, the HEAD tree entries below it
  (path, mode, blob id, from one ``git ls-tree``) that .dockerignore keeps, plus a
  hash of the content of the uncommitted changes below it that .dockerignore keeps
  (tracked and untracked files), plus the commit checked out in each submodule below
  it. Not the commit itself: a commit that touches only ignored files, or files
  outside the context, keeps the id. When the context is not in a git work tree, a
  hash of the content of every file that .dockerignore keeps;
* the Dockerfile's normalised path and its content, and the .dockerignore content;
* build args, target and extra labels;
* the ids of the images named by FROM (and COPY --from) that are present locally
  (see ``rekey_bases`` for those that are not).

Nothing here talks to Docker: the caller passes ``resolve_image(ref) -> id or None``.
git runs pinned to the work tree's own ``.git``, with fsmonitor and hooks off: a
repository's content never runs code here (see _git.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat

from ansible_collections.appfleet.docker.plugins.module_utils._dockerfile import base_images, normal_dockerfile_path, read_dockerfile
from ansible_collections.appfleet.docker.plugins.module_utils._dockerignore import DockerIgnore, IgnoreFilter, read_dockerignore
from ansible_collections.appfleet.docker.plugins.module_utils._git import (
    GITLINK_MODE,
    SHA_RE,
    GitError,
    find_work_tree,
    git,
    is_real_dir,
    submodule_head,
)
from ansible_collections.appfleet.docker.plugins.module_utils._repo_files import open_regular

SOURCE_ID_VERSION = 2
SHORT_ID_LENGTH = 12

CHUNK = 1024 * 1024


def hash_file_into(digest, path):
    """Feed one file's type, exec bit and content (or link target) into ``digest``.

    Returns what was fed, as a record for the build's snapshot (_snapshot.py):
    ``{"kind": "file", "x": bool, "sha256": hex, "size": int}``, ``{"kind": "link",
    "target": bytes}``, or ``{"kind": k}`` with k "dir", "absent", "special" or "changed".
    """
    try:
        st = os.lstat(path)
    except (IOError, OSError):
        digest.update(b"absent\0")
        return dict(kind="absent")
    if stat.S_ISLNK(st.st_mode):
        target = os.fsencode(os.readlink(path))
        digest.update(b"link\0" + target + b"\0")
        return dict(kind="link", target=target)
    if stat.S_ISDIR(st.st_mode):
        digest.update(b"dir\0")
        return dict(kind="dir")
    if not stat.S_ISREG(st.st_mode):
        digest.update(b"special\0")
        return dict(kind="special")
    executable = bool(st.st_mode & 0o111)
    digest.update(b"file\0" + (b"x" if executable else b"-") + b"\0")
    file_digest = hashlib.sha256()
    fd = open_regular(path)
    if fd is None:
        digest.update(b"changed\0")
        return dict(kind="changed")
    size = 0
    with os.fdopen(fd, "rb") as f:
        while True:
            block = f.read(CHUNK)
            if not block:
                break
            size += len(block)
            file_digest.update(block)
    digest.update(file_digest.hexdigest().encode("ascii") + b"\0")
    return dict(kind="file", x=executable, sha256=file_digest.hexdigest(), size=size)


def content_hash(context, ignore=None, records=None):
    """Hash of every file of ``context`` that the .dockerignore rules keep.

    Returns (hexdigest, number of files hashed). When ``records`` is a dict, it gets
    {relative path: record} (see hash_file_into) of each file hashed, and of each
    directory kept (which is not hashed).
    """
    if ignore is None:
        ignore = DockerIgnore.from_context(context)
    digest = hashlib.sha256()
    count = 0
    context = os.path.abspath(context)
    for root, dirs, files in os.walk(context):
        rel_root = os.path.relpath(root, context)
        rel_root = "" if rel_root == "." else rel_root.replace(os.sep, "/") + "/"
        dirs.sort()
        kept = []
        for d in dirs:
            rel = rel_root + d
            full = os.path.join(root, d)
            if os.path.islink(full):
                files.append(d)
                continue
            if not ignore.skip_dir(rel):
                kept.append(d)
                if records is not None and not ignore.ignored(rel):
                    records[rel] = dict(kind="dir")
        dirs[:] = kept
        for name in sorted(files):
            rel = rel_root + name
            if ignore.ignored(rel):
                continue
            digest.update(os.fsencode(rel) + b"\0")
            record = hash_file_into(digest, os.path.join(root, name))
            if records is not None:
                records[rel] = record
            count += 1
    return digest.hexdigest(), count


def git_state(context, ignore=None):
    """Git view of ``context``: what the builder gets from it, as git already knows it.

    Returns None when the context is not inside a git work tree with at least one
    commit (or git is missing, or git will not read the work tree); then the context
    counts by content. Otherwise a dict:

    * ``commit``: the HEAD commit (reported and labelled, not part of the id);
    * ``tree``: sha256 over (path, mode, blob id) of every HEAD tree entry below the
      context that .dockerignore keeps, from one ``git ls-tree`` (no file is read);
    * ``dirty_hash``: None when nothing kept below the context differs from HEAD,
      else a hash of the content of the paths that do (tracked and untracked files;
      what git ignores does not show);
    * ``dirty_files``: how many paths differ (moved submodules included);
    * ``submodules``: {path: commit checked out there, or None} for each submodule
      (gitlink) and nested clone below the context that .dockerignore keeps;
    * what the build's snapshot is made of (_snapshot.py): ``top`` and ``prefix`` (see
      find_work_tree), ``entries`` [(path, mode, blob id)] of the tree hashed, and
      ``overlay`` {path: record} of the uncommitted paths hashed (see hash_file_into);
      paths relative to the context.

    Raises ContextOutsideWorkTree (see find_work_tree).
    """
    tree = find_work_tree(context)
    if tree is None:
        return None
    top, prefix = tree
    real_context = os.path.join(top, prefix) if prefix else top
    try:
        commit = git(top, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    except GitError:
        return None
    commit = commit.decode("ascii", "replace").strip()
    if not SHA_RE.match(commit):
        return None
    if prefix:
        # A context that git ignores (a build directory, say) has no git history:
        # its files never show in git status, so hash its content instead.
        try:
            git(top, "check-ignore", "-q", "--no-index", "./" + prefix + "/", literal=False)
            return None
        except GitError:
            pass
    if ignore is None:
        ignore = DockerIgnore.from_context(real_context)
    keep = IgnoreFilter(ignore)
    try:
        status = git(top, "status", "--porcelain=v1", "-z", "--untracked-files=all",
                     "--no-renames", "--ignore-submodules=dirty", "--", prefix or ".")
        listing = git(top, "ls-tree", "-r", "-z", "--full-tree", "HEAD", "--", prefix or ".")
    except GitError:
        # A context inside a submodule, say: count it by content.
        return None
    below = prefix + "/" if prefix else ""

    def relative(path):
        if not below:
            return path
        if path.startswith(below):
            return path[len(below):]
        return None

    digest = hashlib.sha256()
    submodules = {}
    recorded = {}
    entries = []
    for entry in listing.split(b"\0"):
        if not entry:
            continue
        meta, _tab, raw_path = entry.partition(b"\t")
        fields = meta.decode("ascii", "replace").split()
        path = raw_path.decode("utf-8", "surrogateescape")
        if prefix and path == prefix:
            # The context is a submodule of this work tree: its files are not in this tree.
            return None
        path = relative(path)
        if not path or len(fields) != 3 or keep.ignored(path):
            continue
        if fields[0] == GITLINK_MODE:
            # What the builder sees is the checkout there, not what HEAD records.
            recorded[path] = fields[2]
            continue
        digest.update(os.fsencode(path) + b"\0" + fields[0].encode("ascii") + b"\0"
                      + fields[2].encode("ascii") + b"\0")
        entries.append((path, fields[0], fields[2]))
    for path in recorded:
        submodules[path] = submodule_head(os.path.join(real_context, path))

    paths = set()
    moved = 0
    for entry in status.split(b"\0"):
        if len(entry) < 4:
            continue
        path = relative(entry[3:].decode("utf-8", "surrogateescape"))
        if path is None:
            continue
        path = path.rstrip("/")
        if not path or keep.ignored(path):
            continue
        if path in recorded:
            moved += 1
            continue
        full = os.path.join(real_context, path)
        if is_real_dir(full) and os.path.lexists(os.path.join(full, ".git")):
            # A new submodule or a nested clone: git does not list its files.
            submodules[path] = submodule_head(full)
            moved += 1
            continue
        paths.add(path)
    dirty_hash = None
    overlay = {}
    if paths:
        dirty = hashlib.sha256()
        for path in sorted(paths):
            dirty.update(os.fsencode(path) + b"\0")
            overlay[path] = hash_file_into(dirty, os.path.join(real_context, path))
        dirty_hash = dirty.hexdigest()
    return dict(commit=commit, tree=digest.hexdigest(), dirty_hash=dirty_hash,
                dirty_files=len(paths) + moved, submodules=submodules,
                top=top, prefix=prefix, entries=entries, overlay=overlay)


def _id_of(material):
    blob = json.dumps(material, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


def compute_source_id(context, dockerfile="Dockerfile", build_args=None, target=None,
                      labels=None, resolve_image=None):
    """Compute the source id of a build. Returns a dict.

    Keys: ``source_id`` (64 hex), ``short_id``, ``git_commit`` (or None), ``dirty``
    (bool), ``kind`` ("git" or "files"), ``base_images`` ({ref: id or None}),
    ``dockerfile_text`` (str), ``material`` (what the id is the hash of; see
    ``rekey_bases``), ``snapshot`` (what was hashed, as _snapshot.py builds from it).
    """
    context = os.path.abspath(context)
    build_args = dict((str(k), "" if v is None else str(v)) for k, v in (build_args or {}).items())
    labels = dict((str(k), "" if v is None else str(v)) for k, v in (labels or {}).items())
    dockerfile_bytes = read_dockerfile(context, dockerfile)
    dockerfile_text = dockerfile_bytes.decode("utf-8", "replace")
    ignore_bytes = read_dockerignore(context)
    ignore = DockerIgnore(ignore_bytes.decode("utf-8", "replace"))

    git = git_state(context, ignore)
    if git is not None:
        # Not the commit: a commit that changes nothing the builder gets keeps the id.
        ctx = dict(kind="git", tree=git["tree"], dirty=git["dirty_hash"],
                   submodules=git["submodules"])
        snapshot = dict(kind="git", context=context, top=git["top"], prefix=git["prefix"],
                        entries=git["entries"], overlay=git["overlay"], submodules=git["submodules"])
    else:
        files = {}
        digest, _count = content_hash(context, ignore, files)
        ctx = dict(kind="files", hash=digest)
        snapshot = dict(kind="files", context=context, files=files)
    snapshot.update(ignore=ignore, dockerfile=normal_dockerfile_path(context, dockerfile),
                    dockerfile_bytes=dockerfile_bytes, dockerignore_bytes=ignore_bytes)

    bases = {}
    for ref in base_images(dockerfile_text, build_args):
        bases[ref] = resolve_image(ref) if resolve_image else None

    material = dict(
        v=SOURCE_ID_VERSION,
        context=ctx,
        dockerfile=dict(path=normal_dockerfile_path(context, dockerfile),
                        sha256=hashlib.sha256(dockerfile_bytes).hexdigest()),
        dockerignore=hashlib.sha256(ignore_bytes).hexdigest(),
        build_args=build_args,
        target=target or "",
        labels=labels,
        base_images=bases,
    )
    source_id = _id_of(material)
    return dict(
        source_id=source_id,
        short_id=source_id[:SHORT_ID_LENGTH],
        git_commit=git["commit"] if git else None,
        dirty=bool(git and git["dirty_files"]),
        kind=ctx["kind"],
        base_images=bases,
        dockerfile_text=dockerfile_text,
        material=material,
        snapshot=snapshot,
    )


def rekey_bases(src, resolve_image):
    """The source id of a build that has run: ``src`` (from compute_source_id, before the
    build) with each base image that was absent then resolved again.

    A builder that pulls a missing base may leave it in the local image store (the
    Engine API builder does) or only in its own cache (BuildKit does): the id recorded
    for the image is this one, so that the next run, which sees the store as the
    build left it, computes the same id whichever builder ran. Bases that were
    present keep the id they had when the build started, and nothing else is read
    again (the build saw the context as it was then).
    """
    bases = dict(src["base_images"])
    for ref, iid in bases.items():
        if iid is None:
            bases[ref] = resolve_image(ref)
    if bases == src["base_images"]:
        return src
    material = dict(src["material"], base_images=bases)
    source_id = _id_of(material)
    return dict(src, source_id=source_id, short_id=source_id[:SHORT_ID_LENGTH], base_images=bases,
                material=material)
