"""Host files: the secret files of app_container (root-only releases, changed keys, pruning), the atomic writer."""

from __future__ import annotations

import errno
import os
import resource
import signal
import stat
from pathlib import Path

import pytest

from ansible_collections.appfleet.docker.plugins.module_utils import _files
from ansible_collections.appfleet.docker.plugins.module_utils._docker import AppfleetError


def _mounts(release):
    return dict((key, str(release / key)) for key in os.listdir(release))


def test_secret_store_writes_root_only_files(tmp_path):
    store = _files.SecretStore(str(tmp_path / "secrets"), "web")
    release = store.write({"TOKEN": "s3cret\nline2", "B": 7})
    rel = tmp_path / "secrets" / "web" / os.path.basename(release)
    assert release == str(rel) and _files.RELEASE_RE.match(rel.name)
    assert (rel / "TOKEN").read_bytes() == b"s3cret\nline2" and (rel / "B").read_bytes() == b"7"
    for path, mode in ((tmp_path / "secrets", 0o700), (tmp_path / "secrets" / "web", 0o700), (rel, 0o700),
                       (rel / "TOKEN", 0o400), (rel / "B", 0o400)):
        st = os.lstat(path)
        assert (st.st_mode & 0o7777) == mode, path
    assert store.releases() == [rel.name]
    if os.geteuid() == 0:
        store.chown(release, 65534)
        assert os.stat(rel / "TOKEN").st_uid == 65534 and os.stat(rel / "TOKEN").st_gid == 0
        assert (os.stat(rel / "TOKEN").st_mode & 0o7777) == 0o400


def test_secret_store_changed_keys_names_never_values(tmp_path):
    store = _files.SecretStore(str(tmp_path), "web")
    rel = Path(store.write({"A": "one", "B": "two"}))
    mounts = _mounts(rel)
    assert store.changed_keys({"A": "one", "B": "two"}, mounts) == []
    assert store.changed_keys({"A": "one", "B": "other"}, mounts) == ["B"]
    assert store.changed_keys({"A": "one"}, mounts) == ["B"]                       # removed key
    assert store.changed_keys({"A": "one", "B": "two", "C": "3"}, mounts) == ["C"]  # new key
    assert store.changed_keys({"A": "on", "B": "two"}, mounts) == ["A"]            # a prefix is not equal
    os.chmod(rel / "A", 0o644)
    assert store.changed_keys({"A": "one", "B": "two"}, mounts) == ["A"]            # mode not 0400
    os.chmod(rel / "A", 0o400)
    os.unlink(rel / "B")
    assert store.changed_keys({"A": "one", "B": "two"}, mounts) == ["B"]            # file gone
    os.symlink(str(rel / "A"), str(rel / "B"))
    assert store.changed_keys({"A": "one", "B": "one"}, mounts) == ["B"]            # a symlink is not ours
    outside = tmp_path / "A"
    outside.write_text("one")
    os.chmod(outside, 0o400)
    assert store.changed_keys({"A": "one"}, {"A": str(outside)}) == ["A"]           # not under the app's dir
    other = _files.SecretStore(str(tmp_path), "api")
    assert other.changed_keys({"A": "one"}, {"A": str(rel / "A")}) == ["A"]        # another app's file


def test_secret_store_prune_keeps_what_is_mounted(tmp_path):
    store = _files.SecretStore(str(tmp_path), "web")
    old = store.write({"A": "1"})
    new = store.write({"A": "2"})
    leftover = tmp_path / "web" / (".tmp-" + os.path.basename(old))
    leftover.mkdir()
    keep = {store.release_of(_mounts(Path(new))["A"])}
    assert keep == {os.path.basename(new)}
    assert sorted(store.unused(keep)) == sorted([os.path.basename(old), leftover.name])
    store.prune(keep)
    assert store.releases() == [os.path.basename(new)] and os.path.isdir(new)
    store.prune(set())
    assert not (tmp_path / "web").exists() and not store.exists()
    store.write({"A": "3"})
    store.remove_all()
    assert not (tmp_path / "web").exists()


@pytest.mark.parametrize("source,release", [
    ("/s/web/20240101T000000Z-0a1b2c3d/TOKEN", "20240101T000000Z-0a1b2c3d"),
    ("/s/web/20240101T000000Z-0a1b2c3d/../TOKEN", None),
    ("/s/web/anything/TOKEN", None),
    ("/s/api/20240101T000000Z-0a1b2c3d/TOKEN", None),
    ("/etc/passwd", None),
    ("", None),
])
def test_release_of(source, release):
    assert _files.SecretStore("/s", "web").release_of(source) == release


# ------------------------------------------------------------- atomic_file

def _leftovers(directory, keep):
    return sorted(n for n in os.listdir(str(directory)) if n != keep)


def test_atomic_file_writes_checks_and_sets_mode(tmp_path):
    target = tmp_path / "web.tar"
    seen = []
    with _files.atomic_file(str(target), 0o600, check=lambda tmp: seen.append(open(tmp, "rb").read())) as handle:
        handle.write(b"part 1,")
        handle.write(b"part 2")
        assert not target.exists(), "nothing at path before the rename"
    assert target.read_bytes() == b"part 1,part 2"
    assert seen == [b"part 1,part 2"], "the check sees the whole file before the rename"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert _leftovers(tmp_path, "web.tar") == []


@pytest.mark.parametrize("where", ["write", "check"])
def test_atomic_file_failure_keeps_the_old_file_and_no_temp(tmp_path, where):
    target = tmp_path / "web.tar"
    target.write_bytes(b"old archive")

    def check(_tmp):
        raise AppfleetError("refused")

    with pytest.raises((AppfleetError, RuntimeError)):
        with _files.atomic_file(str(target), 0o600, check=check) as handle:
            handle.write(b"new half")
            if where == "write":
                raise RuntimeError("engine went away mid-stream")
    assert target.read_bytes() == b"old archive"
    assert _leftovers(tmp_path, "web.tar") == []


def test_atomic_file_full_filesystem_removes_the_temp(tmp_path):
    """A real write error: the file size limit (EFBIG, as a full disk gives ENOSPC)."""
    target = tmp_path / "web.tar"
    target.write_bytes(b"old archive")
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, hard))
    try:
        with pytest.raises(OSError) as err:
            with _files.atomic_file(str(target), 0o600) as handle:
                for dummy in range(64):
                    handle.write(b"x" * 4096)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)
    assert err.value.errno == errno.EFBIG
    assert target.read_bytes() == b"old archive"
    assert _leftovers(tmp_path, "web.tar") == []


def test_atomic_file_missing_directory(tmp_path):
    with pytest.raises(OSError):
        with _files.atomic_file(str(tmp_path / "absent" / "web.tar")) as handle:
            handle.write(b"x")
    assert not (tmp_path / "absent").exists()


def test_write_file_atomic_text_still_works(tmp_path):
    target = tmp_path / "sub" / "web.conf"
    _files.write_file_atomic(str(target), "upstream web { server 127.0.0.1:9000; } # é\n", mode=0o640)
    assert target.read_text(encoding="utf-8") == "upstream web { server 127.0.0.1:9000; } # é\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert _leftovers(target.parent, "web.conf") == []
