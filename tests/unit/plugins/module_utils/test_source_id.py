"""Source id of a build context: which changes make a new image and which do not."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import pytest

from ansible_collections.appfleet.docker.plugins.module_utils import _dockerignore, _git, _repo_files, _source_id
from ansible_collections.appfleet.docker.plugins.module_utils._source_id import compute_source_id

DOCKERFILE = "FROM base:1\nCOPY . /app\n"
IGNORE = "*.log\nscratch/\n"
BASES = {"base:1": "sha256:" + "a" * 64}


def git(path, *args):
    subprocess.run(["git", "-C", str(path), "-c", "user.email=t@example.invalid", "-c", "user.name=t"]
                   + list(args), check=True, capture_output=True)


def make_context(path, use_git):
    path.mkdir()
    (path / "Dockerfile").write_text(DOCKERFILE)
    (path / ".dockerignore").write_text(IGNORE)
    (path / "app.txt").write_text("v1\n")
    (path / "debug.log").write_text("log 1\n")
    (path / "scratch").mkdir()
    (path / "scratch" / "tmp.bin").write_text("tmp\n")
    (path / ".gitignore").write_text("local.env\n")
    if use_git:
        git(path, "init", "-q")
        git(path, "add", "-A")
        git(path, "commit", "-qm", "first")
    return path


def source_id(path, **kwargs):
    kwargs.setdefault("resolve_image", BASES.get)
    return compute_source_id(str(path), **kwargs)["source_id"]


def _write(rel, text):
    def change(path, kwargs):
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_text(text)
    return change


def _touch(rel):
    def change(path, kwargs):
        st = os.stat(path / rel)
        os.utime(path / rel, (st.st_atime + 100, st.st_mtime + 100))
    return change


def _chmod_x(rel):
    def change(path, kwargs):
        os.chmod(path / rel, 0o755)
    return change


def _kwarg(key, value):
    def change(path, kwargs):
        kwargs[key] = value
    return change


def _remove(rel):
    def change(path, kwargs):
        os.unlink(path / rel)
    return change


COMMON = [
    ("tracked file edited", _write("app.txt", "v2\n"), True),
    ("new file", _write("new.txt", "hello\n"), True),
    ("new file in a new directory", _write("pkg/mod.txt", "hello\n"), True),
    ("file removed", _remove("app.txt"), True),
    ("dockerignored file edited", _write("debug.log", "log 2\n"), False),
    ("new dockerignored file", _write("other.log", "x\n"), False),
    ("file in dockerignored directory", _write("scratch/more.bin", "x\n"), False),
    ("mtime only", _touch("app.txt"), False),
    ("exec bit", _chmod_x("app.txt"), True),
    ("dockerfile edited", _write("Dockerfile", DOCKERFILE + "ENV A=1\n"), True),
    ("dockerignore edited", _write(".dockerignore", IGNORE + "*.tmp\n"), True),
    ("build arg added", _kwarg("build_args", {"VERSION": "2"}), True),
    ("target set", _kwarg("target", "prod"), True),
    ("label added", _kwarg("labels", {"team": "a"}), True),
    ("base image refreshed", _kwarg("resolve_image", {"base:1": "sha256:" + "b" * 64}.get), True),
    ("base image missing locally", _kwarg("resolve_image", lambda ref: None), True),
]


@pytest.mark.parametrize("use_git", [True, False], ids=["git", "plain"])
@pytest.mark.parametrize("what, change, changes_id", COMMON, ids=[c[0] for c in COMMON])
def test_change_and_id(tmp_path, use_git, what, change, changes_id):
    ctx = make_context(tmp_path / "ctx", use_git)
    before = source_id(ctx)
    kwargs = {}
    change(ctx, kwargs)
    after = source_id(ctx, **kwargs)
    assert (before != after) is changes_id, what


def test_build_arg_value_matters(tmp_path):
    ctx = make_context(tmp_path / "ctx", True)
    assert source_id(ctx, build_args={"V": "1"}) != source_id(ctx, build_args={"V": "2"})
    assert source_id(ctx, build_args={"A": "1", "B": "2"}) == source_id(ctx, build_args={"B": "2", "A": "1"})


def test_dockerfile_path_matters(tmp_path):
    ctx = make_context(tmp_path / "ctx", True)
    shutil.copy(ctx / "Dockerfile", ctx / "Dockerfile.prod")
    git(ctx, "add", "-A")
    git(ctx, "commit", "-qm", "prod dockerfile")
    assert source_id(ctx) != source_id(ctx, dockerfile="Dockerfile.prod")


@pytest.mark.parametrize("what, change, changes_id", [
    # v2: the id is what the builder gets, not the commit
    ("empty commit", lambda p: git(p, "commit", "-q", "--allow-empty", "-m", "empty"), False),
    ("gitignored file", lambda p: (p / "local.env").write_text("X=1\n"), False),
    ("edit then revert", lambda p: ((p / "app.txt").write_text("v2\n"), (p / "app.txt").write_text("v1\n")), False),
    ("staged edit", lambda p: ((p / "app.txt").write_text("v3\n"), git(p, "add", "app.txt")), True),
])
def test_git_only_changes(tmp_path, what, change, changes_id):
    ctx = make_context(tmp_path / "ctx", True)
    before = source_id(ctx)
    change(ctx)
    assert (before != source_id(ctx)) is changes_id, what


def test_commit_of_dirty_work_changes_id_and_commit(tmp_path):
    ctx = make_context(tmp_path / "ctx", True)
    clean = compute_source_id(str(ctx), resolve_image=BASES.get)
    (ctx / "app.txt").write_text("v2\n")
    dirty = compute_source_id(str(ctx), resolve_image=BASES.get)
    git(ctx, "commit", "-qam", "v2")
    committed = compute_source_id(str(ctx), resolve_image=BASES.get)
    assert clean["dirty"] is False and dirty["dirty"] is True and committed["dirty"] is False
    assert dirty["git_commit"] == clean["git_commit"] != committed["git_commit"]
    assert len({clean["source_id"], dirty["source_id"], committed["source_id"]}) == 3
    assert committed["kind"] == "git" and len(committed["short_id"]) == _source_id.SHORT_ID_LENGTH


def test_context_in_a_subdirectory_of_a_repo(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    ctx = make_context(repo / "web", False)
    (repo / "other.txt").write_text("1\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "first")
    before = compute_source_id(str(ctx), resolve_image=BASES.get)
    assert before["kind"] == "git"
    # an uncommitted change outside the context does not count, one inside does
    (repo / "other.txt").write_text("2\n")
    assert source_id(ctx) == before["source_id"]
    (ctx / "app.txt").write_text("v2\n")
    assert source_id(ctx) != before["source_id"]


def test_gitignored_context_falls_back_to_content(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / ".gitignore").write_text("build/\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "first")
    ctx = repo / "build"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\n")
    first = compute_source_id(str(ctx))
    assert first["kind"] == "files"
    (ctx / "a.txt").write_text("1\n")
    assert compute_source_id(str(ctx))["source_id"] != first["source_id"]


def test_plain_context_id_does_not_depend_on_location(tmp_path):
    a = make_context(tmp_path / "a", False)
    b = tmp_path / "b"
    shutil.copytree(a, b)
    assert source_id(a) == source_id(b)


def _fake_git_dir(path):
    """A committed directory that git discovery would take for a repository."""
    for sub in ("objects", "refs"):
        (path / sub).mkdir(parents=True)
        (path / sub / "keep").write_text("")
    (path / "HEAD").write_text("ref: refs/heads/main\n")
    (path / "config").write_text("[core]\n\tworktree = .\n\tfsmonitor = false\n")


@pytest.mark.parametrize("below", [False, True], ids=["context is it", "context below it"])
def test_work_tree_is_the_checkout_not_a_fake_git_dir(tmp_path, below):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    _fake_git_dir(repo / "app")
    ctx = make_context(repo / "app" / "web", False) if below else repo / "app"
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "first")
    assert _git.find_work_tree(str(ctx)) == (str(repo.resolve()), "app/web" if below else "app")
    src = compute_source_id(str(ctx), resolve_image=BASES.get)
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    assert src["kind"] == "git" and src["git_commit"] == head and src["dirty"] is False


def test_git_file_or_foreign_owner_counts_by_content(tmp_path):
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / ".git").write_text("gitdir: /nonexistent\n")
    (linked / "Dockerfile").write_text(DOCKERFILE)
    assert _git.find_work_tree(str(linked)) is None
    assert compute_source_id(str(linked))["kind"] == "files"
    if os.geteuid() != 0:
        return
    # git's ownership check is on: a work tree of another user is not read by git
    ctx = make_context(tmp_path / "theirs", True)
    for root, dirs, files in os.walk(ctx):
        for name in dirs + files + ["."]:
            os.lchown(os.path.join(root, name), 65534, 65534)
    assert compute_source_id(str(ctx))["kind"] == "files"


def test_context_linked_out_of_its_work_tree_is_refused(tmp_path):
    outside = make_context(tmp_path / "outside", True)
    repo = make_context(tmp_path / "repo", False)
    (repo / "app").symlink_to(outside)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "a link out")
    with pytest.raises(_git.ContextOutsideWorkTree):
        compute_source_id(str(repo / "app"))
    # a link that stays in the work tree is fine
    (repo / "inner").symlink_to(repo / "scratch")
    assert _git.find_work_tree(str(repo / "inner")) == (str(repo.resolve()), "scratch")


# --------------------------------------------------------------------------- repository files as data

def _hostile(tmp_path, rel, target, use_git):
    """A context whose ``rel`` is a symlink to ``target``."""
    ctx = make_context(tmp_path / "ctx", False)
    (ctx / rel).unlink()
    (ctx / rel).symlink_to(target)
    if use_git:
        git(ctx, "init", "-q")
        commit_all(ctx, "hostile")
    return ctx


def _host_secret(tmp_path):
    secret = tmp_path / "host" / "shadow"
    secret.parent.mkdir()
    secret.write_text("root:$6$secret:19000:0:99999:7:::\n")
    return secret


@pytest.mark.parametrize("use_git", [False, True], ids=["files", "git"])
@pytest.mark.parametrize("rel, target, why", [
    (".dockerignore", "/dev/zero", "is a symbolic link (to /dev/zero)"),
    (".dockerignore", "SECRET", "is a symbolic link (to SECRET)"),
    ("Dockerfile", "SECRET", "is a symbolic link (to SECRET)"),
], ids=["dockerignore to /dev/zero", "dockerignore to a host file", "Dockerfile to a host file"])
def test_repository_file_linked_out_is_refused_at_once(tmp_path, use_git, rel, target, why):
    secret = _host_secret(tmp_path)
    target = target.replace("SECRET", str(secret))
    ctx = _hostile(tmp_path, rel, target, use_git)
    started = time.monotonic()
    # A read of /dev/zero never ends: the alarm turns a regression into a failure, not a hang.
    signal.alarm(5)
    try:
        with pytest.raises(_repo_files.RepositoryFileRefused) as err:
            compute_source_id(str(ctx), resolve_image=BASES.get)
    finally:
        signal.alarm(0)
    assert time.monotonic() - started < 1
    noun = "Dockerfile" if rel == "Dockerfile" else ".dockerignore"
    assert err.value.msg == ("%s %s; a repository's %s must be a regular file inside the build context"
                             % (rel, why.replace("SECRET", str(secret)), noun))
    assert "secret" not in err.value.msg.replace(str(secret), "")


def test_repository_file_must_be_a_regular_file_inside_and_small(tmp_path):
    ctx = make_context(tmp_path / "ctx", False)
    (ctx / ".dockerignore").unlink()
    os.mkfifo(str(ctx / ".dockerignore"))
    with pytest.raises(_repo_files.RepositoryFileRefused, match=r"^\.dockerignore is a named pipe; "):
        compute_source_id(str(ctx))
    (ctx / ".dockerignore").unlink()
    (ctx / ".dockerignore").write_bytes(b"#" * (_dockerignore.DOCKERIGNORE_MAX_BYTES + 1))
    with pytest.raises(_repo_files.RepositoryFileRefused, match=r"^\.dockerignore is bigger than 1048576 bytes; "):
        compute_source_id(str(ctx))
    (ctx / ".dockerignore").write_bytes(b"#" * _dockerignore.DOCKERIGNORE_MAX_BYTES)
    assert compute_source_id(str(ctx))["kind"] == "files"
    # a directory of the context that is a link out: the Dockerfile below it resolves outside
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "Dockerfile").write_text(DOCKERFILE)
    (ctx / "docker").symlink_to(outside)
    with pytest.raises(_repo_files.RepositoryFileRefused,
                       match=r"^docker/Dockerfile resolves to %s, outside the context; " % (outside / "Dockerfile")):
        compute_source_id(str(ctx), dockerfile="docker/Dockerfile")
    # no .dockerignore at all is fine
    (ctx / ".dockerignore").unlink()
    assert compute_source_id(str(ctx))["kind"] == "files"


# --------------------------------------------------------------------------- v2: what the builder sees

def commit_all(path, msg):
    git(path, "add", "-A")
    git(path, "commit", "-qm", msg)


def head(path):
    return subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()


def monorepo(tmp_path):
    """A repository with two apps side by side; returns (repo, web context)."""
    repo = tmp_path / "mono"
    repo.mkdir()
    git(repo, "init", "-q")
    web = make_context(repo / "web", False)
    (web / ".dockerignore").write_text(IGNORE + "README.md\ndocs/\n")
    (web / "README.md").write_text("web\n")
    api = make_context(repo / "api", False)
    (api / "api.txt").write_text("api 1\n")
    (repo / "README.md").write_text("mono\n")
    commit_all(repo, "both apps")
    return repo, web


@pytest.mark.parametrize("what, rel, changes_id", [
    ("dockerignored file", "web/debug.log", False),
    ("file in a dockerignored directory", "web/scratch/tmp.bin", False),
    ("README that the context ignores", "web/README.md", False),
    ("new file in an ignored directory", "web/docs/guide.md", False),
    ("sibling app in the monorepo", "api/api.txt", False),
    ("file at the repository root", "README.md", False),
    ("built file", "web/app.txt", True),
    ("new built file", "web/pkg/new.txt", True),
])
def test_commit_changes_id_only_when_the_builder_sees_it(tmp_path, what, rel, changes_id):
    repo, web = monorepo(tmp_path)
    before = compute_source_id(str(web), resolve_image=BASES.get)
    (repo / rel).parent.mkdir(parents=True, exist_ok=True)
    (repo / rel).write_text("changed\n")
    commit_all(repo, what)
    after = compute_source_id(str(web), resolve_image=BASES.get)
    assert after["git_commit"] == head(repo) != before["git_commit"]
    assert after["dirty"] is False
    assert (after["source_id"] != before["source_id"]) is changes_id, what


@pytest.mark.parametrize("what, rel, changes_id", [
    ("built file", "web/app.txt", True),
    ("ignored file", "web/debug.log", False),
    ("ignored README", "web/README.md", False),
    ("sibling app", "api/api.txt", False),
])
def test_uncommitted_change(tmp_path, what, rel, changes_id):
    repo, web = monorepo(tmp_path)
    before = compute_source_id(str(web), resolve_image=BASES.get)
    (repo / rel).write_text("uncommitted\n")
    after = compute_source_id(str(web), resolve_image=BASES.get)
    assert (after["source_id"] != before["source_id"]) is changes_id, what
    assert after["dirty"] is changes_id


def test_committing_a_revert_gives_the_old_id_back(tmp_path):
    repo, web = monorepo(tmp_path)
    first = source_id(web)
    (web / "app.txt").write_text("v2\n")
    commit_all(repo, "v2")
    assert source_id(web) != first
    (web / "app.txt").write_text("v1\n")
    commit_all(repo, "back to v1")
    assert source_id(web) == first


def test_exec_bit_committed_changes_id(tmp_path):
    repo, web = monorepo(tmp_path)
    before = source_id(web)
    os.chmod(web / "app.txt", 0o755)
    commit_all(repo, "exec")
    assert source_id(web) != before


def test_ls_tree_keys_the_files_not_the_reading_of_them(tmp_path, monkeypatch):
    """A clean git context is keyed on git's blob ids: no file of it is hashed."""
    repo, web = monorepo(tmp_path)
    seen = []
    real = _source_id.hash_file_into
    monkeypatch.setattr(_source_id, "hash_file_into", lambda d, p: seen.append(p) or real(d, p))
    assert compute_source_id(str(web), resolve_image=BASES.get)["kind"] == "git"
    assert seen == []
    (web / "app.txt").write_text("dirty\n")
    compute_source_id(str(web), resolve_image=BASES.get)
    assert seen == [str(web / "app.txt")]


def _submodule_repo(tmp_path):
    """A repository whose web context holds a submodule at lib; returns (repo, web, lib source)."""
    lib = tmp_path / "lib-src"
    lib.mkdir()
    git(lib, "init", "-q")
    (lib / "lib.txt").write_text("lib 1\n")
    commit_all(lib, "lib 1")
    repo, web = monorepo(tmp_path)
    git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(lib), "web/lib")
    commit_all(repo, "add lib")
    return repo, web, lib


def test_submodule_moved_to_another_commit(tmp_path):
    repo, web, lib = _submodule_repo(tmp_path)
    before = compute_source_id(str(web), resolve_image=BASES.get)
    assert before["dirty"] is False
    (lib / "lib.txt").write_text("lib 2\n")
    commit_all(lib, "lib 2")
    # the checkout moves: the builder sees lib 2 before the superproject records it
    git(web / "lib", "-c", "protocol.file.allow=always", "pull", "-q", "origin", "HEAD")
    moved = compute_source_id(str(web), resolve_image=BASES.get)
    assert moved["source_id"] != before["source_id"] and moved["dirty"] is True
    # recording it changes nothing the builder sees
    commit_all(repo, "lib 2")
    recorded = compute_source_id(str(web), resolve_image=BASES.get)
    assert recorded["source_id"] == moved["source_id"] and recorded["dirty"] is False
    # back to the first commit: the first id again
    git(web / "lib", "checkout", "-q", "HEAD~1")
    assert source_id(web) == before["source_id"]


def test_submodule_not_checked_out_differs_from_checked_out(tmp_path):
    repo, web, _lib = _submodule_repo(tmp_path)
    checked_out = source_id(web)
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    assert source_id(clone / "web") != checked_out
    git(clone, "-c", "protocol.file.allow=always", "submodule", "update", "-q", "--init")
    assert source_id(clone / "web") == checked_out


def test_submodule_head_on_a_branch_is_read_from_refs(tmp_path):
    repo, web, _lib = _submodule_repo(tmp_path)
    sub = web / "lib"
    git(sub, "checkout", "-q", "-b", "work")
    expected = head(sub)
    assert _git.submodule_head(str(sub)) == expected
    git(sub, "pack-refs", "--all")
    assert _git.submodule_head(str(sub)) == expected
    assert _git.submodule_head(str(web / "pkg-none")) is None


def test_context_inside_a_submodule_counts_by_content(tmp_path):
    _repo, web, _lib = _submodule_repo(tmp_path)
    (web / "lib" / "Dockerfile").write_text(DOCKERFILE)
    assert compute_source_id(str(web / "lib"))["kind"] == "files"


@pytest.mark.parametrize("spelling", ["./Dockerfile", "a/../Dockerfile", ".//Dockerfile"])
def test_dockerfile_path_is_normalised(tmp_path, spelling):
    ctx = make_context(tmp_path / "ctx", True)
    (ctx / "a").mkdir()
    assert source_id(ctx, dockerfile=spelling) == source_id(ctx, dockerfile="Dockerfile")


def test_unresolved_bases_are_resolved_again_after_a_build(tmp_path):
    ctx = make_context(tmp_path / "ctx", True)
    absent = compute_source_id(str(ctx), resolve_image=lambda ref: None)
    present = compute_source_id(str(ctx), resolve_image=BASES.get)
    after = _source_id.rekey_bases(absent, BASES.get)
    assert absent["source_id"] != present["source_id"] == after["source_id"]
    assert after["short_id"] == present["short_id"]
    # a base that stays absent (BuildKit keeps what it pulls in its own cache) keeps the id
    assert _source_id.rekey_bases(absent, lambda ref: None) is absent
    # a base that was present keeps the id it had when the build started
    other = {"base:1": "sha256:" + "c" * 64}.get
    assert _source_id.rekey_bases(present, other)["source_id"] == present["source_id"]


# A plain context and its ids, frozen: v1 as release 1 computed it, v2 as this one does.
# A changed v2 value means every image of every fleet is rebuilt once: bump the version.
FROZEN_V1 = "2a208c7715d0ceae0d54912b6c54c8944ed45a489d3c028e592194763441ca1f"


def _frozen_context(tmp_path):
    ctx = tmp_path / "frozen"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM base:1\nCOPY . /app\n")
    (ctx / "app.txt").write_text("v1\n")
    for name in ("Dockerfile", "app.txt"):
        os.chmod(ctx / name, 0o644)
    return ctx


def test_v2_id_differs_from_v1(tmp_path):
    ctx = _frozen_context(tmp_path)
    src = compute_source_id(str(ctx), resolve_image={"base:1": "sha256:" + "a" * 64}.get)
    assert _source_id.SOURCE_ID_VERSION == 2 and src["material"]["v"] == 2
    assert src["source_id"] != FROZEN_V1
    v1_material = dict(src["material"], v=1)
    assert _source_id._id_of(v1_material) == FROZEN_V1, "v1 differed from v2 only by its version here"
