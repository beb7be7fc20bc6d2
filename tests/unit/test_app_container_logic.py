"""Pure logic of app_container: validation, config hash, diff, reconciliation, proxy, lock."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ansible_collections.appfleet.docker.plugins.module_utils import _lock, _proxy, _rollout
from ansible_collections.appfleet.docker.plugins.module_utils._rollout import ValidationError

BASE = {"name": "web", "image": "web:1", "state": "present", "rollback": False, "strategy": "start-first",
        "port": 8080, "health": {"path": "/health", "timeout": 60, "interval": 1}}


def params(**over):
    p = dict(BASE)
    p.update(over)
    return p


@pytest.mark.parametrize("over,option", [
    ({"name": "bad name"}, "name:"),
    ({"name": "-web"}, "name:"),
    ({"name": "x" * 64}, "name:"),
    ({"name": "web--next"}, "name:"),
    ({"container_name": "a/b"}, "container_name:"),
    ({"image": None}, "image:"),
    ({"port": 0}, "port:"),
    ({"port": 65536}, "port:"),
    ({"published_ports": ["1:2:3:4"]}, "published_ports:"),
    ({"published_ports": ["80:99999"]}, "published_ports:"),
    ({"published_ports": ["8080/quic"]}, "published_ports:"),
    ({"published_ports": ["127.0.0.1:8081:8080"]}, "published_ports:"),
    ({"restart_policy": "sometimes"}, "restart_policy:"),
    ({"env": {"1BAD": "x"}}, "env:"),
    ({"env": {"A": "1"}, "secret_env": {"A": "2"}}, "secret_env:"),
    ({"volumes": ["data"]}, "volumes:"),
    ({"volumes": ["data:relative"]}, "volumes:"),
    ({"memory": "lots"}, "memory:"),
    ({"cpus": 0.0}, "cpus:"),
    ({"port": None}, "health.path:"),
    ({"health": {"path": "health"}}, "health.path:"),
    ({"health": {"timeout": 0}}, "health.timeout:"),
    ({"drain_seconds": -1}, "drain_seconds:"),
    ({"healthcheck": {"interval": 3}}, "healthcheck.test:"),
    ({"proxy": {"test_command": []}}, "proxy.test_command:"),
])
def test_validate_names_the_option(over, option):
    with pytest.raises(ValidationError) as err:
        _rollout.validate(params(**over))
    assert str(err.value).startswith(option)


@pytest.mark.parametrize("over", [
    {},
    {"rollback": True, "image": None},
    {"state": "absent", "image": None},
    {"strategy": "stop-first", "published_ports": ["127.0.0.1:8081:8080", "9000/udp"]},
    {"published_ports": ["8080"]},
    {"volumes": ["data:/data", "/srv/x:/x:ro"], "memory": "256m", "cpus": 0.5},
    {"healthcheck": {"disable": True}},
])
def test_validate_accepts(over):
    _rollout.validate(params(**over))


@pytest.mark.parametrize("spec,expected", [
    ("8080", ("", None, 8080, "tcp")),
    ("80:8080", ("", 80, 8080, "tcp")),
    ("127.0.0.1:80:8080/udp", ("127.0.0.1", 80, 8080, "udp")),
    ("127.0.0.1::8080", ("127.0.0.1", None, 8080, "tcp")),
])
def test_parse_port_spec(spec, expected):
    assert _rollout.parse_port_spec(spec) == expected


def test_config_hash_ignores_order_and_module_only_settings():
    a = _rollout.desired_config(params(env={"A": "1", "B": "2"}, volumes=["b:/b", "a:/a"]))
    b = _rollout.desired_config(params(env={"B": "2", "A": "1"}, volumes=["a:/a", "b:/b"],
                                       strategy="stop-first", drain_seconds=30))
    assert _rollout.config_hash(a) == _rollout.config_hash(b)
    c = _rollout.desired_config(params(env={"A": "1", "B": "3"}))
    assert _rollout.config_hash(a) != _rollout.config_hash(c)


def test_config_never_holds_secret_values():
    cfg = _rollout.desired_config(params(secret_env={"TOKEN": "s3cret-value"}))
    text = json.dumps(cfg)
    assert "s3cret-value" not in text and "TOKEN" in text
    assert _rollout.config_hash(cfg) == _rollout.config_hash(
        _rollout.desired_config(params(secret_env={"TOKEN": "another"})))


def test_changed_secret_keys_and_masked_diff():
    changed = _rollout.changed_secret_keys({"A": "new", "B": "same"}, {"A": "old", "B": "same", "C": "x"},
                                           ["A", "B", "C"])
    assert changed == ["A", "C"]
    before_cfg = {"env": {"X": "1"}, "secret_env_keys": ["A", "B", "C"], "port": 8080}
    after_cfg = {"env": {"X": "2"}, "secret_env_keys": ["A", "B"], "port": 8080}
    before, after = _rollout.config_diff(before_cfg, after_cfg, "sha256:1", "sha256:2", changed)
    assert before == {"image": "sha256:1", "env": {"X": "1"},
                      "secret_env": {"A": _rollout.SECRET_MASK, "C": _rollout.SECRET_MASK}}
    assert after["secret_env"] == {"A": _rollout.SECRET_MASK + " (changed)"}
    assert "port" not in after and "old" not in json.dumps([before, after])


def test_healthcheck_normalised():
    assert _rollout.normalize_healthcheck({"disable": True}) == {"test": ["NONE"]}
    assert _rollout.normalize_healthcheck({"test": ["wget", "-q", "x"], "interval": 2}) == {
        "test": ["CMD", "wget", "-q", "x"], "interval": 2}
    assert _rollout.normalize_healthcheck({"test": ["CMD-SHELL", "true"]})["test"] == ["CMD-SHELL", "true"]


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
    got, got_strays = _rollout.choose_serving(containers, "web", upstream)
    assert (got["id"] if got else None) == serving
    assert sorted(s["id"] for s in got_strays) == strays


def test_render_env_file_one_line_per_key():
    text = _rollout.render_env_file("web", {"B": "2", "A": "x\ny"})
    assert text.splitlines()[1:] == ["A=x\\ny", "B=2"]


def test_write_secret_file_mode(tmp_path):
    path = tmp_path / "env" / "web.env"
    assert _rollout.write_secret_file(str(path), "A=1\n") is True
    assert (os.stat(path).st_mode & 0o777) == 0o600
    assert _rollout.write_secret_file(str(path), "A=1\n") is False
    os.chmod(path, 0o644)
    assert _rollout.write_secret_file(str(path), "A=1\n") is True
    assert (os.stat(path).st_mode & 0o777) == 0o600


def test_upstream_render_and_parse():
    text = _proxy.render_upstream("web", 41234, "web--next")
    assert "upstream appfleet_web { server 127.0.0.1:41234; }" in text
    assert text.startswith("# Managed by appfleet.docker.app_container")
    assert _proxy.parse_upstream_port(text) == 41234
    assert _proxy.parse_upstream_port("upstream x { server 127.0.0.1:9; }") == 9
    assert _proxy.parse_upstream_port("# nothing") is None
    assert _proxy.parse_upstream_port(None) is None


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
    ok.switch(3333)
    assert ok.current_port() == 3333


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
