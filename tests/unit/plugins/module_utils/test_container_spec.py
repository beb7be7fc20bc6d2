"""app_container's input: validation, desired config (and its hash), diff, secrets masked."""

from __future__ import annotations

import json

import pytest

from ansible_collections.appfleet.docker.plugins.module_utils import _config_hash, _container_spec
from ansible_collections.appfleet.docker.plugins.module_utils._docker import AppfleetError

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
    ({"name": "web--draining-1714557605"}, "name:"),
    ({"container_name": "web--draining-1"}, "container_name:"),
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
    ({"memory": "4m"}, "memory:"),
    ({"cpu_shares": 1}, "cpu_shares:"),
    ({"cpu_shares": 262145}, "cpu_shares:"),
    ({"cpus": 0.0}, "cpus:"),
    ({"port": None}, "health.path:"),
    ({"health": {"path": "health"}}, "health.path:"),
    ({"health": {"timeout": 0}}, "health.timeout:"),
    ({"drain_seconds": -1}, "drain_seconds:"),
    ({"healthcheck": {"interval": 3}}, "healthcheck.test:"),
    ({"proxy": {"test_command": []}}, "proxy.test_command:"),
    ({"name": "web\n"}, "name:"),
    # secrets: key names become file names under /run/secrets and the host directory
    ({"secret_env": {"../x": "v"}}, "secret_env:"),
    ({"secret_env": {"a/b": "v"}}, "secret_env:"),
    ({"secret_env": {"A-B": "v"}}, "secret_env:"),
    ({"secret_env": {"TOKEN\n": "v"}}, "secret_env:"),
    ({"secret_env": {"": "v"}}, "secret_env:"),
    ({"secret_env": {"T" * 129: "v"}}, "secret_env:"),
    ({"secret_env": {"TOKEN": "v"}, "env": {"TOKEN_FILE": "/x"}}, "secret_env:"),
    ({"secret_env": {"TOKEN": "v", "TOKEN_FILE": "w"}}, "secret_env:"),
    ({"secret_delivery": "vault"}, "secret_delivery:"),
    ({"secret_dir": "etc/secrets"}, "secret_dir:"),
    ({"secret_dir": "/etc/../tmp"}, "secret_dir:"),
    ({"secret_dir": "/"}, "secret_dir:"),
    ({"secret_uid": -1}, "secret_uid:"),
    ({"secret_env": {"TOKEN": "v"}, "volumes": ["x:/run/secrets/TOKEN"]}, "volumes:"),
    ({"secret_env": {"TOKEN": "v"}, "tmpfs": ["/run/secrets/TOKEN"]}, "tmpfs:"),
    # hardening options
    ({"tmpfs": ["tmp"]}, "tmpfs:"),
    ({"tmpfs": ["/"]}, "tmpfs:"),
    ({"tmpfs": ["/tmp/../etc"]}, "tmpfs:"),
    ({"tmpfs": ["/tmp/"]}, "tmpfs:"),
    ({"tmpfs": ["/tmp:rw;reboot"]}, "tmpfs:"),
    ({"tmpfs": ["/tmp:size=64m\n"]}, "tmpfs:"),
    ({"tmpfs": ["/data"], "volumes": ["d:/data"]}, "tmpfs:"),
    ({"tmpfs": ["/data", "/data:size=1m"]}, "tmpfs:"),
    ({"networks": ["net\n"]}, "networks:"),
    ({"cap_drop": ["NET_FOO"]}, "cap_drop:"),
    ({"cap_add": ["CAP_SYS_EVERYTHING"]}, "cap_add:"),
    ({"cap_add": ["net_raw"], "cap_drop": ["NET_RAW"]}, "cap_add:"),
    ({"user": "app user"}, "user:"),
    ({"user": "root\n"}, "user:"),
    ({"user": "a:b:c"}, "user:"),
    ({"user": "-1"}, "user:"),
    ({"pids_limit": 0}, "pids_limit:"),
    ({"pids_limit": -5}, "pids_limit:"),
    ({"security_opts": ["privileged"]}, "security_opts:"),
    ({"security_opts": ["apparmor=x;y"]}, "security_opts:"),
    ({"security_opts": ["seccomp=/etc/profile.json"]}, "security_opts:"),
    # ports
    ({"published_ports": ["::80"]}, "published_ports:"),
    ({"published_ports": ["999.1.1.1:80:8080"]}, "published_ports:"),
    ({"published_ports": ["[1.2.3.4]:80:8080"], "strategy": "stop-first"}, "published_ports:"),
    ({"published_ports": ["fe80::1:80:8080"]}, "published_ports:"),
    ({"published_ports": ["80:8080\n"]}, "published_ports:"),
    ({"published_ports": ["+80:8080"]}, "published_ports:"),
    ({"published_ports": ["8000-8010:8000-8010"]}, "published_ports:"),
    # the image reference
    ({"image": "Web:1"}, "image 'Web:1'"),
    ({"image": "web:-1"}, "image 'web:-1'"),
    ({"image": "web@sha256:abc"}, "image 'web@sha256:abc'"),
])
def test_validate_names_the_option(over, option):
    with pytest.raises(AppfleetError) as err:
        _container_spec.validate(params(**over))
    assert str(err.value).startswith(option)


@pytest.mark.parametrize("over", [
    {},
    {"rollback": True, "image": None},
    {"state": "absent", "image": None},
    {"strategy": "stop-first", "published_ports": ["127.0.0.1:8081:8080", "9000/udp"]},
    {"published_ports": ["8080"]},
    {"volumes": ["data:/data", "/srv/x:/x:ro"], "memory": "256m", "cpus": 0.5},
    {"memory": "1G", "cpu_shares": 2}, {"memory": 6291456, "cpu_shares": 262144},
    {"healthcheck": {"disable": True}},
    {"secret_env": {"TOKEN": "v", "_X1": "w"}, "secret_delivery": "env", "env": {"TOKEN_FILE": "/x"}},
    {"secret_dir": "/srv/secrets", "secret_uid": 65534},
    {"tmpfs": ["/tmp", "/var/cache/app:rw,noexec,nosuid,size=64m,mode=1777"], "read_only": True},
    {"cap_drop": ["all"], "cap_add": ["cap_net_bind_service", "CHOWN"]},
    {"user": "1000:1000"}, {"user": "nobody"}, {"user": "app:app"},
    {"pids_limit": -1}, {"pids_limit": 1},
    {"image": "sha256:" + "a" * 64}, {"image": "registry.example.com:5000/team/web:1@sha256:" + "b" * 64},
    {"security_opts": ["no-new-privileges", "no-new-privileges:true", "apparmor=docker-default",
                       "label=disable", "seccomp=unconfined", 'seccomp={"defaultAction": "SCMP_ACT_ALLOW"}']},
    {"strategy": "stop-first", "published_ports": ["[::]:9000:9000", "[::1]::9001/udp", "0.0.0.0:80:8080"]},
])
def test_validate_accepts(over):
    _container_spec.validate(params(**over))


@pytest.mark.parametrize("spec,expected,canonical", [
    # without an address: loopback only, never every address
    ("8080", ("127.0.0.1", None, 8080, "tcp"), "127.0.0.1::8080/tcp"),
    ("80:8080", ("127.0.0.1", 80, 8080, "tcp"), "127.0.0.1:80:8080/tcp"),
    ("9000:9000/udp", ("127.0.0.1", 9000, 9000, "udp"), "127.0.0.1:9000:9000/udp"),
    ("127.0.0.1:80:8080/udp", ("127.0.0.1", 80, 8080, "udp"), "127.0.0.1:80:8080/udp"),
    ("127.0.0.1::8080", ("127.0.0.1", None, 8080, "tcp"), "127.0.0.1::8080/tcp"),
    # explicit: every address
    ("0.0.0.0:9000:9000", ("0.0.0.0", 9000, 9000, "tcp"), "0.0.0.0:9000:9000/tcp"),
    ("[::]:9000:9000", ("::", 9000, 9000, "tcp"), "[::]:9000:9000/tcp"),
    ("[::1]::9000/udp", ("::1", None, 9000, "udp"), "[::1]::9000/udp"),
    ("[fd00:0::0:10]:80:8080", ("fd00::10", 80, 8080, "tcp"), "[fd00::10]:80:8080/tcp"),
])
def test_parse_port_spec(spec, expected, canonical):
    assert _container_spec.parse_port_spec(spec) == expected
    assert _container_spec.canonical_port_spec(spec) == canonical
    assert _container_spec.parse_port_spec(canonical) == expected


def test_port_spec_without_address_hashes_as_loopback():
    """A container made from "9000:9000" when that meant every address must not match now."""
    a = _container_spec.desired_config(params(published_ports=["9000:9000"]))
    b = _container_spec.desired_config(params(published_ports=["127.0.0.1:9000:9000/tcp"]))
    c = _container_spec.desired_config(params(published_ports=["0.0.0.0:9000:9000"]))
    assert a["published_ports"] == ["127.0.0.1:9000:9000/tcp"]
    assert _config_hash.config_hash(a) == _config_hash.config_hash(b) != _config_hash.config_hash(c)


def test_config_hash_ignores_order_and_module_only_settings():
    a = _container_spec.desired_config(params(env={"A": "1", "B": "2"}, volumes=["b:/b", "a:/a"]))
    b = _container_spec.desired_config(params(env={"B": "2", "A": "1"}, volumes=["a:/a", "b:/b"],
                                              strategy="stop-first", drain_seconds=30))
    assert _config_hash.config_hash(a) == _config_hash.config_hash(b)
    c = _container_spec.desired_config(params(env={"A": "1", "B": "3"}))
    assert _config_hash.config_hash(a) != _config_hash.config_hash(c)


def test_config_never_holds_secret_values():
    cfg = _container_spec.desired_config(params(secret_env={"TOKEN": "s3cret-value"}))
    text = json.dumps(cfg)
    assert "s3cret-value" not in text and "TOKEN" in text
    assert cfg["secret_delivery"] == "file"
    assert _config_hash.config_hash(cfg) == _config_hash.config_hash(
        _container_spec.desired_config(params(secret_env={"TOKEN": "another"})))


@pytest.mark.parametrize("over", [
    {"secret_delivery": "env"},
    {"secret_uid": 1000},
    {"user": "1000"},
    {"read_only": True},
    {"tmpfs": ["/tmp"]},
    {"tmpfs": ["/tmp:size=1m"]},
    {"cap_drop": ["ALL"]},
    {"cap_add": ["NET_ADMIN"]},
    {"pids_limit": 100},
    {"security_opts": ["no-new-privileges:true"]},
])
def test_hardening_options_change_the_hash(over):
    base = _config_hash.config_hash(_container_spec.desired_config(params(secret_env={"TOKEN": "v"})))
    assert _config_hash.config_hash(_container_spec.desired_config(params(secret_env={"TOKEN": "v"}, **over))) != base


def test_resource_limits_reach_the_container_and_its_hash():
    """memory limits swap alike; cpu_shares is a weight; both are compared."""
    cfg = _container_spec.desired_config(params(memory=" 1G", cpu_shares=512))
    assert (cfg["memory"], cfg["memory_swap"], cfg["cpu_shares"]) == ("1g", "1g", 512)
    dummy, host = _container_spec.create_arguments(params(), cfg, "web", "sha256:x", "web", 32768)
    assert (host["mem_limit"], host["memswap_limit"], host["cpu_shares"]) == ("1g", "1g", 512)
    assert _config_hash.config_hash(cfg) != _config_hash.config_hash(
        _container_spec.desired_config(params(memory="1g", cpu_shares=1024)))


def test_no_limits_keep_the_hash_of_earlier_releases():
    """A container without limits keeps its hash: the new keys are left out at their unset value."""
    cfg = _container_spec.desired_config(params())
    assert (cfg["memory"], cfg["memory_swap"], cfg["cpu_shares"]) == (None, None, None)
    earlier = dict((k, v) for k, v in cfg.items() if k not in ("memory_swap", "cpu_shares"))
    assert _config_hash.config_hash(cfg) == _config_hash.config_hash(earlier)
    dummy, host = _container_spec.create_arguments(params(), cfg, "web", "sha256:x", "web", 32768)
    assert not set(host) & {"mem_limit", "memswap_limit", "cpu_shares", "nano_cpus"}


def test_hardening_options_normalised():
    a = _container_spec.desired_config(params(cap_drop=["net_raw", "CAP_MKNOD", "NET_RAW"], cap_add=["cap_chown"],
                                              security_opts=["b=x", "no-new-privileges:true"], tmpfs=["/b", "/a:size=1m"]))
    assert a["cap_drop"] == ["MKNOD", "NET_RAW"] and a["cap_add"] == ["CHOWN"]
    assert a["security_opts"] == ["b=x", "no-new-privileges:true"]
    assert a["tmpfs"] == ["/a:size=1m", "/b"]
    b = _container_spec.desired_config(params(cap_drop=["MKNOD", "net_raw"], cap_add=["CHOWN"],
                                              security_opts=["no-new-privileges:true", "b=x"], tmpfs=["/a:size=1m", "/b"]))
    assert _config_hash.config_hash(a) == _config_hash.config_hash(b)


def test_changed_secret_keys_and_masked_diff():
    changed = _container_spec.changed_secret_keys({"A": "new", "B": "same"}, {"A": "old", "B": "same", "C": "x"},
                                                  ["A", "B", "C"])
    assert changed == ["A", "C"]
    before_cfg = {"env": {"X": "1"}, "secret_env_keys": ["A", "B", "C"], "port": 8080}
    after_cfg = {"env": {"X": "2"}, "secret_env_keys": ["A", "B"], "port": 8080}
    before, after = _container_spec.config_diff(before_cfg, after_cfg, "sha256:1", "sha256:2", changed)
    assert before == {"image": "sha256:1", "env": {"X": "1"},
                      "secret_env": {"A": _container_spec.SECRET_MASK, "C": _container_spec.SECRET_MASK}}
    assert after["secret_env"] == {"A": _container_spec.SECRET_MASK + " (changed)"}
    assert "port" not in after and "old" not in json.dumps([before, after])


def test_healthcheck_normalised():
    assert _container_spec.normalize_healthcheck({"disable": True}) == {"test": ["NONE"]}
    assert _container_spec.normalize_healthcheck({"test": ["wget", "-q", "x"], "interval": 2}) == {
        "test": ["CMD", "wget", "-q", "x"], "interval": 2}
    assert _container_spec.normalize_healthcheck({"test": ["CMD-SHELL", "true"]})["test"] == ["CMD-SHELL", "true"]


@pytest.mark.parametrize("container, name, until", [
    ("web--draining-1714557605", None, 1714557605),
    ("web--draining-1714557605", "web", 1714557605),
    ("web--draining-1714557605", "api", None),
    ("my-web--draining-5", "my-web", 5),
    ("web", None, None),
    ("web--next", "web", None),
    ("web--draining-", None, None),
    ("web--draining-12x", None, None),
])
def test_drain_deadline_is_read_from_the_name(container, name, until):
    assert _container_spec.drain_deadline(container, name) == until
    if name is None:
        assert _container_spec.drain_owner(container) == (container.rsplit("--draining-", 1)[0] if until else None)


def test_draining_name_round_trips():
    name = _container_spec.draining_name("web", 1714557605)
    assert name == "web--draining-1714557605"
    assert (_container_spec.drain_owner(name), _container_spec.drain_deadline(name, "web")) == ("web", 1714557605)
