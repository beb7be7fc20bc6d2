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
repository's content never runs code here (see the git section).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import stat
import subprocess

from ansible_collections.appfleet.docker.plugins.module_utils._docker import AppfleetError

SOURCE_ID_VERSION = 2
SHORT_ID_LENGTH = 12

_CHUNK = 1024 * 1024


# --------------------------------------------------------------------------- repository files

# A repository's author controls its .dockerignore and its Dockerfile: they are read as data,
# only as regular files inside the checkout and no bigger than these, so that a link to
# /dev/zero, a FIFO or a file of the host never makes this read forever or read the host.
DOCKERIGNORE_MAX_BYTES = 1024 * 1024
DOCKERFILE_MAX_BYTES = 1024 * 1024

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


def _open_regular(path):
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
    if not _inside(real, os.path.realpath(context)):
        raise RepositoryFileRefused(rel, "resolves to %s, outside the context" % real, noun)
    too_big = "is bigger than %d bytes" % limit
    if st.st_size > limit:
        raise RepositoryFileRefused(rel, too_big, noun)
    fd = _open_regular(path)
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


def read_dockerignore(context):
    """The context's .dockerignore bytes (b"" when it has none), read as data."""
    return read_repo_file(context, ".dockerignore", ".dockerignore", DOCKERIGNORE_MAX_BYTES,
                          missing_ok=True) or b""


# --------------------------------------------------------------------------- .dockerignore

class IgnorePattern(object):
    """One line of a .dockerignore file, compiled."""

    def __init__(self, text, exclusion):
        self.text = text
        self.exclusion = exclusion
        self.regex = re.compile(_pattern_to_regex(text), re.DOTALL)
        self.parts = text.split("/")

    def match(self, path):
        return self.regex.match(path) is not None

    def could_match_below(self, dir_parts):
        """True when this pattern could match the directory or something inside it."""
        for i, part in enumerate(self.parts):
            if "**" in part:
                return True
            if i >= len(dir_parts):
                return True
            if re.match(_pattern_to_regex(part), dir_parts[i]) is None:
                return False
        # The pattern names the directory itself or one of its parents.
        return True


def _pattern_to_regex(pattern):
    """Translate a Docker ignore pattern into a Python regex string.

    Go ``filepath.Match`` semantics (``*`` and ``?`` never match ``/``, ``[...]`` classes
    with ``^`` negation, ``\\`` escapes) plus ``**``, which matches any number of
    directories, zero included.
    """
    out = ["^"]
    i = 0
    n = len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            if i + 1 < n and pattern[i + 1] == "*":
                i += 2
                if i < n and pattern[i] == "/":
                    i += 1
                    out.append("(?:.*/)?")
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end <= i + 1:
                # An unterminated class is a literal bracket (Go reports ErrBadPattern
                # and Docker then matches nothing; a literal is the safer reading).
                out.append(re.escape(ch))
            else:
                body = pattern[i + 1:end]
                negate = body.startswith("^")
                if negate:
                    body = body[1:]
                body = body.replace("\\", "\\\\").replace("[", "\\[")
                out.append("[" + ("^/" if negate else "") + body + "]")
                i = end + 1
                continue
        elif ch == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(ch))
        i += 1
    out.append("$")
    return "".join(out)


def _clean_path(path):
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


def parse_dockerignore(text):
    """Parse .dockerignore text into a list of IgnorePattern, in file order."""
    patterns = []
    for raw in text.splitlines():
        if raw.startswith("\ufeff"):
            raw = raw[1:]
        if raw.startswith("#"):
            continue
        line = raw.strip()
        if not line:
            continue
        exclusion = line.startswith("!")
        if exclusion:
            line = line[1:].strip()
        if not line:
            continue
        line = _clean_path(line)
        if len(line) > 1 and line.startswith("/"):
            line = line.lstrip("/") or "."
        patterns.append(IgnorePattern(line, exclusion))
    return patterns


class DockerIgnore(object):
    """The rules of one .dockerignore: ``ignored(relpath)`` like Docker decides it."""

    def __init__(self, text=""):
        self.patterns = parse_dockerignore(text)
        self.has_exclusions = any(p.exclusion for p in self.patterns)

    @classmethod
    def from_context(cls, context):
        return cls(read_dockerignore(context).decode("utf-8", "replace"))

    def ignored(self, relpath):
        """True when ``relpath`` (slash separated, relative to the context) is excluded.

        A pattern matches a path or any of its parent directories; the last
        matching pattern wins, ``!`` patterns re-include.
        """
        relpath = _clean_path(relpath)
        parents = relpath.split("/")[:-1]
        matched = False
        for pattern in self.patterns:
            # An exclusion only matters once matched, an inclusion only before.
            if pattern.exclusion != matched:
                continue
            hit = pattern.match(relpath)
            if not hit:
                for i in range(len(parents)):
                    if pattern.match("/".join(parents[:i + 1])):
                        hit = True
                        break
            if hit:
                matched = not pattern.exclusion
        return matched

    def skip_dir(self, relpath):
        """True when a walk can skip directory ``relpath`` and everything below it."""
        if not self.ignored(relpath):
            return False
        if not self.has_exclusions:
            return True
        parts = _clean_path(relpath).split("/")
        return not any(p.exclusion and p.could_match_below(parts) for p in self.patterns)


# --------------------------------------------------------------------------- hashing helpers

def _hash_file_into(digest, path):
    """Feed one file's type, exec bit and content (or link target) into ``digest``."""
    try:
        st = os.lstat(path)
    except (IOError, OSError):
        digest.update(b"absent\0")
        return
    if stat.S_ISLNK(st.st_mode):
        digest.update(b"link\0" + os.fsencode(os.readlink(path)) + b"\0")
    elif stat.S_ISDIR(st.st_mode):
        digest.update(b"dir\0")
    elif stat.S_ISREG(st.st_mode):
        digest.update(b"file\0" + (b"x" if st.st_mode & 0o111 else b"-") + b"\0")
        file_digest = hashlib.sha256()
        fd = _open_regular(path)
        if fd is None:
            digest.update(b"changed\0")
            return
        with os.fdopen(fd, "rb") as f:
            while True:
                block = f.read(_CHUNK)
                if not block:
                    break
                file_digest.update(block)
        digest.update(file_digest.hexdigest().encode("ascii") + b"\0")
    else:
        digest.update(b"special\0")


def content_hash(context, ignore=None):
    """Hash of every file of ``context`` that the .dockerignore rules keep.

    Returns (hexdigest, number of files hashed).
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
        dirs[:] = kept
        for name in sorted(files):
            rel = rel_root + name
            if ignore.ignored(rel):
                continue
            digest.update(os.fsencode(rel) + b"\0")
            _hash_file_into(digest, os.path.join(root, name))
            count += 1
    return digest.hexdigest(), count


# --------------------------------------------------------------------------- git

# A repository's content must never run code here (this runs as root on the managed
# host). git finds its repository by walking up from the directory it runs in, and a
# repository author can commit a directory that looks like a git directory (HEAD,
# objects/, refs/, a config with core.worktree and core.fsmonitor=<command>, hooks/).
# So git never discovers anything here: the work tree is found without git (the
# nearest real .git directory above the context, which a clone makes and which no
# tree entry can create), and every call names that .git and its work tree
# explicitly, turns fsmonitor and hooks off, refuses implicit bare repositories and
# reads neither the system nor the global git configuration (so the source id depends
# on the checkout alone). The checkout's own .git/config is written by the clone, not
# by the repository's author: it is trusted when it, its .git and the work tree belong
# to this user or root. git skips its own ownership check for an explicit --git-dir,
# so this module does it (and never sets safe.directory=*): a work tree owned by
# another user is not read by git, and its context counts by content.
_GIT_OPTIONS = [
    "--no-optional-locks",
    "-c", "core.fsmonitor=false",
    "-c", "core.hooksPath=/dev/null",
    "-c", "safe.bareRepository=explicit",
]


class GitError(AppfleetError):
    """git failed on the build context; the wrapper adds the app and the step."""

    needs_context = True

    def __init__(self, msg, **result):
        super(GitError, self).__init__("git: %s" % msg, **result)


class ContextOutsideWorkTree(Exception):
    """The build context is in a git work tree but resolves outside it (a symlink)."""

    def __init__(self, context, top, real):
        super(ContextOutsideWorkTree, self).__init__(
            "context %s is in the git work tree %s but resolves to %s, outside it; a symlink "
            "in the repository must not lead the build out of its checkout" % (context, top, real))
        self.context = context
        self.top = top
        self.real = real


def _is_real_dir(path):
    """True for a directory that is not itself a symlink (parents may be)."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except (IOError, OSError):
        return False


def _owned_by_us_or_root(path):
    """git's ownership check, which an explicit --git-dir skips: someone else's .git/config
    could name commands (clean filters) that git status runs."""
    try:
        return os.lstat(path).st_uid in (os.geteuid(), 0)
    except (IOError, OSError):
        return False


def _inside(path, top):
    return path == top or path.startswith(top.rstrip(os.sep) + os.sep)


def find_work_tree(context):
    """The git work tree that holds ``context``, found without running git.

    Returns ``(top, prefix)``: ``top`` the real path of the work tree, ``prefix`` the
    context's real path below it (slash separated, ``""`` at the top); or None when
    no ancestor of the context (itself included) has a ``.git`` directory.

    Only a real ``.git`` directory counts: not a ``.git`` file (linked work trees,
    submodules) and not a symlink, and not a committed look-alike (git refuses
    ``.git`` in tree entries, so a clone never holds one). A symlink to another work
    tree, found inside a work tree, does not count either. None too when the work
    tree, its ``.git`` or ``.git/config`` belong to someone else than this user or
    root.

    Raises ContextOutsideWorkTree when the context resolves outside the work tree it
    sits in.
    """
    path = os.path.abspath(context)
    ancestors = [path]
    while os.path.dirname(ancestors[-1]) != ancestors[-1]:
        ancestors.append(os.path.dirname(ancestors[-1]))
    has_git = [_is_real_dir(os.path.join(d, ".git")) for d in ancestors]
    top = None
    for i, d in enumerate(ancestors):
        if not has_git[i]:
            continue
        if os.path.islink(d) and any(has_git[i + 1:]):
            # A symlink that a repository holds, to another work tree on the host.
            continue
        top = d
        break
    if top is None:
        return None
    real_top = os.path.realpath(top)
    real = os.path.realpath(path)
    if not _inside(real, real_top):
        raise ContextOutsideWorkTree(context, top, real)
    if not _is_real_dir(os.path.join(real_top, ".git")):
        return None
    if not all(_owned_by_us_or_root(os.path.join(real_top, p)) for p in ("", ".git", ".git/config")):
        return None
    prefix = os.path.relpath(real, real_top)
    return real_top, "" if prefix == os.curdir else prefix.replace(os.sep, "/")


def _git_env(literal):
    env = dict((k, v) for k, v in os.environ.items() if not k.startswith("GIT_"))
    env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, GIT_TERMINAL_PROMPT="0",
               LC_ALL="C")
    if literal:
        env["GIT_LITERAL_PATHSPECS"] = "1"
    return env


def _git(top, *args, literal=True):
    """Run git on the work tree ``top`` and its own ``top/.git``, nothing else.

    Pathspecs are literal unless ``literal=False`` (check-ignore refuses the flag;
    give it paths that start with ``./`` so that none reads as pathspec magic).
    """
    cmd = ["git", "--git-dir=" + os.path.join(top, ".git"), "--work-tree=" + top]
    cmd += _GIT_OPTIONS + list(args)
    try:
        proc = subprocess.run(cmd, cwd=top, env=_git_env(literal), stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    except OSError as exc:
        raise GitError("cannot run git: %s" % exc)
    if proc.returncode != 0:
        raise GitError(proc.stderr.decode("utf-8", "replace").strip())
    return proc.stdout


_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
GITLINK_MODE = "160000"


class _IgnoreFilter(object):
    """``DockerIgnore.ignored`` for many paths: a directory the rules skip whole is
    decided once for everything below it."""

    def __init__(self, ignore):
        self.ignore = ignore
        self.skipped = {}

    def ignored(self, path):
        parts = path.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            skip = self.skipped.get(parent)
            if skip is None:
                skip = self.skipped[parent] = self.ignore.skip_dir(parent)
            if skip:
                return True
        return self.ignore.ignored(path)


def _read_small(path):
    fd = _open_regular(path)
    if fd is None:
        raise IOError(errno.EINVAL, "not a regular file", path)
    with os.fdopen(fd, "rb") as f:
        return f.read(4096).decode("utf-8", "replace").strip()


def submodule_head(path):
    """The commit checked out in the submodule (or nested clone) at ``path``.

    Read from its files, without running git: ``path/.git`` (a ``gitdir:`` file or a
    directory), its HEAD, then loose or packed refs. None when nothing is checked out
    there (an empty directory); ``"unreadable"`` when HEAD cannot be resolved.
    """
    dotgit = os.path.join(path, ".git")
    try:
        st = os.lstat(dotgit)
        if stat.S_ISREG(st.st_mode):
            line = _read_small(dotgit)
            if not line.startswith("gitdir:"):
                return "unreadable"
            gitdir = os.path.join(path, line[len("gitdir:"):].strip())
        elif stat.S_ISDIR(st.st_mode):
            gitdir = dotgit
        else:
            return "unreadable"
    except (IOError, OSError):
        return None
    try:
        head = _read_small(os.path.join(gitdir, "HEAD"))
        common = gitdir
        if os.path.exists(os.path.join(gitdir, "commondir")):
            common = os.path.join(gitdir, _read_small(os.path.join(gitdir, "commondir")))
        for _hop in range(5):
            if _SHA.match(head):
                return head
            if not head.startswith("ref:"):
                break
            ref = head[len("ref:"):].strip()
            if not ref.startswith("refs/") or ".." in ref.split("/"):
                break
            head = None
            for base in (gitdir, common):
                if os.path.isfile(os.path.join(base, ref)):
                    head = _read_small(os.path.join(base, ref))
                    break
            fd = None if head is not None else _open_regular(os.path.join(common, "packed-refs"))
            if fd is not None:
                with os.fdopen(fd, "rb") as f:
                    for raw in f:
                        fields = raw.decode("utf-8", "replace").split()
                        if len(fields) == 2 and fields[1] == ref:
                            head = fields[0]
                            break
            if head is None:
                break
    except (IOError, OSError):
        pass
    return "unreadable"


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
      (gitlink) and nested clone below the context that .dockerignore keeps.

    Raises ContextOutsideWorkTree (see find_work_tree).
    """
    tree = find_work_tree(context)
    if tree is None:
        return None
    top, prefix = tree
    real_context = os.path.join(top, prefix) if prefix else top
    try:
        commit = _git(top, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    except GitError:
        return None
    commit = commit.decode("ascii", "replace").strip()
    if not _SHA.match(commit):
        return None
    if prefix:
        # A context that git ignores (a build directory, say) has no git history:
        # its files never show in git status, so hash its content instead.
        try:
            _git(top, "check-ignore", "-q", "--no-index", "./" + prefix + "/", literal=False)
            return None
        except GitError:
            pass
    if ignore is None:
        ignore = DockerIgnore.from_context(real_context)
    keep = _IgnoreFilter(ignore)
    try:
        status = _git(top, "status", "--porcelain=v1", "-z", "--untracked-files=all",
                      "--no-renames", "--ignore-submodules=dirty", "--", prefix or ".")
        listing = _git(top, "ls-tree", "-r", "-z", "--full-tree", "HEAD", "--", prefix or ".")
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
        if _is_real_dir(full) and os.path.lexists(os.path.join(full, ".git")):
            # A new submodule or a nested clone: git does not list its files.
            submodules[path] = submodule_head(full)
            moved += 1
            continue
        paths.add(path)
    dirty_hash = None
    if paths:
        dirty = hashlib.sha256()
        for path in sorted(paths):
            dirty.update(os.fsencode(path) + b"\0")
            _hash_file_into(dirty, os.path.join(real_context, path))
        dirty_hash = dirty.hexdigest()
    return dict(commit=commit, tree=digest.hexdigest(), dirty_hash=dirty_hash,
                dirty_files=len(paths) + moved, submodules=submodules)


# --------------------------------------------------------------------------- Dockerfile

_ARG_REF = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-+][^}]*)?\}|([A-Za-z_][A-Za-z0-9_]*))")


def _logical_lines(text):
    """Dockerfile instructions: comments dropped, continuation lines joined."""
    escape = "\\"
    lines = text.splitlines()
    # Parser directives sit at the very top: '# escape=`' changes the escape char.
    for line in lines:
        m = re.match(r"^\s*#\s*([a-zA-Z]+)\s*=\s*(\S+)\s*$", line)
        if not m:
            break
        if m.group(1).lower() == "escape" and m.group(2) in ("`", "\\"):
            escape = m.group(2)
    current = ""
    for line in lines:
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue
        if stripped.endswith(escape):
            current += stripped[:-1] + " "
            continue
        current += stripped
        yield current
        current = ""
    if current.strip():
        yield current


def _substitute(value, args):
    def repl(m):
        name = m.group(1) or m.group(2)
        return args.get(name, "")
    return _ARG_REF.sub(repl, value)


def base_images(dockerfile_text, build_args=None):
    """External images a Dockerfile builds from, in order of first use.

    FROM and COPY/ADD --from references; ``scratch``, earlier stage names and
    stage indexes are left out. ARGs declared before the first FROM are
    substituted (their defaults, overridden by ``build_args``).
    """
    build_args = dict(build_args or {})
    args = {}
    stages = set()
    refs = []
    seen_from = False
    for line in _logical_lines(dockerfile_text):
        parts = line.split()
        if not parts:
            continue
        instr = parts[0].upper()
        rest = parts[1:]
        if instr == "ARG" and not seen_from:
            for decl in rest:
                name, sep, default = decl.partition("=")
                if name in build_args:
                    args[name] = build_args[name]
                else:
                    args[name] = default.strip("\"'") if sep else ""
        elif instr == "FROM":
            seen_from = True
            words = [w for w in rest if not w.startswith("--")]
            if not words:
                continue
            ref = _substitute(words[0], args)
            known = ref.lower() == "scratch" or ref.lower() in stages
            if len(words) >= 3 and words[1].lower() == "as":
                stages.add(words[2].lower())
            if not known and ref not in refs:
                refs.append(ref)
        elif instr in ("COPY", "ADD"):
            for w in rest:
                if w.startswith("--from="):
                    ref = _substitute(w[len("--from="):], args)
                    if ref.isdigit() or ref.lower() in stages or ref.lower() == "scratch":
                        continue
                    if ref not in refs:
                        refs.append(ref)
    return refs


def uses_buildkit_syntax(dockerfile_text):
    """True when the Dockerfile needs BuildKit (RUN --mount, --network, --security, heredocs)."""
    for line in _logical_lines(dockerfile_text):
        parts = line.split()
        if not parts:
            continue
        instr = parts[0].upper()
        flags = []
        for word in parts[1:]:
            if not word.startswith("--"):
                break
            flags.append(word)
        if instr == "RUN" and any(w.startswith(("--mount", "--network", "--security")) for w in flags):
            return True
        if instr in ("RUN", "COPY") and re.search(r"<<-?[\"']?[A-Za-z_]", line):
            return True
        if instr in ("COPY", "ADD") and any(w.startswith(("--link", "--chmod", "--parents", "--exclude")) for w in flags):
            return True
    return False


# --------------------------------------------------------------------------- source id

def read_dockerfile(context, dockerfile):
    """The Dockerfile's bytes, read as data (see read_repo_file)."""
    context = os.path.abspath(context)
    rel = os.path.relpath(dockerfile, context) if os.path.isabs(dockerfile) else dockerfile
    return read_repo_file(context, rel, "Dockerfile", DOCKERFILE_MAX_BYTES)


def normal_dockerfile_path(context, dockerfile):
    """The Dockerfile's path as the id sees it: relative to the context, cleaned
    (``./Dockerfile`` and ``a/../Dockerfile`` are ``Dockerfile``)."""
    path = dockerfile.replace(os.sep, "/")
    if os.path.isabs(dockerfile):
        path = os.path.relpath(dockerfile, context).replace(os.sep, "/")
    return _clean_path(path)


def _id_of(material):
    blob = json.dumps(material, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


def compute_source_id(context, dockerfile="Dockerfile", build_args=None, target=None,
                      labels=None, resolve_image=None):
    """Compute the source id of a build. Returns a dict.

    Keys: ``source_id`` (64 hex), ``short_id``, ``git_commit`` (or None), ``dirty``
    (bool), ``kind`` ("git" or "files"), ``base_images`` ({ref: id or None}),
    ``dockerfile_text`` (str), ``material`` (what the id is the hash of; see
    ``rekey_bases``).
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
    else:
        digest, _count = content_hash(context, ignore)
        ctx = dict(kind="files", hash=digest)

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
