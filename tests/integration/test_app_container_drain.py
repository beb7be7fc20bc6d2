"""The old container drains after a start-first swap without holding up the run.

app_container returns right after nginx moved to the new container; the old one,
renamed <name>--draining-<deadline>, finishes its requests in flight and is removed
at the deadline by a detached process. A later run finishes a drain whose remover
was killed, and deploy_state and image_prune treat a draining container as such.
"""
# pytest fixtures take each other by name: pylint: disable=redefined-outer-name

from __future__ import annotations

import http.client
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import process_argvs, run_module, run_modules  # noqa: E402  (tests/conftest.py helpers)
pytest.register_assert_rewrite("app_container.fixtures")
from app_container.fixtures import DRAIN_MARKER, WEB_REPO, app_containers  # noqa: E402

pytest_plugins = ["app_container.fixtures"]

DRAIN = 8


def wait_for(predicate, seconds, step=0.05):
    """Poll ``predicate`` until it is true or ``seconds`` passed; return its last value."""
    deadline = time.time() + seconds
    while True:
        value = predicate()
        if value or time.time() >= deadline:
            return value
        time.sleep(step)


def until_of(res):
    """The deadline (unix time) of the container a run left draining, from its name."""
    return int(res["draining"]["container"].rsplit("-", 1)[1])


def container_or_none(client, cid):
    import docker.errors  # pylint: disable=import-outside-toplevel

    try:
        return client.containers.get(cid)
    except docker.errors.NotFound:
        return None


def removers(app):
    """Pids of the processes that drain one of ``app``'s containers."""
    return [int(pid) for pid, argv in process_argvs() if DRAIN_MARKER in argv and app in argv]


def test_swap_returns_while_the_old_container_finishes_a_request(app, web_images, docker_client):
    """(a) The run returns before the drain ends; the old container still runs and answers a request it
    got before the switch; it is gone after its deadline."""
    args = {"drain_seconds": DRAIN, "stop_timeout": 5, "health": {"path": "/health", "timeout": 60, "interval": 0.2}}
    first = run_module("app_container", app.args(image="%s:v1" % WEB_REPO, **args))
    assert first["action"] == "created" and first["draining"] is None, first
    old_id = first["container"]["id"]

    result, slow = {}, {}

    def slow_request():
        conn = http.client.HTTPConnection("127.0.0.1", app.proxy_port, timeout=30)
        try:
            conn.request("GET", "/slow?s=6")
            resp = conn.getresponse()
            slow.update(status=resp.status, body=resp.read().decode(), at=time.time())
        finally:
            conn.close()

    swap = threading.Thread(target=lambda: result.update(
        run_module("app_container", app.args(image="%s:v2" % WEB_REPO, **args))), daemon=True)
    swap.start()
    # A request in flight at the switch: sent once the new container runs beside the old one, before
    # it passed its health gate (the switch comes after).
    assert wait_for(lambda: [c for c in app_containers(docker_client, app.name)
                             if c.name.endswith("--next") and c.status == "running"] or not swap.is_alive(), 120)
    client = threading.Thread(target=slow_request, daemon=True)
    client.start()
    swap.join(120)
    returned = time.time()
    assert not swap.is_alive()

    assert result.get("changed") is True and result["action"] == "replaced", result
    assert result["container"]["image"] == web_images["v2"] and result["removed"] == []
    until = until_of(result)
    assert result["draining"]["id"] == old_id[:12]
    assert result["draining"]["container"] == "%s--draining-%d" % (app.name, until)
    # The run returned before the drain ended, the old container still running under its draining name.
    assert returned < until, (returned, until)
    old = docker_client.containers.get(old_id)
    assert old.status == "running" and old.name == result["draining"]["container"]
    assert app.get() == (200, "web v2 hello\n")
    # The request in flight at the switch is answered by the old version, after the run returned.
    client.join(30)
    assert slow.get("status") == 200 and slow["body"] == "web v1 slow 6s\n", slow
    assert returned < slow["at"] < until + 1, (returned, slow, until)
    # The detached remover stops and removes it at the deadline (and not before).
    assert wait_for(lambda: container_or_none(docker_client, old_id) is None, DRAIN + 5 + 30, 0.2)
    assert time.time() >= until - 0.5
    assert [c.id for c in app_containers(docker_client, app.name)] == [result["container"]["id"]]
    # It ends once the container is gone (and its secret release directories with it).
    assert wait_for(lambda: removers(app.name) == [], 10, 0.1)


def test_killed_remover_next_run_finishes_the_drain(app, docker_client, tmp_path):
    """(b) The remover killed: the leftover is a reason for deploy_state after its deadline (c), not before;
    the next run removes it first and the swap takes its slot port again, without an nginx reload."""
    # Long enough for deploy_state's two calls (one Ansible start) to come before the deadline under load.
    args = {"drain_seconds": 20}
    first = run_module("app_container", app.args(image="afb-app:v1", **args))
    assert first["action"] == "created", first
    old = first["container"]
    second = run_module("app_container", app.args(image="afb-app:v2", **args))
    assert second["action"] == "replaced" and second["proxy_reloads"] == 0, second
    until = until_of(second)
    (pid,) = wait_for(lambda: removers(app.name), 10)
    os.kill(pid, signal.SIGKILL)

    # (c) Right after the swap: the host is as the deploy left it (the draining container is not part
    # of the record); after its deadline the leftover is named, as its app's.
    state = dict(path=str(tmp_path / "deploy-state.json"), fingerprint="f" * 64, sources=[], watch_paths=[])
    recorded, checked = run_modules("deploy_state", [dict(state, state="record"), state])
    assert recorded.get("failed") is not True and checked.get("failed") is not True, (recorded, checked)
    assert time.time() < until, "deploy_state came after the deadline: the test says nothing"
    assert [r for r in checked["reasons"] if app.name in r] == []
    wait_for(lambda: time.time() > until + 1, 30, 0.2)
    assert docker_client.containers.get(old["id"]).status == "running"
    ours = [r for r in run_module("deploy_state", state)["reasons"] if app.name in r]
    assert len(ours) == 1 and ours[0].startswith("container %s--draining-%d: its drain ended " % (app.name, until))
    assert ours[0].endswith("a deploy of app %s removes it" % app.name)

    check = run_module("app_container", app.args(image="afb-app:v3", **args), check=True, diff=True)
    assert check["changed"] is True and "a run without check mode removes it" in check["msg"], check
    assert check["diff"]["before"]["draining_containers"] == [second["draining"]["container"]]
    assert docker_client.containers.get(old["id"]).status == "running"

    third = run_module("app_container", app.args(image="afb-app:v3", **args))
    assert third["action"] == "replaced" and "removed it before anything else" in third["msg"], third
    assert third["removed"] == [old["id"][:12]]
    # The leftover's slot port is taken again: only the flag moved.
    assert third["proxy_reloads"] == 0 and third["container"]["host_port"] == old["host_port"]
    assert container_or_none(docker_client, old["id"]) is None
    assert app.get() == (200, "version v3\n")


def test_drain_zero_and_stop_first_remove_at_once(app, docker_client):
    """drain_seconds 0 and stop-first: the old container is gone when the run returns."""
    run_module("app_container", app.args(image="afb-app:v1", drain_seconds=0))
    for over in ({"image": "afb-app:v2", "drain_seconds": 0}, {"image": "afb-app:v3", "strategy": "stop-first"}):
        res = run_module("app_container", app.args(**over))
        assert res["action"] == "replaced" and res["draining"] is None and len(res["removed"]) == 1, res
        assert [c.id for c in app_containers(docker_client, app.name)] == [res["container"]["id"]]
