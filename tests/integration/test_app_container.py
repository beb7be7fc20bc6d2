"""app_container against the real Docker engine and a private real nginx."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import BIN, REPO, ansible_env, run_module  # noqa: E402  (tests/conftest.py helpers)
pytest.register_assert_rewrite("app_container.fixtures")
from app_container.fixtures import Probe, free_port, kill_tree, app_containers  # noqa: E402

# The afb_* fixtures (private nginx, test images, one app per test) live there.
pytest_plugins = ["app_container.fixtures"]

LABEL_CONFIG_HASH = "io.appfleet.config-hash"


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


def _wait_for(predicate, seconds, step=0.1):
    """Poll predicate() until true; bounded by seconds."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


def _lock_holder(app):
    path = app.lock_dir / ("%s.lock" % app.name)
    try:
        return json.loads(path.read_text() or "null")
    except (OSError, ValueError):
        return None


def test_concurrent_runs_one_waits(afb_app, docker_client):
    results = {}

    def deploy(key, release):
        # No health path: each run must see its container stay up 4 s, so the runs overlap.
        args = afb_app.args(image="afb-app:v1", env={"RELEASE": release}, health={"settle": 4})
        results[key] = run_module("app_container", args)

    threads = [threading.Thread(target=deploy, args=(k, k)) for k in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert sorted(r["action"] for r in results.values()) == ["created", "replaced"], results
    waited = [r for r in results.values() if r["lock"].get("waited_for")]
    assert len(waited) == 1, results
    (container,) = afb_app.containers()
    last = max(results.values(), key=lambda r: r["action"] == "replaced")
    assert container.id == last["container"]["id"]
    assert afb_app.get() == (200, "version v1\n")


def test_second_run_fails_on_lock(afb_app, docker_client):
    first = run_module("app_container", afb_app.args(image="afb-app:v1"))
    slow = afb_app.args(image="afb-app:nohealth", health={"path": "/health", "timeout": 8, "interval": 0.2})
    results = {}
    thread = threading.Thread(target=lambda: results.update(slow=run_module("app_container", slow)))
    thread.start()
    holder = _wait_for(lambda: _lock_holder(afb_app), 60)
    assert holder and holder["pid"], "the first run never took the lock"
    blocked = run_module("app_container", afb_app.args(image="afb-app:v2", lock_timeout=1))
    thread.join(120)
    assert blocked.get("failed") is True, blocked
    assert "another run is deploying this app" in blocked["msg"], blocked["msg"]
    assert "pid %s" % holder["pid"] in blocked["msg"], blocked["msg"]
    assert results["slow"].get("failed") is True and "health check" in results["slow"]["msg"]
    (container,) = afb_app.containers()
    assert container.id == first["container"]["id"]
    assert afb_app.get() == (200, "version v1\n")


def test_killed_run_next_run_converges(afb_app, afb_images, docker_client, tmp_path):
    first = run_module("app_container", afb_app.args(image="afb-app:v1"))
    assert first["action"] == "created"
    slow = afb_app.args(image="afb-app:nohealth", health={"path": "/health", "timeout": 90, "interval": 0.2})
    book = tmp_path / "play.yml"
    book.write_text(json.dumps([{
        "hosts": "localhost", "gather_facts": False,
        "vars": {"ansible_python_interpreter": sys.executable},
        "tasks": [{"name": "Deploy", "appfleet.docker.app_container": slow}],
    }]))
    proc = subprocess.Popen([str(BIN / "ansible-playbook"), str(book), "-i", "localhost,", "-c", "local"],
                            cwd=REPO, env=ansible_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        temp = afb_app.name + "--next"
        started = _wait_for(lambda: [c for c in afb_app.containers() if c.name == temp], 90)
        assert started, "the run never started its new container"
        time.sleep(1)  # it is now health-checking
    finally:
        kill_tree(proc)
    assert len(afb_app.containers()) == 2  # killed mid-swap: a stray is left
    stale = _lock_holder(afb_app)
    assert stale and stale["pid"]
    assert afb_app.get() == (200, "version v1\n")

    res = run_module("app_container", afb_app.args(image="afb-app:v2", lock_timeout=5))
    assert res.get("changed") is True and res["action"] == "replaced", res
    assert res["lock"]["stale_holder"]["pid"] == stale["pid"]
    (container,) = afb_app.containers()
    assert container.id == res["container"]["id"] and container.name == afb_app.name
    assert container.image.id == afb_images["v2"]
    assert afb_app.get() == (200, "version v2\n")
    again = run_module("app_container", afb_app.args(image="afb-app:v2"))
    assert again.get("changed") is False, again


SECRET = "afb-S3cr3t-Value-9137"
SECRET2 = "afb-0ther-S3cret-4412"


def test_secrets_never_logged(afb_app, docker_client, tmp_path):
    log = tmp_path / "ansible.log"
    env = {"ANSIBLE_LOG_PATH": str(log)}
    args = afb_app.args(image="afb-app:v1", secret_env={"API_TOKEN": SECRET}, env={"PLAIN": "yes"})
    res = run_module("app_container", args, verbosity=3, diff=True, env=env)
    assert res["action"] == "created", res
    st = os.stat(afb_app.env_file)
    assert (st.st_mode & 0o777, st.st_uid) == (0o600, 0)
    assert "API_TOKEN=%s" % SECRET in afb_app.env_file.read_text()
    (container,) = afb_app.containers()
    assert "API_TOKEN=%s" % SECRET in container.attrs["Config"]["Env"]  # docker inspect shows it (documented)

    # A changed secret, and a new container that prints it and dies: the task fails.
    bad = afb_app.args(image="afb-app:v1", secret_env={"API_TOKEN": SECRET2}, env={"PLAIN": "yes"},
                       command=["/bin/busybox", "sh", "-c", "echo leaked $API_TOKEN; exit 3"],
                       health={"path": "/health", "timeout": 3, "interval": 0.2})
    failed = run_module("app_container", bad, verbosity=3, diff=True, env=env)
    assert failed.get("failed") is True and "exited with code 3" in failed["msg"], failed
    assert "leaked" in failed["msg"]
    assert "API_TOKEN" in failed.stdout  # the diff names the changed variable, not its value
    # The failed rollout put the previous env file back.
    assert "API_TOKEN=%s" % SECRET in afb_app.env_file.read_text()
    text = log.read_text()
    assert "Deploy" in text or "Run the module" in text
    for secret in (SECRET, SECRET2):
        for where, out in (("stdout", res.stdout + failed.stdout), ("stderr", res.stderr + failed.stderr),
                           ("log", text), ("result", json.dumps(res) + json.dumps(failed))):
            assert secret not in out, "secret found in %s" % where
    assert afb_app.get() == (200, "version v1\n")


def test_state_absent(afb_app, docker_client):
    run_module("app_container", afb_app.args(image="afb-app:v1", secret_env={"K": "v"}))
    gone = run_module("app_container", {"name": afb_app.name, "state": "absent",
                                        "secret_env_file": str(afb_app.env_file),
                                        "lock_dir": str(afb_app.lock_dir)})
    assert gone.get("changed") is True and gone["action"] == "removed", gone
    assert afb_app.containers() == [] and not afb_app.env_file.exists()
    again = run_module("app_container", {"name": afb_app.name, "state": "absent",
                                         "secret_env_file": str(afb_app.env_file)})
    assert again.get("changed") is False, again


@pytest.mark.parametrize("over,option", [
    ({"name": "afb bad name!"}, "name:"),
    ({"port": 70000}, "port:"),
    ({"restart_policy": "sometimes"}, "restart_policy"),
    ({"port": None}, "health.path:"),
    ({"image": "afb-app:does-not-exist"}, "image:"),
    ({"image": None}, "image:"),
    ({"published_ports": ["127.0.0.1:18080:8080"]}, "published_ports:"),
    ({"env": {"A": "1"}, "secret_env": {"A": "2"}}, "secret_env:"),
])
def test_bad_input_fails_before_any_change(docker_client, over, option, afb_state_dir):
    name = "afb-badinput"
    args = {"name": name, "image": "afb-app:v1", "port": 8080, "health": {"path": "/health"},
            "lock_dir": str(afb_state_dir / "locks"), "proxy": {"enabled": False}}
    args.update(over)
    args = {k: v for k, v in args.items() if v is not None}
    res = run_module("app_container", args)
    assert res.get("failed") is True, res
    assert option in res["msg"], res["msg"]
    assert app_containers(docker_client, name) == []


def test_full_config_reaches_the_container(afb_app, docker_client):
    net = docker_client.networks.create(afb_app.name + "-net")
    try:
        args = afb_app.args(
            image="afb-app:v1", command=["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"],
            networks=[net.name], volumes=[afb_app.name + "-data:/data"], memory="64m", cpus=0.5,
            restart_policy="on-failure", labels={"team": "afb"}, log_driver="json-file",
            log_options={"max-size": "1m", "max-file": "2"}, stop_timeout=3,
            healthcheck={"test": ["/bin/busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/health"],
                         "interval": 1, "retries": 3})
        res = run_module("app_container", args, diff=True)
        assert res["action"] == "created", res
        assert res["container"]["health"] == "healthy"
        (container,) = afb_app.containers()
        attrs = container.attrs
        host = attrs["HostConfig"]
        assert net.name in attrs["NetworkSettings"]["Networks"]
        assert any(m["Name"] == afb_app.name + "-data" and m["Destination"] == "/data" for m in attrs["Mounts"])
        assert host["Memory"] == 64 * 1024 * 1024 and host["NanoCpus"] == 500000000
        assert host["RestartPolicy"]["Name"] == "on-failure"
        assert host["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "1m", "max-file": "2"}}
        assert attrs["Config"]["StopTimeout"] == 3 and container.labels["team"] == "afb"
        assert attrs["Config"]["Healthcheck"]["Test"][0] == "CMD"
        assert afb_app.get() == (200, "version v1\n")
        assert run_module("app_container", args).get("changed") is False
        changed = run_module("app_container", dict(args, memory="96m"), check=True, diff=True)
        assert changed.get("changed") is True
        assert changed["diff"] == {"before": {"memory": "64m"}, "after": {"memory": "96m"}}
        assert afb_app.containers()[0].id == container.id
    finally:
        for container in afb_app.containers():
            container.remove(force=True)
        net.remove()
        for volume in docker_client.volumes.list(filters={"name": afb_app.name + "-data"}):
            volume.remove(force=True)


def test_nginx_refusing_the_switch_keeps_old(afb_app, docker_client):
    first = run_module("app_container", afb_app.args(image="afb-app:v1"))
    upstream = Path(first["upstream_file"])
    before = upstream.read_text()
    args = afb_app.args(image="afb-app:v2")
    args["proxy"] = dict(args["proxy"], test_command=["/bin/sh", "-c", "echo afb-config-broken >&2; exit 1"])
    res = run_module("app_container", args)
    assert res.get("failed") is True, res
    assert "nginx did not accept the switch to the new container" in res["msg"], res["msg"]
    assert "afb-config-broken" in res["msg"] and "the previous container is still serving" in res["msg"]
    assert upstream.read_text() == before
    (container,) = afb_app.containers()
    assert container.id == first["container"]["id"]
    assert afb_app.get() == (200, "version v1\n")
