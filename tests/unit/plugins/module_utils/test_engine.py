"""Pure logic of the engine side of app_container: which container serves, its secret mounts, ports taken."""

from __future__ import annotations

import socket

import pytest
import requests
from docker.errors import APIError

from ansible_collections.appfleet.docker.plugins.module_utils import _engine, _files


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


@pytest.mark.parametrize("text,port,expected", [
    ("Bind for 127.0.0.1:40001 failed: port is already allocated", 40001, True),
    ("driver failed programming external connectivity: listen tcp4 127.0.0.1:40001: bind: address already in use",
     40001, True),
    ("Bind for 127.0.0.1:9000 failed: port is already allocated", 40001, False),  # a fixed port: no retry
    ("no such image", 40001, False),
    ("port is already allocated", None, False),
])
def test_port_taken(text, port, expected):
    assert _engine.port_taken(APIError(text), port) is expected


def _api_error(status, explanation):
    response = requests.Response()
    response.status_code = status
    return APIError("engine error", response=response, explanation=explanation)


@pytest.mark.parametrize("status,explanation,expected", [
    (409, "removal of container 0123abcd is already in progress", True),
    (409, "You cannot remove a running container 0123abcd", False),
    (500, "removal of container 0123abcd is already in progress", False),
])
def test_removal_in_progress(status, explanation, expected):
    assert _engine.removal_in_progress(_api_error(status, explanation)) is expected
    assert _engine.removal_in_progress(OSError(explanation)) is False


def _bound_port():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    return sock


def test_free_port_search_honours_used_and_bound_ports():
    holder = _bound_port()
    try:
        taken = holder.getsockname()[1]
        # A range of one used port, one bound port and one free one: always the free one.
        free = _engine.free_loopback_port({taken})
        candidates = [taken - 1, taken, free]
        for dummy in range(20):
            assert _engine.free_loopback_port({taken - 1}, candidates) == free
        with pytest.raises(_engine.AppfleetError) as err:
            _engine.free_loopback_port({taken - 1, free}, candidates)
        assert "found no free port on 127.0.0.1 among the 3 slot ports" in str(err.value)
        assert "widen proxy.slot_ports" in str(err.value)
        assert _engine.loopback_port_free(taken) is False
    finally:
        holder.close()
    # No range: an ephemeral port, never one of ``used``.
    assert _engine.free_loopback_port({1, 2, 3}) not in (1, 2, 3)


def test_unprivileged_port_start(tmp_path):
    value = tmp_path / "start"
    value.write_text("1024\n")
    assert _engine.unprivileged_port_start(str(value)) == 1024
    value.write_text("0\n")
    assert _engine.unprivileged_port_start(str(value)) == 0
    assert _engine.unprivileged_port_start(str(tmp_path / "missing")) == 1024
