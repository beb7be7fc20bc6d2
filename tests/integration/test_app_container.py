"""app_container against the real Docker engine and a private real nginx."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import REPO, run_module, run_modules, run_playbook, start_module  # noqa: E402  (tests/conftest.py helpers)
pytest.register_assert_rewrite("app_container.fixtures")
from app_container.fixtures import Probe, free_port, kill_tree, app_containers  # noqa: E402

# The fixtures app, app_images, nginx and state_dir (private nginx, test images, one app per test) live there.
pytest_plugins = ["app_container.fixtures"]

LABEL_CONFIG_HASH = "io.appfleet.config-hash"


def test_same_config_twice(app, app_images, docker_client):
    args = app.args(image="afb-app:v1", env={"GREETING": "hello"})
    check = run_module("app_container", args, check=True, diff=True)
    assert check.get("changed") is True and check["action"] == "created", check
    assert app.containers() == []

    first = run_module("app_container", args)
    assert first.get("changed") is True and first["action"] == "created", first
    assert first["container"]["image"] == app_images["v1"]
    assert app.get() == (200, "version v1\n")

    second = run_module("app_container", args)
    assert second.get("changed") is False and second["action"] == "unchanged", second
    (container,) = app.containers()
    assert container.id == first["container"]["id"] == second["container"]["id"]
    assert container.attrs["State"]["StartedAt"] == first["container"]["started_at"]
    assert container.name == app.name
    assert container.labels[LABEL_CONFIG_HASH]

    again = run_module("app_container", args, check=True)
    assert again.get("changed") is False, again


def test_env_change_start_first_zero_failed_requests(app, docker_client):
    first = run_module("app_container", app.args(image="afb-app:v1", env={"RELEASE": "1"}))
    assert first["action"] == "created", first
    with Probe(app.proxy_port) as probe:
        # Let the probe run against the old container first.
        probe.wait_ok(10)
        # A drain of 3 s, not the fixtures' 1 s: on a loaded 2-core CI machine a request in
        # flight at the switch may take more than a second, and the drain is what lets it finish.
        res = run_module("app_container", app.args(image="afb-app:v1", env={"RELEASE": "2"}, drain_seconds=3))
        # The old container drains after the run returned: the probe goes on until it is gone.
        app.containers()
        probe.wait_ok(probe.ok + 10)
    assert res.get("changed") is True and res["action"] == "replaced", res
    assert probe.failures == [], probe.failures[:5]
    assert probe.ok >= 40
    (container,) = app.containers()
    assert container.id == res["container"]["id"] != first["container"]["id"]
    assert container.name == app.name
    assert "RELEASE=2" in container.attrs["Config"]["Env"]
    # The old container drained after the run returned, then went (app.containers() waited for that).
    assert res["draining"]["id"] == first["container"]["id"][:12] and res["removed"] == []
    # The upstream's active slot is the new container's loopback port.
    assert active_port(Path(res["upstream_file"]), app.name) == res["container"]["host_port"]


def nginx_processes(nginx):
    """The pids of the private nginx's master and workers: a reload replaces the workers."""
    master = int((nginx.root / "nginx.pid").read_text())
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(master)], capture_output=True, text=True,
                         check=False).stdout
    return master, sorted(int(pid) for pid in out.split())


def active_port(upstream, app):
    """The port nginx sends the app's requests to: the flag file picks slot b."""
    text = upstream.read_text()
    group = "appfleet_%s.b" % app if (upstream.parent / ("%s.slot-b" % app)).exists() else "appfleet_%s" % app
    start = text.index("upstream %s {" % group)
    return int(text[start:].split("server 127.0.0.1:", 1)[1].split()[0])


def test_swaps_move_between_slots_without_reloading_nginx(app, nginx, app_images, docker_client):
    """Each later swap uses the free slot and moves only the flag: no reload, no dropped request."""
    first = run_module("app_container", app.args(image="afb-app:v1"))
    assert first["action"] == "created" and first["proxy_reloads"] == 1, first
    upstream = Path(first["upstream_file"])
    flag = upstream.parent / ("%s.slot-b" % app.name)
    assert active_port(upstream, app.name) == first["container"]["host_port"]
    assert not flag.exists()
    processes = nginx_processes(nginx)
    # Keep-alive and fresh-connection clients, about 8 x 100 requests a second, none retrying.
    probes = [Probe(app.proxy_port, interval=0.01, keepalive=ka) for ka in (True, False) * 4]
    for probe in probes:
        probe.start()
    try:
        for probe in probes:
            probe.wait_ok(20)
        ports = [first["container"]["host_port"]]
        for image, version in (("afb-app:v2", "version v2"), ("afb-app:v1", "version v1"),
                               ("afb-app:v2", "version v2")):
            res = run_module("app_container", app.args(image=image, drain_seconds=3))
            assert res["action"] == "replaced" and res["proxy_reloads"] == 0, res
            ports.append(res["container"]["host_port"])
            assert active_port(upstream, app.name) == ports[-1]
            assert app.get() == (200, version + "\n")
        done = [probe.ok for probe in probes]
        for probe, count in zip(probes, done):
            probe.wait_ok(count + 20)
    finally:
        for probe in probes:
            probe.stop_event.set()
        for probe in probes:
            probe.join(30)
    failures = [f for probe in probes for f in probe.failures]
    assert failures == [], failures[:5]
    assert sum(p.ok for p in probes if p.keepalive) >= 200 and sum(p.ok for p in probes if not p.keepalive) >= 200
    # The two slots alternate: a, b, a, b; the flag follows; nginx never reloaded.
    assert ports[0] == ports[2] and ports[1] == ports[3] and ports[0] != ports[1], ports
    assert flag.exists()
    assert nginx_processes(nginx) == processes
    # Same config again: nothing moves.
    again = run_module("app_container", app.args(image="afb-app:v2"))
    assert again.get("changed") is False and flag.exists(), again


def test_image_change_records_previous_and_rollback(app, app_images, docker_client):
    args = app.args(image="afb-app:v1")
    assert run_module("app_container", args)["action"] == "created"
    res = run_module("app_container", app.args(image="afb-app:v2"))
    assert res["action"] == "replaced", res
    assert res["container"]["image"] == app_images["v2"]
    assert res["container"]["previous_image"] == app_images["v1"]
    assert app.get() == (200, "version v2\n")
    # The app's repository only: other xdist workers build and remove their own images meanwhile.
    images_before = sorted(i.id for i in docker_client.images.list(name="afb-app", all=True))

    check = run_module("app_container", app.args(rollback=True), check=True, diff=True)
    assert check.get("changed") is True and check["action"] == "rolled_back", check
    assert app.get() == (200, "version v2\n")

    with Probe(app.proxy_port) as probe:
        probe.wait_ok(10)
        back = run_module("app_container", app.args(rollback=True))
    assert back.get("changed") is True and back["action"] == "rolled_back", back
    assert probe.failures == [], probe.failures[:5]
    assert back["container"]["image"] == app_images["v1"]
    # It recorded the image it replaced: rolling back again returns to v2.
    assert back["container"]["previous_image"] == app_images["v2"]
    assert app.get() == (200, "version v1\n")
    (container,) = app.containers()
    assert container.image.id == app_images["v1"]
    # No build and no pull: the engine has exactly the images it had.
    assert sorted(i.id for i in docker_client.images.list(name="afb-app", all=True)) == images_before


@pytest.mark.parametrize("variant,reason", [
    ("nohealth", "failed its health check after 3 s"),
    ("crash", "exited with code 1"),
])
def test_never_healthy_keeps_old_serving(app, docker_client, variant, reason):
    first = run_module("app_container", app.args(image="afb-app:v1"))
    assert first["action"] == "created", first
    with Probe(app.proxy_port) as probe:
        probe.wait_ok(10)
        bad = app.args(image="afb-app:%s" % variant)
        bad["health"] = {"path": "/health", "timeout": 3, "interval": 0.2}
        res = run_module("app_container", bad)
    assert res.get("failed") is True, res
    msg = res["msg"]
    assert "app %s: new container" % app.name in msg and reason in msg, msg
    assert "the previous container is still serving" in msg and "Last log lines:" in msg, msg
    assert probe.failures == [], probe.failures[:5]
    assert probe.bodies == {"version v1"}
    (container,) = app.containers()
    assert container.id == first["container"]["id"]
    assert container.status == "running"
    assert app.get() == (200, "version v1\n")


def test_stop_first_failing_image_restarts_old(app, app_images, docker_client):

    fixed = free_port()
    base = dict(name=app.name, strategy="stop-first", stop_timeout=1,
                published_ports=["127.0.0.1:%d:8080" % fixed],
                health={"timeout": 5, "interval": 0.2},
                proxy={"enabled": False}, lock_dir=str(app.lock_dir))

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
    (container,) = app.containers()
    assert container.id == first["container"]["id"]
    assert container.status == "running"
    assert get() == (200, "version dockerhealth\n")

    good = run_module("app_container", dict(base, image="afb-app:v2"))
    assert good["action"] == "replaced", good
    (container,) = app.containers()
    assert container.id == good["container"]["id"] and container.name == app.name
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


def test_concurrent_runs_one_waits(app, docker_client):
    results = {}

    def deploy(key, release):
        # No health path: each run must see its container stay up 4 s, so the runs overlap.
        args = app.args(image="afb-app:v1", env={"RELEASE": release}, health={"settle": 4})
        results[key] = run_module("app_container", args)

    threads = [threading.Thread(target=deploy, args=(k, k)) for k in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert sorted(r["action"] for r in results.values()) == ["created", "replaced"], results
    waited = [r for r in results.values() if r["lock"].get("waited_for")]
    assert len(waited) == 1, results
    (container,) = app.containers()
    last = max(results.values(), key=lambda r: r["action"] == "replaced")
    assert container.id == last["container"]["id"]
    assert app.get() == (200, "version v1\n")


def test_second_run_fails_on_lock(app, docker_client):
    first = run_module("app_container", app.args(image="afb-app:v1"))
    # The holder keeps the lock for its whole health timeout: long enough for the
    # second run to start and ask for it on a loaded machine (Ansible alone takes seconds).
    slow = app.args(image="afb-app:nohealth", health={"path": "/health", "timeout": 25, "interval": 0.2})
    results = {}
    thread = threading.Thread(target=lambda: results.update(slow=run_module("app_container", slow)))
    thread.start()
    holder = _wait_for(lambda: _lock_holder(app), 60)
    assert holder and holder["pid"], "the first run never took the lock"
    blocked = run_module("app_container", app.args(image="afb-app:v2", lock_timeout=1))
    thread.join(120)
    assert blocked.get("failed") is True, blocked
    assert "another run is deploying this app" in blocked["msg"], blocked["msg"]
    assert "pid %s" % holder["pid"] in blocked["msg"], blocked["msg"]
    assert results["slow"].get("failed") is True and "health check" in results["slow"]["msg"]
    (container,) = app.containers()
    assert container.id == first["container"]["id"]
    assert app.get() == (200, "version v1\n")


def test_killed_run_next_run_converges(app, app_images, docker_client, tmp_path):
    first = run_module("app_container", app.args(image="afb-app:v1"))
    assert first["action"] == "created"
    slow = app.args(image="afb-app:nohealth", health={"path": "/health", "timeout": 90, "interval": 0.2})
    proc = start_module("app_container", slow, tmp_path)
    try:
        temp = app.name + "--next"
        started = _wait_for(lambda: [c for c in app.containers() if c.name == temp], 90)
        assert started, "the run never started its new container"
        time.sleep(1)  # it is now health-checking
    finally:
        kill_tree(proc)
    assert len(app.containers()) == 2  # killed mid-swap: a stray is left
    stale = _lock_holder(app)
    assert stale and stale["pid"]
    assert app.get() == (200, "version v1\n")

    res = run_module("app_container", app.args(image="afb-app:v2", lock_timeout=5))
    assert res.get("changed") is True and res["action"] == "replaced", res
    assert res["lock"]["stale_holder"]["pid"] == stale["pid"]
    (container,) = app.containers()
    assert container.id == res["container"]["id"] and container.name == app.name
    assert container.image.id == app_images["v2"]
    assert app.get() == (200, "version v2\n")
    again = run_module("app_container", app.args(image="afb-app:v2"))
    assert again.get("changed") is False, again


SECRET = "afb-S3cr3t-Value-9137"
SECRET2 = "afb-0ther-S3cret-4412"


def _sha(value):
    return hashlib.sha256(value.encode()).hexdigest()


def _everything_docker_keeps(container):
    """docker inspect, the engine's files of the container, and the environ of its processes."""
    texts = [json.dumps(container.attrs)]
    cdir = Path("/var/lib/docker/containers") / container.id
    for name in ("config.v2.json", "hostconfig.json"):
        if (cdir / name).exists():
            texts.append((cdir / name).read_text())
    for pid in container.top(ps_args="-eo pid")["Processes"] or []:
        try:
            texts.append(Path("/proc/%s/environ" % pid[0]).read_bytes().decode("utf-8", "replace"))
        except OSError:
            pass
    return "\n".join(texts)


def _secret_mount(container, key):
    (mount,) = [m for m in container.attrs["Mounts"] if m["Destination"] == "/run/secrets/" + key]
    return mount


def test_secret_as_file_not_in_inspect(app, docker_client):
    args = app.args(image="afb-app:v1", secret_env={"API_TOKEN": SECRET}, env={"PLAIN": "yes"})
    check = run_module("app_container", args, check=True, diff=True)
    assert check.get("changed") is True and check["action"] == "created", check
    assert app.containers() == [] and not app.secret_dir.exists()

    res = run_module("app_container", args)
    assert res.get("changed") is True and res["action"] == "created", res
    (container,) = app.containers()
    env = container.attrs["Config"]["Env"]
    assert "API_TOKEN_FILE=/run/secrets/API_TOKEN" in env and "PLAIN=yes" in env
    assert not any(e.startswith("API_TOKEN=") for e in env), env
    assert SECRET not in _everything_docker_keeps(container)
    mount = _secret_mount(container, "API_TOKEN")
    (release,) = app.releases()
    assert mount["Type"] == "bind" and mount["RW"] is False
    assert mount["Source"] == str(app.secret_dir / release / "API_TOKEN")
    assert res["container"]["secret_dir"] == str(app.secret_dir / release)
    # On the host: root-only directories, a 0400 file owned by the container's user (root here).
    for path, mode in ((app.secret_base, 0o700), (app.secret_dir, 0o700),
                       (app.secret_dir / release, 0o700), (Path(mount["Source"]), 0o400)):
        st = os.stat(path)
        assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (mode, 0, 0), path
    # The app reads it through the file.
    assert app.get("/cgi-bin/token") == (200, "token %s\n" % _sha(SECRET))
    code, out = container.exec_run(["/bin/busybox", "sh", "-c", 'cat "$API_TOKEN_FILE"'])
    assert (code, out.decode()) == (0, SECRET)

    again = run_module("app_container", args)
    assert again.get("changed") is False and again["action"] == "unchanged", again
    assert run_module("app_container", args, check=True).get("changed") is False
    assert app.releases() == [release]


@pytest.mark.parametrize("strategy", ["start-first", "stop-first"])
def test_changed_secret_swaps_and_old_files_go(app, docker_client, strategy):
    args = app.args(image="afb-app:v1", secret_env={"API_TOKEN": SECRET}, strategy=strategy)
    first = run_module("app_container", args)
    assert first["action"] == "created", first
    (old_release,) = app.releases()

    changed = dict(args, secret_env={"API_TOKEN": SECRET2})
    check = run_module("app_container", changed, check=True, diff=True)
    assert check.get("changed") is True and check["action"] == "replaced", check
    assert check["diff"]["after"]["secret_env"] == {"API_TOKEN": "******** (changed)"}, check["diff"]
    assert SECRET not in check.stdout + json.dumps(check) and SECRET2 not in check.stdout + json.dumps(check)
    assert app.releases() == [old_release]

    # The probe reads the token through the app while the swap runs: the old
    # container keeps its file until it is gone (start-first: every answer is
    # one of the two tokens).
    with Probe(app.proxy_port, path="/cgi-bin/token") as probe:
        probe.wait_ok(10)
        res = run_module("app_container", changed, diff=True)
    assert res.get("changed") is True and res["action"] == "replaced", res
    bodies = probe.bodies
    if strategy == "start-first":
        assert probe.failures == [], probe.failures[:5]
    else:
        # stop-first: a request cut by the stop of the old container can end as
        # a 200 with no body (busybox httpd sent the CGI's headers); a missing
        # file answers "no token file", a wrong one another token.
        bodies = bodies - {""}
    assert bodies <= {"token %s" % _sha(SECRET), "token %s" % _sha(SECRET2)}, probe.bodies
    (container,) = app.containers()
    assert container.id == res["container"]["id"] != first["container"]["id"]
    (new_release,) = app.releases()
    assert new_release != old_release  # the old files went with the old container
    assert _secret_mount(container, "API_TOKEN")["Source"] == str(app.secret_dir / new_release / "API_TOKEN")
    assert app.get("/cgi-bin/token") == (200, "token %s\n" % _sha(SECRET2))
    assert SECRET2 not in _everything_docker_keeps(container)
    again = run_module("app_container", changed)
    assert again.get("changed") is False, again


def test_secret_files_belong_to_the_container_user(app, docker_client):
    # The image runs as nobody (a name: looked up in the image's /etc/passwd).
    args = app.args(image="afb-app:nobody", secret_env={"API_TOKEN": SECRET}, cap_drop=["ALL"])
    res = run_module("app_container", args)
    assert res["action"] == "created", res
    (container,) = app.containers()
    source = Path(_secret_mount(container, "API_TOKEN")["Source"])
    st = os.stat(source)
    assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o400, 65534, 0)
    assert app.get("/cgi-bin/token") == (200, "token %s\n" % _sha(SECRET))
    # Another user of the container cannot read it.
    code, out = container.exec_run(["/bin/busybox", "cat", "/run/secrets/API_TOKEN"], user="1000")
    assert code != 0 and SECRET not in out.decode()

    # user given as a number: the files follow it (a new container, new files).
    as_app = dict(args, user="1000:1000")
    res = run_module("app_container", as_app)
    assert res["action"] == "replaced", res
    (container,) = app.containers()
    assert container.attrs["Config"]["User"] == "1000:1000"
    source = Path(_secret_mount(container, "API_TOKEN")["Source"])
    assert os.stat(source).st_uid == 1000 and len(app.releases()) == 1
    assert app.get("/cgi-bin/token") == (200, "token %s\n" % _sha(SECRET))
    assert run_module("app_container", as_app).get("changed") is False

    # secret_uid overrides the owner.
    res = run_module("app_container", dict(args, secret_uid=4242))
    assert res["action"] == "replaced", res
    (container,) = app.containers()
    assert os.stat(_secret_mount(container, "API_TOKEN")["Source"]).st_uid == 4242


def test_unknown_user_is_refused_and_nothing_stays(app, docker_client):
    first = run_module("app_container", app.args(image="afb-app:v1", secret_env={"API_TOKEN": SECRET}))
    assert first["action"] == "created", first
    (release,) = app.releases()
    res = run_module("app_container", app.args(image="afb-app:v1", secret_env={"API_TOKEN": SECRET2},
                                               user="ghost"))
    assert res.get("failed") is True, res
    assert res["msg"].startswith("app %s: user: " % app.name) and "'ghost'" in res["msg"], res["msg"]
    (container,) = app.containers()
    assert container.id == first["container"]["id"]
    assert app.releases() == [release]
    assert app.get("/cgi-bin/token") == (200, "token %s\n" % _sha(SECRET))


def test_secret_delivery_env_still_works(app, docker_client):
    args = app.args(image="afb-app:v1", secret_env={"API_TOKEN": SECRET}, secret_delivery="env")
    res = run_module("app_container", args)
    assert res["action"] == "created", res
    (container,) = app.containers()
    # What the docs say this choice exposes: the value in the container's config.
    assert "API_TOKEN=%s" % SECRET in container.attrs["Config"]["Env"]
    assert not any(m["Destination"].startswith("/run/secrets") for m in container.attrs["Mounts"])
    assert app.releases() == []
    assert run_module("app_container", args).get("changed") is False
    changed = run_module("app_container", dict(args, secret_env={"API_TOKEN": SECRET2}), diff=True)
    assert changed["action"] == "replaced", changed
    assert changed["diff"]["after"]["secret_env"] == {"API_TOKEN": "******** (changed)"}
    (container,) = app.containers()
    assert "API_TOKEN=%s" % SECRET2 in container.attrs["Config"]["Env"]

    # Back to files: swapped, no value in the config any more.
    to_file = run_module("app_container", dict(args, secret_env={"API_TOKEN": SECRET2}, secret_delivery="file"),
                         diff=True)
    assert to_file["action"] == "replaced", to_file
    assert to_file["diff"]["after"]["secret_delivery"] == "file"
    (container,) = app.containers()
    assert SECRET2 not in _everything_docker_keeps(container)
    assert len(app.releases()) == 1


def test_secrets_never_logged(app, docker_client, tmp_path):
    log = tmp_path / "ansible.log"
    env = {"ANSIBLE_LOG_PATH": str(log)}
    # An env file an earlier version left behind: removed.
    app.env_file.parent.mkdir(parents=True, exist_ok=True)
    app.env_file.write_text("API_TOKEN=%s\n" % SECRET)
    args = app.args(image="afb-app:v1", secret_env={"API_TOKEN": SECRET}, env={"PLAIN": "yes"})
    res = run_module("app_container", args, verbosity=3, diff=True, env=env)
    assert res["action"] == "created", res
    assert not app.env_file.exists()
    (release,) = app.releases()
    (container,) = app.containers()
    assert SECRET not in json.dumps(container.attrs)

    # A changed secret, and a new container that prints it and dies: the task fails.
    bad = app.args(image="afb-app:v1", secret_env={"API_TOKEN": SECRET2}, env={"PLAIN": "yes"},
                   command=["/bin/busybox", "sh", "-c", 'echo leaked $(cat "$API_TOKEN_FILE"); exit 3'],
                   health={"path": "/health", "timeout": 3, "interval": 0.2})
    failed = run_module("app_container", bad, verbosity=3, diff=True, env=env)
    assert failed.get("failed") is True and "exited with code 3" in failed["msg"], failed
    assert "leaked" in failed["msg"]
    assert "API_TOKEN" in failed.stdout  # the diff names the changed variable, not its value
    # The failed rollout removed its files; the serving container keeps its own.
    assert app.releases() == [release]
    assert (app.secret_dir / release / "API_TOKEN").read_text() == SECRET
    text = log.read_text()
    assert "Deploy" in text or "Run the module" in text
    for secret in (SECRET, SECRET2):
        for where, out in (("stdout", res.stdout + failed.stdout), ("stderr", res.stderr + failed.stderr),
                           ("log", text), ("result", json.dumps(res) + json.dumps(failed))):
            assert secret not in out, "secret found in %s" % where
    assert app.get() == (200, "version v1\n")


def test_state_absent(app, docker_client):
    run_module("app_container", app.args(image="afb-app:v1", secret_env={"K": "v"}))
    assert app.secret_dir.is_dir()
    absent = {"name": app.name, "state": "absent", "secret_env_file": str(app.env_file),
              "secret_dir": str(app.secret_base), "lock_dir": str(app.lock_dir)}
    check = run_module("app_container", absent, check=True)
    assert check.get("changed") is True and len(app.containers()) == 1 and app.secret_dir.is_dir()
    gone = run_module("app_container", absent)
    assert gone.get("changed") is True and gone["action"] == "removed", gone
    assert app.containers() == [] and not app.secret_dir.exists()
    assert app.secret_base.is_dir()  # other apps' secrets stay
    again = run_module("app_container", absent)
    assert again.get("changed") is False, again


def test_state_absent_points_the_upstream_at_the_placeholder(app, nginx, docker_client):
    first = run_module("app_container", app.args(image="afb-app:v1"))
    upstream = Path(first["upstream_file"])
    assert active_port(upstream, app.name) == first["container"]["host_port"]
    absent = dict(app.args(), state="absent")
    check = run_module("app_container", absent, check=True, diff=True)
    assert check.get("changed") is True, check
    assert check["diff"]["after"]["upstream_port"] == 9, check["diff"]
    assert "127.0.0.1:9;" not in upstream.read_text()
    gone = run_module("app_container", absent)
    assert gone.get("changed") is True and gone["action"] == "removed", gone
    # The proxy role's placeholder, byte for byte (roles/proxy/tasks/configure.yml).
    assert upstream.read_text() == (
        "# Placeholder written by appfleet.docker.proxy: app %s is not deployed yet.\n"
        "# appfleet.docker.app_container replaces it with the serving container's port.\n"
        "upstream appfleet_%s { server 127.0.0.1:9; }\n"
        "upstream appfleet_%s.b { server 127.0.0.1:9; }\n" % (app.name, app.name, app.name))
    assert not (upstream.parent / ("%s.slot-b" % app.name)).exists()
    nginx.run("-t", "-q")
    assert app.containers() == []
    assert app.get()[0] == 502
    again = run_module("app_container", absent)
    assert again.get("changed") is False, again


def test_check_mode_before_the_image_is_built(app, docker_client):
    first = run_module("app_container", app.args(image="afb-app:v1"))
    args = app.args(image="afb-app:not-built-yet")
    check = run_module("app_container", args, check=True, diff=True)
    assert check.get("failed") is not True, check
    assert check["changed"] is True and check["action"] == "replaced", check
    assert "afb-app:not-built-yet is not on this host yet" in check["msg"], check
    assert check["diff"]["after"]["image"] == "afb-app:not-built-yet (not built yet)"
    # Not in check mode it is an error, and nothing changed.
    real = run_module("app_container", args)
    assert real.get("failed") is True and "not found on this host" in real["msg"], real
    (container,) = app.containers()
    assert container.id == first["container"]["id"]
    assert app.get() == (200, "version v1\n")


def test_hardening_options_reach_the_container(app, docker_client):
    # The defaults: no-new-privileges and a pids limit.
    plain = app.args(image="afb-app:v1")
    assert run_module("app_container", plain)["action"] == "created"
    (container,) = app.containers()
    host = container.attrs["HostConfig"]
    assert host["SecurityOpt"] == ["no-new-privileges:true"] and host["PidsLimit"] == 1024
    assert host["ReadonlyRootfs"] is False and not host["CapDrop"]
    # No AppArmor option is set: Docker gives docker-default where the engine has AppArmor (CIS 5.2).
    apparmor = "name=apparmor" in docker_client.info().get("SecurityOptions", [])
    assert container.attrs["AppArmorProfile"] == ("docker-default" if apparmor else "")

    args = app.args(image="afb-app:nobody", read_only=True, tmpfs=["/tmp:rw,noexec,nosuid,size=16m"],
                    cap_drop=["all"], cap_add=["cap_net_bind_service"], user="65534:65534", pids_limit=64,
                    security_opts=["no-new-privileges:true", "apparmor=unconfined"])
    check = run_module("app_container", args, check=True, diff=True)
    assert check.get("changed") is True and check["action"] == "replaced", check
    assert check["diff"]["after"]["read_only"] is True and check["diff"]["after"]["cap_drop"] == ["ALL"]
    res = run_module("app_container", args)
    assert res.get("changed") is True and res["action"] == "replaced", res
    (container,) = app.containers()
    attrs = container.attrs
    host = attrs["HostConfig"]
    assert host["ReadonlyRootfs"] is True
    assert host["Tmpfs"] == {"/tmp": "rw,noexec,nosuid,size=16m"}
    assert host["CapDrop"] == ["ALL"] and host["CapAdd"] == ["NET_BIND_SERVICE"]
    assert sorted(host["SecurityOpt"]) == ["apparmor=unconfined", "no-new-privileges:true"]
    assert host["PidsLimit"] == 64 and attrs["Config"]["User"] == "65534:65534"
    assert app.get() == (200, "version nobody\n")
    # Really read-only, with a writable /tmp; really that user.
    assert container.exec_run(["/bin/busybox", "touch", "/www/x"]).exit_code != 0
    assert container.exec_run(["/bin/busybox", "touch", "/tmp/x"]).exit_code == 0
    assert container.exec_run(["/bin/busybox", "id", "-u"]).output.decode().strip() == "65534"

    again = run_module("app_container", args)
    assert again.get("changed") is False, again
    # Each option is part of the compared config: a change swaps the container.
    for over in ({"pids_limit": 65}, {"cap_add": []}, {"read_only": False}):
        changed = dict(args, **over)
        check = run_module("app_container", changed, check=True, diff=True)
        assert check.get("changed") is True and check["action"] == "replaced", (over, check)
        res = run_module("app_container", changed)
        assert res["action"] == "replaced", (over, res)
        assert app.containers()[0].id == res["container"]["id"]
        args = changed
    assert app.containers()[0].attrs["HostConfig"]["PidsLimit"] == 65


def _bridge_gateway(docker_client):
    config = docker_client.networks.get("bridge").attrs["IPAM"]["Config"] or [{}]
    return config[0].get("Gateway")


def _connects(host, port):
    try:
        socket.create_connection((host, port), timeout=2).close()
        return True
    except OSError:
        return False


def test_port_without_address_binds_loopback_only(app, docker_client):
    fixed = free_port()
    args = dict(app.args(image="afb-app:v1", strategy="stop-first",
                         published_ports=["%d:8080" % fixed, "[::1]::8080", "8080/udp"]),
                proxy={"enabled": False})
    check = run_module("app_container", args, check=True)
    assert check.get("changed") is True and check["action"] == "created", check
    res = run_module("app_container", args)
    assert res["action"] == "created", res
    (container,) = app.containers()
    bindings = container.attrs["HostConfig"]["PortBindings"]
    assert {"HostIp": "127.0.0.1", "HostPort": str(fixed)} in bindings["8080/tcp"]
    assert {"HostIp": "::1", "HostPort": ""} in bindings["8080/tcp"]
    assert bindings["8080/udp"] == [{"HostIp": "127.0.0.1", "HostPort": ""}]
    published = container.attrs["NetworkSettings"]["Ports"]
    addresses = set(b["HostIp"] for values in published.values() for b in values or [])
    assert addresses <= {"127.0.0.1", "::1"}, published
    assert run_module("app_container", args).get("changed") is False
    assert _connects("127.0.0.1", fixed)
    gateway = _bridge_gateway(docker_client)
    if gateway:  # an address of this host that is not loopback: nothing answers there
        assert not _connects(gateway, fixed)

    # Every address only when the app says so.
    wide = dict(args, published_ports=["0.0.0.0:%d:8080" % fixed])
    res = run_module("app_container", wide, diff=True)
    assert res["action"] == "replaced", res
    assert res["diff"]["after"]["published_ports"] == ["0.0.0.0:%d:8080/tcp" % fixed]
    (container,) = app.containers()
    bindings = container.attrs["HostConfig"]["PortBindings"]["8080/tcp"]
    assert {"HostIp": "0.0.0.0", "HostPort": str(fixed)} in bindings
    # The app port itself stays on loopback (the proxy and the health check use it).
    assert sorted(b["HostIp"] for b in bindings) == ["0.0.0.0", "127.0.0.1"], bindings


BAD_INPUTS = [
    ({"name": "afb bad name!"}, "name:"),
    ({"port": 70000}, "port:"),
    ({"restart_policy": "sometimes"}, "restart_policy"),
    ({"port": None}, "health.path:"),
    ({"image": "afb-app:does-not-exist"}, "image:"),
    ({"image": None}, "image:"),
    ({"published_ports": ["127.0.0.1:18080:8080"]}, "published_ports:"),
    ({"env": {"A": "1"}, "secret_env": {"A": "2"}}, "secret_env:"),
    ({"secret_env": {"../x": SECRET}}, "secret_env:"),
    ({"secret_env": {"A/B": SECRET}}, "secret_env:"),
    ({"secret_env": {"TOKEN\n": SECRET}}, "secret_env:"),
    ({"secret_env": {"TOKEN": SECRET}, "env": {"TOKEN_FILE": "/x"}}, "secret_env:"),
    ({"secret_delivery": "vault"}, "secret_delivery"),
    ({"tmpfs": ["tmp:size=1m"]}, "tmpfs:"),
    ({"tmpfs": ["/tmp/../etc"]}, "tmpfs:"),
    ({"cap_drop": ["NET_FOO"]}, "cap_drop:"),
    ({"cap_add": ["SYS_EVERYTHING"]}, "cap_add:"),
    ({"user": "root;id"}, "user:"),
    ({"pids_limit": 0}, "pids_limit:"),
    ({"memory": "1gb"}, "memory:"),
    ({"cpu_shares": 1}, "cpu_shares:"),
    ({"security_opts": ["privileged=true"]}, "security_opts:"),
    ({"published_ports": ["::9000:9000"], "strategy": "stop-first"}, "published_ports:"),
    ({"published_ports": ["[::1]9000:9000"], "strategy": "stop-first"}, "published_ports:"),
]
BAD_INPUT_APP = "afb-badinput"


@pytest.fixture(scope="module")
def bad_input_results(state_dir):
    """Every BAD_INPUTS case run once, in one playbook (one Ansible start, not one per case)."""
    args_list = []
    for over, _option in BAD_INPUTS:
        args = {"name": BAD_INPUT_APP, "image": "afb-app:v1", "port": 8080, "health": {"path": "/health"},
                "lock_dir": str(state_dir / "locks"), "proxy": {"enabled": False},
                "secret_dir": str(state_dir / "secrets-badinput")}
        args.update(over)
        args_list.append({k: v for k, v in args.items() if v is not None})
    return run_modules("app_container", args_list)


@pytest.mark.parametrize("over,option", BAD_INPUTS)
def test_bad_input_fails_before_any_change(docker_client, over, option, state_dir, bad_input_results):
    name = BAD_INPUT_APP
    secrets = state_dir / "secrets-badinput"
    res = bad_input_results[BAD_INPUTS.index((over, option))]
    assert res.get("failed") is True, res
    assert option in res["msg"], res["msg"]
    if "name" not in over and "must be one of" not in res["msg"]:  # not refused by Ansible's own check
        assert res["msg"].startswith("app %s: " % name), res["msg"]
    assert app_containers(docker_client, name) == []
    assert not secrets.exists()


def test_sample_web_app_reads_its_token_from_the_file(tmp_path):
    """examples/apps/web reads WEB_API_TOKEN through WEB_API_TOKEN_FILE (the plain variable is a fallback)."""
    token = tmp_path / "WEB_API_TOKEN"
    token.write_text(SECRET)
    port = free_port()
    env = dict(os.environ, PORT=str(port), WEB_API_TOKEN_FILE=str(token), WEB_API_TOKEN="not-this-one")
    proc = subprocess.Popen([sys.executable, str(REPO / "examples/apps/web/server.py")], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def get(headers):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            try:
                conn.request("GET", "/private", headers=headers)
                resp = conn.getresponse()
                return resp.status, resp.read().decode()
            finally:
                conn.close()

        assert _wait_for(lambda: _connects("127.0.0.1", port), 30)
        assert get({"Authorization": "Bearer " + SECRET})[0] == 200
        assert get({"Authorization": "Bearer not-this-one"})[0] == 401
        status, body = get({})
        assert status == 401 and SECRET not in body
    finally:
        proc.terminate()
        proc.wait(30)


def test_full_config_reaches_the_container(app, docker_client):
    net = docker_client.networks.create(app.name + "-net")
    try:
        args = app.args(
            image="afb-app:v1", command=["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"],
            networks=[net.name], volumes=[app.name + "-data:/data"], memory="64m", cpu_shares=512, cpus=0.5,
            restart_policy="on-failure", labels={"team": "afb"}, log_driver="json-file",
            log_options={"max-size": "1m", "max-file": "2"}, stop_timeout=3,
            healthcheck={"test": ["/bin/busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/health"],
                         "interval": 30, "retries": 3})
        res = run_module("app_container", args, diff=True)
        assert res["action"] == "created", res
        # In service on the module's own probe of health.path (two answers in a row),
        # before Docker's first check (30 s after the start) has run.
        assert res["container"]["health"] == "starting"
        (container,) = app.containers()
        attrs = container.attrs
        host = attrs["HostConfig"]
        assert net.name in attrs["NetworkSettings"]["Networks"]
        assert any(m["Name"] == app.name + "-data" and m["Destination"] == "/data" for m in attrs["Mounts"])
        assert host["Memory"] == host["MemorySwap"] == 64 * 1024 * 1024  # no swap beyond the limit
        assert host["CpuShares"] == 512 and host["NanoCpus"] == 500000000
        assert host["RestartPolicy"]["Name"] == "on-failure"
        assert host["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "1m", "max-file": "2"}}
        assert attrs["Config"]["StopTimeout"] == 3 and container.labels["team"] == "afb"
        assert attrs["Config"]["Healthcheck"]["Test"][0] == "CMD"
        assert app.get() == (200, "version v1\n")
        assert run_module("app_container", args).get("changed") is False
        changed = run_module("app_container", dict(args, memory="96m"), check=True, diff=True)
        assert changed.get("changed") is True
        assert changed["diff"] == {"before": {"memory": "64m", "memory_swap": "64m"},
                                   "after": {"memory": "96m", "memory_swap": "96m"}}
        assert app.containers()[0].id == container.id
    finally:
        for container in app.containers():
            container.remove(force=True)
        net.remove()
        for volume in docker_client.volumes.list(filters={"name": app.name + "-data"}):
            volume.remove(force=True)


def test_nginx_refusing_the_switch_keeps_old(app, nginx, docker_client):
    """A switch that rewrites the upstream (here: from the one-server format of earlier versions)."""
    first = run_module("app_container", app.args(image="afb-app:v1"))
    upstream = Path(first["upstream_file"])
    upstream.write_text("upstream appfleet_%s { server 127.0.0.1:%d; }\n"
                        % (app.name, first["container"]["host_port"]))
    nginx.run("-s", "reload")
    before = upstream.read_text()
    args = app.args(image="afb-app:v2")
    args["proxy"] = dict(args["proxy"], test_command=["/bin/sh", "-c", "echo afb-config-broken >&2; exit 1"])
    res = run_module("app_container", args)
    assert res.get("failed") is True, res
    assert "nginx did not accept the switch to the new container" in res["msg"], res["msg"]
    assert "afb-config-broken" in res["msg"] and "the previous container is still serving" in res["msg"]
    assert upstream.read_text() == before
    (container,) = app.containers()
    assert container.id == first["container"]["id"]
    assert app.get() == (200, "version v1\n")
    # With nginx accepting it: the file is rewritten in the two-slot format, once.
    res = run_module("app_container", app.args(image="afb-app:v2"))
    assert res["action"] == "replaced" and res["proxy_reloads"] == 1, res
    assert "appfleet_%s.b " % app.name in upstream.read_text()
    assert app.get() == (200, "version v2\n")


def _run_apps_role(app, role_vars, *args):
    play = [{
        "name": "Apps", "hosts": "localhost", "connection": "local", "gather_facts": False,
        "vars": dict(role_vars, ansible_python_interpreter=sys.executable),
        "roles": [{"role": "appfleet.docker.apps"}],
    }]
    return run_playbook(json.dumps(play, indent=1) + "\n", *args, inventory="localhost,", check=False)


def test_apps_role_passes_the_secret_and_hardening_options(app, app_images, docker_client, tmp_path):
    """The apps role's options reach app_container: a rollback through the role (no build, no pull)."""
    assert run_module("app_container", app.args(image="afb-app:v1"))["action"] == "created"
    assert run_module("app_container", app.args(image="afb-app:v2"))["action"] == "replaced"
    entry = {"name": app.name, "image": "afb-app:v2", "port": 8080,
             "health": {"path": "/health", "timeout": 30},
             "secret_env": {"API_TOKEN": SECRET}, "user": "nobody", "read_only": True,
             "tmpfs": ["/tmp:rw,noexec,nosuid,size=8m"], "cap_drop": ["ALL"], "pids_limit": 99}
    role_vars = {"appfleet_apps": [entry], "apps": app.name, "apps_rollback": True,
                 "apps_secret_dir": str(app.secret_base), "apps_default_drain_seconds": 1,
                 "apps_default_cpu_shares": None,
                 "apps_src_dir": str(tmp_path / "src"), "apps_key_dir": str(tmp_path / "keys")}
    lock = Path("/run/appfleet/locks/%s.lock" % app.name)
    try:
        proc = _run_apps_role(app, role_vars, "-v")
        assert proc.returncode == 0, proc.stdout[-4000:]
        assert SECRET not in proc.stdout + proc.stderr
        (container,) = app.containers()
        assert container.image.id == app_images["v1"]
        host = container.attrs["HostConfig"]
        assert host["ReadonlyRootfs"] is True and host["CapDrop"] == ["ALL"] and host["PidsLimit"] == 99
        assert host["Tmpfs"] == {"/tmp": "rw,noexec,nosuid,size=8m"}
        assert host["SecurityOpt"] == ["no-new-privileges:true"]  # apps_default_security_opts
        # apps_default_memory (swap alike); apps_default_cpu_shares: null sets no weight.
        assert host["Memory"] == host["MemorySwap"] == 1024 ** 3 and host["CpuShares"] == 0
        assert container.attrs["Config"]["User"] == "nobody"
        assert SECRET not in _everything_docker_keeps(container)
        source = Path(_secret_mount(container, "API_TOKEN")["Source"])
        assert source.parent.parent == app.secret_dir and os.stat(source).st_uid == 65534
        code, out = container.exec_run(["/bin/busybox", "sh", "-c", 'cat "$API_TOKEN_FILE"'])
        assert (code, out.decode()) == (0, SECRET)

        # Bad input through the role: refused naming host, app and option; nothing changed.
        bad = dict(entry, cap_drop=["NET_FOO"])
        proc = _run_apps_role(app, dict(role_vars, appfleet_apps=[bad]))
        out = " ".join(proc.stdout.split())
        assert proc.returncode != 0
        assert "host localhost, app %s" % app.name in out and "cap_drop: 'NET_FOO'" in out, out[-3000:]
        (after,) = app.containers()
        assert after.id == container.id
    finally:
        if lock.exists():
            lock.unlink()


def test_paused_app_is_unpaused_and_reported(app, docker_client):
    """Docker counts a paused container as running: the module unpauses it (and says so), once."""
    args = app.args(image="afb-app:v1")
    first = run_module("app_container", args)
    assert first["changed"] is True, first
    (container,) = app.containers()
    container.pause()
    container.reload()
    assert container.status == "paused"

    check = run_module("app_container", args, check=True)
    assert check["changed"] is True and check["action"] == "unpaused", check
    assert check["msg"] == "app %s: container %s is paused; a run without check mode unpauses it" % (
        app.name, app.name), check
    container.reload()
    assert container.status == "paused"

    fixed = run_module("app_container", args)
    assert fixed["changed"] is True and fixed["action"] == "unpaused", fixed
    assert fixed["msg"] == "app %s: container %s was paused; unpaused it" % (app.name, app.name), fixed
    assert any("was paused" in w for w in fixed.get("warnings", [])), fixed
    (after,) = app.containers()
    assert after.id == container.id and after.status == "running"
    assert app.get() == (200, "version v1\n")

    again = run_module("app_container", args)
    assert again["changed"] is False and again["action"] == "unchanged", again


def test_paused_app_with_a_new_image_is_replaced(app, app_images, docker_client):
    """A paused container that differs is unpaused for the rollout, then replaced."""
    run_module("app_container", app.args(image="afb-app:v1"))
    (old,) = app.containers()
    old.pause()
    res = run_module("app_container", app.args(image="afb-app:v2"))
    assert res["changed"] is True and res["action"] == "replaced", res
    assert "was paused; unpaused it for the rollout and replaced it" in res["msg"], res
    (new,) = app.containers()
    assert new.id != old.id and new.status == "running" and new.image.id == app_images["v2"]
    assert app.get() == (200, "version v2\n")


def test_stopped_app_is_started_and_reported(app, docker_client):
    """A stopped (exited) app container that matches is started again, and the run says what it found."""
    args = app.args(image="afb-app:v1")
    run_module("app_container", args)
    (container,) = app.containers()
    container.stop(timeout=1)
    res = run_module("app_container", args)
    assert res["changed"] is True and res["action"] == "started", res
    assert res["msg"].startswith("app %s: container %s was exited (exit code " % (app.name, app.name)), res
    assert res["msg"].endswith("; started it again"), res
    (after,) = app.containers()
    assert after.id == container.id and after.status == "running"
    assert app.get() == (200, "version v1\n")
    assert run_module("app_container", args)["changed"] is False
