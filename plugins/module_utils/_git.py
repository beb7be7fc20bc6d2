# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one git runner of the collection, and what git facts are read without running it.

Private to this collection (leading underscore): not a public API.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import subprocess

from ansible_collections.appfleet.docker.plugins.module_utils._docker import AppfleetError
from ansible_collections.appfleet.docker.plugins.module_utils._repo_files import inside, open_regular

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


def is_real_dir(path):
    """True for a directory that is not itself a symlink (parents may be)."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except (IOError, OSError):
        return False


def owned_by_us_or_root(path):
    """git's ownership check, which an explicit --git-dir skips: someone else's .git/config
    could name commands (clean filters) that git status runs."""
    try:
        return os.lstat(path).st_uid in (os.geteuid(), 0)
    except (IOError, OSError):
        return False


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
    has_git = [is_real_dir(os.path.join(d, ".git")) for d in ancestors]
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
    if not inside(real, real_top):
        raise ContextOutsideWorkTree(context, top, real)
    if not is_real_dir(os.path.join(real_top, ".git")):
        return None
    if not all(owned_by_us_or_root(os.path.join(real_top, p)) for p in ("", ".git", ".git/config")):
        return None
    prefix = os.path.relpath(real, real_top)
    return real_top, "" if prefix == os.curdir else prefix.replace(os.sep, "/")


def git_env(literal=True, own_config_only=True, extra=None):
    """The environment of a git call: no inherited GIT_* variable, no prompt, the C locale.

    ``own_config_only`` leaves out the system and global git configuration (the source id
    depends on the checkout alone); a call to a git server keeps them, as the git module
    that clones does. Pathspecs are literal unless ``literal=False``.
    """
    env = dict((k, v) for k, v in os.environ.items() if not k.startswith("GIT_"))
    env.update(GIT_TERMINAL_PROMPT="0", LC_ALL="C")
    if own_config_only:
        env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull)
    if literal:
        env["GIT_LITERAL_PATHSPECS"] = "1"
    env.update(extra or {})
    return env


def git_command(args, top=None, git_dir=None):
    """``(argv, cwd)`` of git ``args``: pinned to the work tree ``top`` and its own ``.git``,
    or to the git directory ``git_dir`` alone (no work tree: object reads), or to none
    (run in ``/``); fsmonitor and hooks off in every case."""
    cmd = ["git"]
    cwd = "/"
    if top is not None:
        cmd += ["--git-dir=" + os.path.join(top, ".git"), "--work-tree=" + top]
        cwd = top
    elif git_dir is not None:
        cmd += ["--git-dir=" + git_dir]
        cwd = git_dir
    return cmd + _GIT_OPTIONS + list(args), cwd


def run_git(args, top=None, timeout=None, literal=True, own_config_only=True, env=None, git_dir=None, stdin=None):
    """``(rc, stdout bytes, stderr str)`` of git ``args``, with fsmonitor and hooks off.

    With ``top``: on the work tree ``top`` and its own ``top/.git``, nothing else (no
    discovery), run in ``top``. With ``git_dir`` instead: on that git directory, with no
    work tree (reading objects). Without either: run in ``/``, for calls that need no
    repository (``ls-remote``). ``env`` adds variables (``GIT_SSH_COMMAND``); ``stdin``
    is an open file to read from, or a file descriptor. rc 124 when git did not answer within
    ``timeout`` seconds, 127 when it cannot run.
    """
    cmd, cwd = git_command(args, top, git_dir)
    try:
        proc = subprocess.run(cmd, cwd=cwd, stdin=subprocess.DEVNULL if stdin is None else stdin,
                              stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, check=False, timeout=timeout,
                              env=git_env(literal, own_config_only, env))
    except subprocess.TimeoutExpired:
        return 124, b"", "no answer within %s s" % timeout
    except FileNotFoundError as exc:
        return 127, b"", "git is not installed (%s)" % exc
    except OSError as exc:
        return 127, b"", "cannot run git: %s" % exc
    return proc.returncode, proc.stdout, proc.stderr.decode("utf-8", "replace")


def popen_git(args, stdin, top=None, git_dir=None):
    """git ``args`` started as run_git runs it, its output a pipe to read as a stream
    (``cat-file --batch`` of a whole tree); ``stdin`` an open file. The caller waits for it."""
    cmd, cwd = git_command(args, top, git_dir)
    try:
        return subprocess.Popen(cmd, cwd=cwd, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=git_env())
    except OSError as exc:
        raise GitError("cannot run git: %s" % exc)


def git(top, *args, literal=True):
    """The output of git ``args`` on the work tree ``top`` (see run_git); GitError when it fails.

    Pathspecs are literal unless ``literal=False`` (check-ignore refuses the flag;
    give it paths that start with ``./`` so that none reads as pathspec magic).
    """
    rc, out, err = run_git(args, top=top, literal=literal)
    if rc != 0:
        raise GitError(err.strip())
    return out


# The userinfo of a URL (``scheme://user:password@``); git's scp-like form (user@host:path)
# carries no password.
# Up to the last "@" of the authority, as git and curl read it (a password may hold "@").
URL_USERINFO_RE = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^\s/?#'\"]*)@")
# Schemes whose user name may itself be the secret (https://<token>@host/...).
SECRET_USER_SCHEMES = ("http://", "https://", "ftp://", "ftps://")
MASK = "***"


def _mask_userinfo(match):
    scheme, userinfo = match.group(1), match.group(2)
    user, colon, _password = userinfo.partition(":")
    if colon:
        return "%s%s:%s@" % (scheme, user, MASK)
    if scheme.lower() in SECRET_USER_SCHEMES and user:
        return "%s%s@" % (scheme, MASK)
    return match.group(0)


def mask_url(text):
    """``text`` (a repository URL, or a message naming one) with the credentials of each URL masked.

    ``https://user:token@host/x`` becomes ``https://user:***@host/x``; an HTTP(S) URL with
    a user name only (a token) becomes ``https://***@host/x``; ``ssh://git@host/x`` and
    ``git@host:x`` keep their user name (not a secret). What git is given stays the real URL:
    this is for what a module returns or says.
    """
    if not text:
        return text
    return URL_USERINFO_RE.sub(_mask_userinfo, text)


def url_secrets(url):
    """The parts of ``url`` that ``mask_url`` hides (for a module's no_log values)."""
    found = []
    for match in URL_USERINFO_RE.finditer(url or ""):
        masked = _mask_userinfo(match)
        if masked != match.group(0):
            user, colon, password = match.group(2).partition(":")
            found.append(password if colon else user)
    return [secret for secret in found if secret]


SHA_RE = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?\Z")
GITLINK_MODE = "160000"


def read_small(path):
    """The first line or so of a small git file (HEAD, a ref), never blocking on a FIFO."""
    fd = open_regular(path)
    if fd is None:
        raise IOError(errno.EINVAL, "not a regular file", path)
    with os.fdopen(fd, "rb") as f:
        return f.read(4096).decode("utf-8", "replace").strip()


def submodule_git_dir(path):
    """The git directory of the submodule (or nested clone) at ``path``, read from its
    ``.git`` (a ``gitdir:`` file or a directory) without running git. None when nothing
    is checked out there; ``"unreadable"`` when ``.git`` is something else."""
    dotgit = os.path.join(path, ".git")
    try:
        st = os.lstat(dotgit)
        if stat.S_ISREG(st.st_mode):
            line = read_small(dotgit)
            if not line.startswith("gitdir:"):
                return "unreadable"
            return os.path.join(path, line[len("gitdir:"):].strip())
        if stat.S_ISDIR(st.st_mode):
            return dotgit
        return "unreadable"
    except (IOError, OSError):
        return None


def submodule_head(path):
    """The commit checked out in the submodule (or nested clone) at ``path``.

    Read from its files, without running git: ``path/.git`` (a ``gitdir:`` file or a
    directory), its HEAD, then loose or packed refs. None when nothing is checked out
    there (an empty directory); ``"unreadable"`` when HEAD cannot be resolved.
    """
    gitdir = submodule_git_dir(path)
    if gitdir is None or gitdir == "unreadable":
        return gitdir
    try:
        head = read_small(os.path.join(gitdir, "HEAD"))
        common = gitdir
        if os.path.exists(os.path.join(gitdir, "commondir")):
            common = os.path.join(gitdir, read_small(os.path.join(gitdir, "commondir")))
        for _hop in range(5):
            if SHA_RE.match(head):
                return head
            if not head.startswith("ref:"):
                break
            ref = head[len("ref:"):].strip()
            if not ref.startswith("refs/") or ".." in ref.split("/"):
                break
            head = None
            for base in (gitdir, common):
                if os.path.isfile(os.path.join(base, ref)):
                    head = read_small(os.path.join(base, ref))
                    break
            fd = None if head is not None else open_regular(os.path.join(common, "packed-refs"))
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
