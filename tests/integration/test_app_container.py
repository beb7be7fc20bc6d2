"""app_container against the real Docker engine and a private real nginx."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import run_module  # noqa: E402  (tests/conftest.py helpers)
from app_container.fixtures import (  # noqa: E402,F401  (pytest fixtures)
    Probe, afb_app, afb_images, afb_nginx, afb_state_dir,
)

LABEL_PREVIOUS_IMAGE = "io.appfleet.previous-image"
LABEL_CONFIG_HASH = "io.appfleet.config-hash"
FAILED = "Task failed: Module failed: "


def test_same_config_twice(afb_app, afb_images, docker_client):
    args = afb_app.args(image="afb-app:v1", env={"GREETING": "hello"})
    check = run_module("app_container", args, check=True, diff=True)
    assert check.get("changed") is True and check["action"] == "created", check
    assert afb_app.containers() == []

    first = run_module("app_container", args)
    assert first.get("changed") is True and first["action"] == "created", first
    assert first["container"]["image"] == afb_images["v1"]
    assert afb_app.get() == (200, "version v1\n")

    second = run_module("app_container", args)
    assert second.get("changed") is False and second["action"] == "unchanged", second
    (container,) = afb_app.containers()
    assert container.id == first["container"]["id"] == second["container"]["id"]
    assert container.attrs["State"]["StartedAt"] == first["container"]["started_at"]
    assert container.name == afb_app.name
    assert container.labels[LABEL_CONFIG_HASH]

    again = run_module("app_container", args, check=True)
    assert again.get("changed") is False, again


def test_env_change_start_first_zero_failed_requests(afb_app, docker_client):
    first = run_module("app_container", afb_app.args(image="afb-app:v1", env={"RELEASE": "1"}))
    assert first["action"] == "created", first
    with Probe(afb_app.proxy_port) as probe:
        # Let the probe run against the old container first.
        while probe.ok < 10 and probe.is_alive():
            probe.stop_event.wait(0.05)
        res = run_module("app_container", afb_app.args(image="afb-app:v1", env={"RELEASE": "2"}))
        done_at = probe.ok
        while probe.ok < done_at + 10 and probe.is_alive():
            probe.stop_event.wait(0.05)
    assert res.get("changed") is True and res["action"] == "replaced", res
    assert probe.failures == [], probe.failures[:5]
    assert probe.ok >= 40
    (container,) = afb_app.containers()
    assert container.id == res["container"]["id"] != first["container"]["id"]
    assert container.name == afb_app.name
    assert "RELEASE=2" in container.attrs["Config"]["Env"]
    assert first["container"]["id"][:12] in res["removed"]
    # The upstream points at the new container's loopback port.
    upstream = Path(res["upstream_file"]).read_text()
    assert "server 127.0.0.1:%d;" % res["container"]["host_port"] in upstream


def test_image_change_records_previous_and_rollback(afb_app, afb_images, docker_client):
    args = afb_app.args(image="afb-app:v1")
    assert run_module("app_container", args)["action"] == "created"
    res = run_module("app_container", afb_app.args(image="afb-app:v2"))
    assert res["action"] == "replaced", res
    assert res["container"]["image"] == afb_images["v2"]
    assert res["container"]["previous_image"] == afb_images["v1"]
    assert afb_app.get() == (200, "version v2\n")
    images_before = sorted(i.id for i in docker_client.images.list(all=True))

    check = run_module("app_container", afb_app.args(rollback=True), check=True, diff=True)
    assert check.get("changed") is True and check["action"] == "rolled_back", check
    assert afb_app.get() == (200, "version v2\n")

    with Probe(afb_app.proxy_port) as probe:
        while probe.ok < 10 and probe.is_alive():
            probe.stop_event.wait(0.05)
        back = run_module("app_container", afb_app.args(rollback=True))
    assert back.get("changed") is True and back["action"] == "rolled_back", back
    assert probe.failures == [], probe.failures[:5]
    assert back["container"]["image"] == afb_images["v1"]
    # It recorded the image it replaced: rolling back again returns to v2.
    assert back["container"]["previous_image"] == afb_images["v2"]
    assert afb_app.get() == (200, "version v1\n")
    (container,) = afb_app.containers()
    assert container.image.id == afb_images["v1"]
    # No build and no pull: the engine has exactly the images it had.
    assert sorted(i.id for i in docker_client.images.list(all=True)) == images_before


@pytest.mark.parametrize("variant,reason", [
    ("nohealth", "failed its health check after 3 s"),
    ("crash", "exited with code 1"),
])
def test_never_healthy_keeps_old_serving(afb_app, docker_client, variant, reason):
    first = run_module("app_container", afb_app.args(image="afb-app:v1"))
    assert first["action"] == "created", first
    with Probe(afb_app.proxy_port) as probe:
        while probe.ok < 10 and probe.is_alive():
            probe.stop_event.wait(0.05)
        bad = afb_app.args(image="afb-app:%s" % variant)
        bad["health"] = {"path": "/health", "timeout": 3, "interval": 0.2}
        res = run_module("app_container", bad)
    assert res.get("failed") is True, res
    msg = res["msg"]
    assert "app %s: new container" % afb_app.name in msg and reason in msg, msg
    assert "the previous container is still serving" in msg and "Last log lines:" in msg, msg
    assert probe.failures == [], probe.failures[:5]
    assert probe.bodies == {"version v1"}
    (container,) = afb_app.containers()
    assert container.id == first["container"]["id"]
    assert container.status == "running"
    assert afb_app.get() == (200, "version v1\n")


def test_stop_first_failing_image_restarts_old(afb_app, afb_images, docker_client):
    from app_container.fixtures import free_port
    import http.client

    fixed = free_port()
    base = dict(name=afb_app.name, strategy="stop-first", stop_timeout=1,
                published_ports=["127.0.0.1:%d:8080" % fixed],
                health={"timeout": 5, "interval": 0.2},
                proxy={"enabled": False}, lock_dir=str(afb_app.lock_dir))

    def get():
        conn = http.client.HTTPConnection("127.0.0.1", fixed, timeout=2)
        try:
            conn.request("GET", "/")
            resp = conn.getresponse()
            return resp.status, resp.read().decode()
        finally:
            conn.close()

    first = run_module("app_container", dict(base, image="afb-app:dockerhealth"))
    assert first["action"] == "created", first
    assert first["container"]["health"] == "healthy"
    assert get() == (200, "version dockerhealth\n")

    res = run_module("app_container", dict(base, image="afb-app:crash"))
    assert res.get("failed") is True, res
    assert "exited with code 1" in res["msg"] and "the previous container was started again" in res["msg"], res
    (container,) = afb_app.containers()
    assert container.id == first["container"]["id"]
    assert container.status == "running"
    assert get() == (200, "version dockerhealth\n")

    good = run_module("app_container", dict(base, image="afb-app:v2"))
    assert good["action"] == "replaced", good
    (container,) = afb_app.containers()
    assert container.id == good["container"]["id"] and container.name == afb_app.name
    assert get() == (200, "version v2\n")
