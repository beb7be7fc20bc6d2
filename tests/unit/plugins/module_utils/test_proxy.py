"""Pure logic of app_container: reconciliation, secret files, proxy, lock (its input: test_container_spec.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.appfleet.docker.plugins.module_utils import _engine, _files, _lock, _proxy


def c(cid, name, running=True, created="2024-01-01", host_port=None):
    return {"id": cid, "name": name, "running": running, "created": created, "host_port": host_port}


@pytest.mark.parametrize("containers,upstream,serving,strays", [
    ([], None, None, []),
    ([c("1", "web")], None, "1", []),
    # killed during health check: the proxy still points at the old one
    ([c("1", "web", host_port=5000), c("2", "web--next", created="2024-02", host_port=6000)], 5000, "1", ["2"]),
    # killed after the switch, before the old one was removed
    ([c("1", "web", host_port=5000), c("2", "web--next", created="2024-02", host_port=6000)], 6000, "2", ["1"]),
    # killed after the old one was removed, before the rename
    ([c("2", "web--next", host_port=6000)], 6000, "2", []),
    # a temp container nginx does not point at is never trusted
    ([c("2", "web--next", host_port=6000)], None, None, ["2"]),
    # stop-first killed: old stopped, new unverified
    ([c("1", "web", running=False), c("2", "web--next", created="2024-02")], None, "1", ["2"]),
    ([c("1", "other-name"), c("3", "web", running=False, created="2023")], None, "3", ["1"]),
])
def test_choose_serving(containers, upstream, serving, strays):
    got, got_strays = _engine.choose_serving(containers, "web", upstream)
    assert (got["id"] if got else None) == serving
    assert sorted(s["id"] for s in got_strays) == strays


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


def test_secret_mounts_and_passwd():
    info = {"Mounts": [
        {"Type": "bind", "Source": "/s/web/r/TOKEN", "Destination": "/run/secrets/TOKEN", "RW": False},
        {"Type": "volume", "Source": "/var/lib/docker/volumes/x", "Destination": "/data"},
        {"Type": "bind", "Source": "/x", "Destination": "/run/secrets/sub/dir"},
    ]}
    assert _engine.secret_mounts(info) == {"TOKEN": "/s/web/r/TOKEN"}
    passwd = "root:x:0:0::/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\nbad line\n"
    assert _files.passwd_uid(passwd, "nobody") == 65534
    assert _files.passwd_uid(passwd, "app") is None and _files.passwd_uid(None, "app") is None


def test_upstream_render_and_parse():
    text = _proxy.render_upstream("web", 41234, 41235)
    assert text.startswith("# Managed by appfleet.docker.app_container")
    assert ("upstream appfleet_web { server 127.0.0.1:41234 max_fails=0; "
            "server 127.0.0.1:41235 max_fails=0 backup; }") in text
    assert ("upstream appfleet_web.b { server 127.0.0.1:41235 max_fails=0; "
            "server 127.0.0.1:41234 max_fails=0 backup; }") in text
    assert _proxy.parse_slots(text, "web") == (41234, 41235)
    assert _proxy.parse_upstream_port(text) == 41234
    # Slot b without a port yet is the discard port, read as unassigned.
    assert _proxy.parse_slots(_proxy.render_upstream("web", 41234), "web") == (41234, None)
    # The one-server format of earlier versions: slot a only.
    assert _proxy.parse_slots("upstream appfleet_web { server 127.0.0.1:5555; }", "web") == (5555, None)
    assert _proxy.parse_slots(_proxy.render_placeholder("web"), "web") == (None, None)
    assert _proxy.parse_upstream_port("upstream x { server 127.0.0.1:9; }") == 9
    assert _proxy.parse_upstream_port("# nothing") is None
    assert _proxy.parse_upstream_port(None) is None
    # Another app's groups in the same text are not this app's slots.
    two = _proxy.render_upstream("web-b", 1, 2) + _proxy.render_upstream("web", 3, 4)
    assert _proxy.parse_slots(two, "web") == (3, 4)


def test_slot_flag_and_reserved_ports(tmp_path):
    assert _proxy.slot_flag_file("web", str(tmp_path)) == str(tmp_path / "web.slot-b")
    (tmp_path / "web.conf").write_text(_proxy.render_upstream("web", 1111, 2222))
    (tmp_path / "api.conf").write_text(_proxy.render_placeholder("api"))
    (tmp_path / "old.conf").write_text("upstream appfleet_old { server 127.0.0.1:3333; }\n")
    (tmp_path / "notes.txt").write_text("server 127.0.0.1:4444;")
    assert _proxy.upstream_ports(str(tmp_path)) == {1111, 2222, 3333}
    assert _proxy.upstream_ports(str(tmp_path / "missing")) == set()


class FakeModule:
    """run_command stand-in: the commands are plain argv lists run for real."""

    def run_command(self, argv):
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        return proc.returncode, proc.stdout, proc.stderr


def test_proxy_switch_restores_file_when_test_fails(tmp_path):
    upstream = tmp_path / "web.conf"
    upstream.write_text("upstream appfleet_web { server 127.0.0.1:1111; }\n")
    proxy = _proxy.Proxy(FakeModule(), "web", str(upstream), ["false"], ["true"])
    with pytest.raises(_proxy.ProxyError) as err:
        proxy.switch(2222)
    assert "nginx config test" in str(err.value) and "put back" in str(err.value)
    assert proxy.current_port() == 1111
    ok = _proxy.Proxy(FakeModule(), "web", str(upstream), ["true"], ["true"])
    # From the one-server format: the new port takes the active slot, the old one the other.
    assert ok.switch(3333) == "reload" and ok.reloads == 1
    assert ok.current_port() == 3333 and ok.slots() == (3333, 1111) and ok.standby_port() == 1111


def test_proxy_switch_moves_only_the_flag_between_slots(tmp_path):
    upstream = tmp_path / "web.conf"
    flag = tmp_path / "web.slot-b"
    upstream.write_text(_proxy.render_placeholder("web"))
    # "false" as the reload command: any reload would fail the switch.
    no_reload = _proxy.Proxy(FakeModule(), "web", str(upstream), ["true"], ["false"])
    proxy = _proxy.Proxy(FakeModule(), "web", str(upstream), ["true"], ["true"])
    assert proxy.current_port() == _proxy.PLACEHOLDER_PORT and proxy.standby_port() is None
    # First deploy: a reload, and the spare port becomes slot b.
    assert proxy.switch(1111, spare=lambda: 2222) == "reload" and proxy.reloads == 1
    assert proxy.slots() == (1111, 2222) and not flag.exists()
    text = upstream.read_text()
    assert no_reload.switch(2222) == "flag" and flag.exists() and no_reload.current_port() == 2222
    assert no_reload.standby_port() == 1111 and upstream.read_text() == text
    assert no_reload.switch(1111) == "flag" and not flag.exists() and no_reload.current_port() == 1111
    assert no_reload.reloads == 0
    # A new port outside the slots (the free one was taken): it takes the active slot (b, the flag
    # stays) and the port that served becomes the other slot.
    no_reload.switch(2222)
    assert proxy.switch(4444) == "reload" and proxy.slots() == (2222, 4444) and flag.exists()
    assert proxy.current_port() == 4444
    # A failed rewrite puts file and flag back.
    failing = _proxy.Proxy(FakeModule(), "web", str(upstream), ["false"], ["true"])
    before = upstream.read_text()
    with pytest.raises(_proxy.ProxyError):
        failing.switch(5555)
    assert upstream.read_text() == before and flag.exists() and failing.current_port() == 4444
    # The placeholder (state absent) removes the flag: the file has no port for it.
    proxy.switch(None, content=_proxy.render_placeholder("web"))
    assert not flag.exists() and proxy.current_port() == _proxy.PLACEHOLDER_PORT


def test_lock_excludes_and_reports_holder(tmp_path):
    with _lock.AppLock(str(tmp_path), "web", timeout=5) as lock:
        holder = _lock.read_holder(lock.path)
        assert holder["pid"] == os.getpid() and holder["app"] == "web"
        # A second process cannot take it and names the holder.
        code = ("import sys; sys.path[:0] = %r\n"
                "from ansible_collections.appfleet.docker.plugins.module_utils._lock import AppLock, LockTimeout\n"
                "try:\n    AppLock(%r, 'web', timeout=0.5, poll=0.1).acquire()\n"
                "except LockTimeout as e:\n    print(e.describe()); sys.exit(3)\n") % (sys.path, str(tmp_path))
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
        assert proc.returncode == 3, proc.stderr
        assert "pid %d" % os.getpid() in proc.stdout
    assert _lock.read_holder(lock.path) == {}


def test_lock_of_a_killed_holder_is_stale(tmp_path):
    code = ("import os, sys; sys.path[:0] = %r\n"
            "from ansible_collections.appfleet.docker.plugins.module_utils._lock import AppLock\n"
            "AppLock(%r, 'web').acquire(); print(os.getpid(), flush=True); os._exit(0)\n") % (sys.path, str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    dead_pid = int(proc.stdout.strip())
    holder = _lock.read_holder(str(tmp_path / "web.lock"))
    assert holder["pid"] == dead_pid and _lock.holder_is_stale(holder)
    with _lock.AppLock(str(tmp_path), "web", timeout=1) as lock:
        assert lock.stale_holder["pid"] == dead_pid
        assert lock.info()["stale_holder"]["pid"] == dead_pid
