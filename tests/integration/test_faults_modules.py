"""Fault tests: paths that used to end in a traceback end in a message, the old version serving.

Everything here is named with the ``afe-`` prefix (apps, containers, images). The
app images, the private nginx and the state directory come from
app_container/fixtures.py (read-only use of the afb-app images).

The engine "goes away" through a unix-socket relay to /var/run/docker.sock that
the module reaches as its docker_host: the test cuts it (every connection closed,
the socket removed) at a chosen moment and brings it back a few seconds later,
as an engine restart does.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import run_module  # noqa: E402  (tests/conftest.py helpers)
pytest.register_assert_rewrite("app_container.fixtures")
from app_container.fixtures import App  # noqa: E402

pytest_plugins = ["app_container.fixtures"]

ENGINE_SOCKET = "/var/run/docker.sock"


class EngineRelay:
    """A unix socket that forwards to the Docker engine until cut()."""

    def __init__(self, target=ENGINE_SOCKET):
        self.target = target
        self.dir = tempfile.mkdtemp(prefix="afe-relay-")
        self.path = os.path.join(self.dir, "docker.sock")
        self.lock = threading.Lock()
        self.conns = []
        self.listener = None
        self.requests = 0
        self.open()

    @property
    def docker_host(self):
        return "unix://" + self.path

    def open(self):
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.path)
        listener.listen(64)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener):
        while True:
            try:
                client, _addr = listener.accept()
            except OSError:
                return  # cut
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.target)
            with self.lock:
                self.conns += [client, upstream]
                self.requests += 1
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        """The engine is gone: no new connection, every open one closed."""
        self.listener.close()
        os.unlink(self.path)
        with self.lock:
            conns, self.conns = self.conns, []
        for sock in conns:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def close(self):
        if os.path.exists(self.path):
            self.cut()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def fault_app(request, nginx, state_dir, app_images, docker_client):
    short = request.node.name.replace("test_", "")[:20].replace("[", "-").replace("]", "").replace("_", "-")
    app = App("afe-%s-%d" % (short.strip("-"), os.getpid()), nginx, state_dir, docker_client)
    yield app
    for container in app.containers():
        container.remove(force=True)
    shutil.rmtree(app.secret_dir, ignore_errors=True)


@pytest.fixture
def relay():
    r = EngineRelay()
    yield r
    r.close()


def _no_traceback(res):
    # ansible-core adds an ``exception`` key to every failure ("(traceback unavailable)" unless
    # tracebacks are asked for): what must not be there is a Python traceback.
    text = "%s\n%s\n%s\n%s" % (res.get("msg"), res.get("exception", ""), res.stdout, res.stderr)
    assert "Traceback" not in text and "most recent call last" not in text, text[-3000:]
    head = res.get("msg", "").split(". Last log lines:")[0].split(". Last build log lines:")[0]
    assert "\n" not in head, res["msg"]


def _serving(app, first, body="version v1\n"):
    (container,) = app.containers()
    assert container.id == first["container"]["id"]
    assert container.status == "running"
    assert app.get() == (200, body)


def _wait_for(predicate, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def _next_running(client, name):
    found = client.containers.list(filters={"name": "^/%s--next$" % name})
    return bool(found) and found[0].status == "running"


def _run_cutting_at_next(args, client, name, relay, back_after=None):
    """Run app_container in a thread; once its --next container runs, cut the engine
    relay (and open it again after ``back_after`` seconds, as an engine restart). The result."""
    result = {}
    runner = threading.Thread(target=lambda: result.update(res=run_module("app_container", args)))
    runner.start()
    try:
        assert _wait_for(lambda: _next_running(client, name), 60), "no --next container"
        relay.cut()
        if back_after is not None:
            time.sleep(back_after)  # the engine "restarts"
            relay.open()
    finally:
        runner.join(180)
    return result["res"]


@pytest.mark.parametrize("strategy", ["start-first", "stop-first"])
def test_engine_gone_during_health_wait(fault_app, relay, docker_client, strategy):
    first = run_module("app_container", fault_app.args(image="afb-app:v1", strategy=strategy))
    assert first["action"] == "created", first
    args = fault_app.args(image="afb-app:nohealth", strategy=strategy, docker_host=relay.docker_host)
    args["health"] = {"path": "/health", "timeout": 30, "interval": 0.2}
    res = _run_cutting_at_next(args, docker_client, fault_app.name, relay, back_after=3)
    assert res.get("failed") is True, res
    _no_traceback(res)
    msg = res["msg"]
    assert msg.startswith("app %s: waiting for the new container to become healthy failed: the docker engine "
                          "did not answer (" % fault_app.name), msg
    if strategy == "start-first":
        assert "the previous container is still serving" in msg, msg
    else:
        assert "the previous container was started again" in msg and "not healthy" not in msg, msg
    # The cleanup reached the engine again: the --next container is gone, the old one serves.
    _serving(fault_app, first)


def test_engine_gone_for_good_message_and_old_serving(fault_app, relay, docker_client):
    first = run_module("app_container", fault_app.args(image="afb-app:v1"))
    args = fault_app.args(image="afb-app:nohealth", docker_host=relay.docker_host)
    args["health"] = {"path": "/health", "timeout": 60, "interval": 0.2}
    res = _run_cutting_at_next(args, docker_client, fault_app.name, relay)
    assert res.get("failed") is True, res
    _no_traceback(res)
    msg = res["msg"]
    assert msg.startswith("app %s: waiting for the new container to become healthy failed: the docker engine "
                          "did not answer (" % fault_app.name), msg
    assert "the previous container is still serving" in msg and "the next run removes it" in msg, msg
    assert fault_app.get() == (200, "version v1\n")
    # The next run, with the engine back, converges: the stray --next goes, v1 keeps serving.
    again = run_module("app_container", fault_app.args(image="afb-app:v1"))
    assert again.get("failed") is not True, again
    assert again["action"] == "reconciled", again
    _serving(fault_app, first)


def test_engine_gone_before_the_run(fault_app, relay):
    first = run_module("app_container", fault_app.args(image="afb-app:v1"))
    relay.cut()
    res = run_module("app_container", fault_app.args(image="afb-app:v2", docker_host=relay.docker_host))
    assert res.get("failed") is True, res
    _no_traceback(res)
    assert res["msg"].startswith("app %s: cannot reach the docker engine at %s" % (fault_app.name, relay.docker_host))
    _serving(fault_app, first)


def test_lock_dir_that_is_a_file(fault_app, tmp_path):
    first = run_module("app_container", fault_app.args(image="afb-app:v1"))
    blocker = tmp_path / "locks"
    blocker.write_text("a file where the lock directory should be\n")
    res = run_module("app_container", fault_app.args(image="afb-app:v2", lock_dir=str(blocker)))
    assert res.get("failed") is True, res
    _no_traceback(res)
    assert res["msg"].startswith("app %s: taking the lock in %s failed: File exists" % (fault_app.name, blocker)), \
        res["msg"]
    _serving(fault_app, first)


def test_secret_dir_that_is_a_file(fault_app, tmp_path):
    first = run_module("app_container", fault_app.args(image="afb-app:v1"))
    blocker = tmp_path / "secrets"
    blocker.write_text("a file where the secret directory should be\n")
    res = run_module("app_container", fault_app.args(image="afb-app:v2", secret_env={"API_TOKEN": "xq7-token-value"},
                                                     secret_dir=str(blocker)))
    assert res.get("failed") is True, res
    _no_traceback(res)
    assert res["msg"].startswith("app %s: could not write the secret files under %s" % (fault_app.name, blocker)), \
        res["msg"]
    assert "xq7-token-value" not in res.stdout + res.stderr + str(res)
    _serving(fault_app, first)


def _git(cwd, *args):
    subprocess.run(["git", "-c", "user.name=afe", "-c", "user.email=afe@example.invalid", *args], cwd=cwd,
                   check=True, capture_output=True)


@pytest.mark.parametrize("damage", ["head", "objects"])
def test_broken_git_dir_in_build_context(fault_app, docker_client, tmp_path, damage):
    first = run_module("app_container", fault_app.args(image="afb-app:v1"))
    ctx = tmp_path / "src"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM afb-busybox:1\nCOPY index.html /www/index.html\n")
    (ctx / "index.html").write_text("afe\n")
    _git(ctx, "init", "-q")
    _git(ctx, "add", "-A")
    _git(ctx, "commit", "-qm", "one")
    if damage == "head":
        (ctx / ".git" / "HEAD").write_text("garbage\n")
    else:
        for obj in (ctx / ".git" / "objects").rglob("*"):
            if obj.is_file():
                obj.chmod(0o644)
                obj.write_bytes(b"not a git object")
    repo = "afe-test/%s" % fault_app.name
    args = dict(name=repo, app=fault_app.name, context=str(ctx), builder="api")
    try:
        res = run_module("image_build", args)
        _no_traceback(res)
        if res.get("failed"):
            assert res["msg"].startswith("app %s: " % fault_app.name), res["msg"]
        else:
            # git cannot read the work tree: the context counts by its content, every time alike.
            assert res["image"]["git_commit"] is None, res
            again = run_module("image_build", args)
            assert again.get("changed") is False and again["image"]["id"] == res["image"]["id"], again
    finally:
        for image in docker_client.images.list(name=repo):
            docker_client.images.remove(image.id, force=True)
    _serving(fault_app, first)


@pytest.mark.parametrize("builder", ["api", "buildkit"])
def test_build_timeout_is_a_total_limit(fault_app, docker_client, tmp_path, builder):
    """A RUN that prints nothing for longer than build_timeout: stopped, a message, nothing tagged."""
    if builder == "buildkit" and not shutil.which("docker"):
        pytest.fail("no docker CLI for the BuildKit builder: make setup installs docker.io")
    first = run_module("app_container", fault_app.args(image="afb-app:v1"))
    ctx = tmp_path / "slow"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text('FROM afb-busybox:1\nRUN ["/bin/busybox", "sleep", "30"]\n')
    repo = "afe-test/%s" % fault_app.name
    args = dict(name=repo, app=fault_app.name, context=str(ctx), builder=builder, build_timeout=4,
                also_tag=["latest"])
    started = time.time()
    try:
        res = run_module("image_build", args)
        took = time.time() - started
        assert res.get("failed") is True, res
        _no_traceback(res)
        assert res["msg"].startswith("app %s: the build took longer than build_timeout (4 s)"
                                     % fault_app.name), res["msg"]
        assert "nothing was tagged" in res["msg"]
        assert took < 25, took  # the 30 s RUN was not waited for
        assert docker_client.images.list(name=repo) == []
    finally:
        for image in docker_client.images.list(name=repo):
            docker_client.images.remove(image.id, force=True)
    _serving(fault_app, first)


# The release before the schema-v2 config hash (its labels carry a bare sha256).
V1_RELEASE = "1335f36"


@pytest.fixture
def v1_collection(tmp_path):
    """The collection as released at V1_RELEASE, from git, as its own collections path."""
    repo = Path(__file__).resolve().parents[2]
    root = tmp_path / "v1"
    dest = root / "ansible_collections" / "appfleet" / "docker"
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(repo), "archive", V1_RELEASE, "plugins", "meta", "galaxy.yml"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True, capture_output=True)
    return root


def test_upgrade_from_v1_labels_swaps_nothing(fault_app, docker_client, v1_collection):
    args = fault_app.args(image="afb-app:v1", env={"LOG_LEVEL": "info"}, secret_env={"API_TOKEN": "xq7-value"},
                          log_options={"max-size": "10m", "max-file": "3"})
    # The release log (release_dir) came after V1_RELEASE: that module does not know the option.
    v1_args = {key: value for key, value in args.items() if key != "release_dir"}
    old = run_module("app_container", v1_args, env={"ANSIBLE_COLLECTIONS_PATH": str(v1_collection)})
    assert old["action"] == "created", old
    (container,) = fault_app.containers()
    label = container.labels["io.appfleet.config-hash"]
    assert len(label) == 64 and ":" not in label, label  # the v1 format
    # This release: the same config is unchanged (check mode and for real), nothing swapped.
    check = run_module("app_container", args, check=True, diff=True)
    assert check.get("changed") is False, check
    new = run_module("app_container", args)
    assert new.get("changed") is False and new["action"] == "unchanged", new
    (same,) = fault_app.containers()
    assert same.id == container.id and same.attrs["State"]["StartedAt"] == container.attrs["State"]["StartedAt"]
    assert fault_app.get() == (200, "version v1\n")
    # A real change still swaps, and the new container carries a v2 label.
    changed = run_module("app_container", dict(args, env={"LOG_LEVEL": "debug"}))
    assert changed["action"] == "replaced", changed
    (swapped,) = fault_app.containers()
    assert swapped.labels["io.appfleet.config-hash"].startswith("v2:")
