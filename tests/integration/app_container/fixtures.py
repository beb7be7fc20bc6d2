"""Fixtures and helpers for the app_container integration tests.

Imported by tests/integration/test_app_container*.py. Everything created here is
named with the ``afb-`` prefix: images afb-busybox / afb-app, containers of apps
afb-*, a private nginx under a temp dir.
"""
# pytest fixtures take each other by name: pylint: disable=redefined-outer-name

from __future__ import annotations

import http.client
import io
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import REPO, machine_lock, process_argvs

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
BUSYBOX = shutil.which("busybox") or "/bin/busybox"
BASE_IMAGE = "afb-busybox:1"
APP_REPO = "afb-app"
LABEL_APP = "io.appfleet.app"
# In the name of an old container while it drains (module_utils/_container_spec.py, draining_name).
DRAINING = "--draining-"
# In a drain remover's command line (module_utils/_drain.py, MARKER).
DRAIN_MARKER = "appfleet-drain"

# The sample app "web" (examples/apps/web: /slow, /ws) on the lab's Debian base image.
WEB_DIR = REPO / "examples" / "apps" / "web"
WEB_BASE_IMAGE = "appfleet-lab/debian:bookworm"
WEB_REPO = "afb-web"

HTTPD = '["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]'
# Users of the test images: a name the module must look up in the image's /etc/passwd.
PASSWD = (b"root:x:0:0:root:/root:/bin/sh\n"
          b"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
          b"app:x:1000:1000:app:/nonexistent:/bin/false\n")
# /cgi-bin/token: what the app reads through API_TOKEN_FILE, as a sha256 (never the value).
TOKEN_CGI = (b'#!/bin/busybox sh\n'
             b'echo "Content-Type: text/plain"\n'
             b'echo\n'
             b'if [ -r "$API_TOKEN_FILE" ]; then\n'
             b'  echo "token $(/bin/busybox sha256sum < "$API_TOKEN_FILE" | /bin/busybox cut -c1-64)"\n'
             b'else\n'
             b'  echo "no token file"\n'
             b'fi\n')
VARIANTS = {
    # tag: (index body, has /health, CMD, extra Dockerfile lines)
    "v1": ("version v1", True, HTTPD, ""),
    "nobody": ("version nobody", True, HTTPD, "USER nobody\n"),
    "v2": ("version v2", True, HTTPD, ""),
    "v3": ("version v3", True, HTTPD, ""),
    "nohealth": ("version nohealth", False, HTTPD, ""),
    "crash": ("version crash", True, '["/bin/busybox", "false"]', ""),
    "dockerhealth": ("version dockerhealth", True, HTTPD,
                     'HEALTHCHECK --interval=1s --timeout=2s --retries=2 '
                     'CMD ["/bin/busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/health"]\n'),
}


def free_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def _tar_context(files):
    """A build context (tar bytes) from {path: (bytes, mode)}."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, (data, mode) in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = mode
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def _build(client, tag, files):
    image, _logs = client.images.build(fileobj=_tar_context(files), custom_context=True, tag=tag,
                                       rm=True, forcerm=True)
    return image.id


@pytest.fixture(scope="session")
def app_images(docker_client):
    """Build (or reuse) the tiny test images; return {variant: image id}."""
    import docker.errors

    # Each xdist worker asks for them: one builds, the others reuse its build cache (same ids).
    with machine_lock("app-images"):
        try:
            docker_client.images.get(BASE_IMAGE)
        except docker.errors.ImageNotFound:
            if not os.path.exists(BUSYBOX):
                pytest.fail("busybox-static is not installed: make setup installs it (tests/tools/host-packages.txt)")
            data = Path(BUSYBOX).read_bytes()
            _build(docker_client, BASE_IMAGE, {
                "Dockerfile": (b"FROM scratch\nCOPY busybox /bin/busybox\n", 0o644),
                "busybox": (data, 0o755),
            })
        ids = {}
        for tag, (body, health, cmd, extra) in VARIANTS.items():
            dockerfile = ("FROM %s\nCOPY etc /etc\nCOPY www /www\n%sEXPOSE 8080\nCMD %s\n" % (BASE_IMAGE, extra, cmd))
            files = {"Dockerfile": (dockerfile.encode(), 0o644),
                     "etc/passwd": (PASSWD, 0o644),
                     "www/index.html": ((body + "\n").encode(), 0o644),
                     "www/cgi-bin/token": (TOKEN_CGI, 0o755)}
            if health:
                files["www/health"] = (b"ok\n", 0o644)
            ids[tag] = _build(docker_client, "%s:%s" % (APP_REPO, tag), files)
        return ids


@pytest.fixture(scope="session")
def web_images(docker_client):
    """The sample app "web" built from this checkout, as afb-web:v1 and afb-web:v2 (VERSION v1, v2)."""
    import docker.errors  # pylint: disable=import-outside-toplevel

    try:
        docker_client.images.get(WEB_BASE_IMAGE)
    except docker.errors.ImageNotFound:
        pytest.fail("the base image %s is missing: `make setup` builds it (tests/lab/labctl.py "
                    "ensure_base_image)" % WEB_BASE_IMAGE)
    ids = {}
    for version in ("v1", "v2"):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name in ("Dockerfile", "server.py"):
                tar.add(str(WEB_DIR / name), arcname=name)
            data = (version + "\n").encode()
            info = tarfile.TarInfo("VERSION")
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
        buf.seek(0)
        image, _logs = docker_client.images.build(
            fileobj=buf, custom_context=True, tag="%s:%s" % (WEB_REPO, version),
            buildargs={"BASE_IMAGE": WEB_BASE_IMAGE}, rm=True, forcerm=True)
        ids[version] = image.id
    return ids


class Nginx:
    """A private nginx: own config, pid file and include dirs in a temp dir."""

    def __init__(self, root):
        self.root = Path(root)
        self.conf = self.root / "nginx.conf"
        self.upstreams = self.root / "upstreams"
        self.servers = self.root / "servers"
        for d in (self.upstreams, self.servers, self.root / "tmp"):
            d.mkdir(parents=True, exist_ok=True)
        t = self.root / "tmp"
        self.conf.write_text(
            "worker_processes 1;\n"
            "pid %(r)s/nginx.pid;\n"
            "error_log %(r)s/error.log;\n"
            "events { worker_connections 512; }\n"
            "http {\n"
            "  access_log off;\n"
            "  client_body_temp_path %(t)s/body; proxy_temp_path %(t)s/proxy;\n"
            "  fastcgi_temp_path %(t)s/fastcgi; uwsgi_temp_path %(t)s/uwsgi; scgi_temp_path %(t)s/scgi;\n"
            # WebSocket upgrades pass, as the proxy role's files have it (_proxy_config.py).
            "  map $http_upgrade $appfleet_connection_upgrade { default upgrade; '' ''; }\n"
            "  include %(r)s/upstreams/*.conf;\n"
            "  include %(r)s/servers/*.conf;\n"
            "}\n" % {"r": self.root, "t": t})
        self.base = [NGINX, "-p", str(self.root), "-e", str(self.root / "error.log"), "-c", str(self.conf)]

    @property
    def test_command(self):
        return self.base + ["-t", "-q"]

    @property
    def reload_command(self):
        return self.base + ["-s", "reload"]

    def run(self, *args):
        proc = subprocess.run(self.base + list(args), capture_output=True, text=True, timeout=30, check=False)
        if proc.returncode != 0:
            raise AssertionError("nginx %s failed: %s %s" % (args, proc.stdout, proc.stderr))

    def start(self):
        self.run()  # daemonises; the master writes the pid file

    def stop(self):
        pid_file = self.root / "nginx.pid"
        if pid_file.exists():
            subprocess.run(self.base + ["-s", "quit"], capture_output=True, timeout=30, check=False)
            for dummy in range(50):
                if not pid_file.exists():
                    break
                time.sleep(0.1)

    def add_app(self, app):
        """A server for the app on a free port, proxying to its active slot as the proxy role does
        (WebSocket upgrades included).

        The upstream starts as the one-server placeholder of earlier versions:
        app_container takes over that format too.
        """
        port = free_port()
        (self.upstreams / ("%s.conf" % app)).write_text(
            "upstream appfleet_%s { server 127.0.0.1:9; }\n" % app)
        (self.servers / ("%s.conf" % app)).write_text(
            "server { listen 127.0.0.1:%d;\n"
            "  set $u appfleet_%s;\n"
            "  if (-f %s/%s.slot-b) { set $u appfleet_%s.b; }\n"
            "  location / { proxy_pass http://$u; proxy_http_version 1.1;\n"
            "    proxy_set_header Upgrade $http_upgrade;\n"
            "    proxy_set_header Connection $appfleet_connection_upgrade; } }\n"
            % (port, app, self.upstreams, app, app))
        self.run("-s", "reload")
        # The new listener is opened by the reloaded master: wait for it (bounded).
        for dummy in range(50):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        return port


@pytest.fixture(scope="session")
def nginx():
    if not os.path.exists(NGINX):
        pytest.fail("nginx is not installed (make setup installs nginx-light): the app_container "
                    "tests need a real nginx to switch upstreams")
    root = tempfile.mkdtemp(prefix="afb-nginx-")
    # mkdtemp makes the dir 0700: run as root, nginx's workers (user nobody) could not stat the
    # slot flag in it, so every request went to slot a.
    os.chmod(root, 0o755)
    server = Nginx(root)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def state_dir():
    root = tempfile.mkdtemp(prefix="afb-state-")
    yield Path(root)
    shutil.rmtree(root, ignore_errors=True)


def app_containers(client, app):
    # ignore_removed: a container removed between the list and its inspect (a drain ending) is left out.
    return client.containers.list(all=True, filters={"label": "%s=%s" % (LABEL_APP, app)}, ignore_removed=True)


class App:
    """One test app: its name, proxy port and the module args that go with it."""

    def __init__(self, name, nginx, state_dir, client):
        self.name = name
        self.nginx = nginx
        self.client = client
        self.proxy_port = nginx.add_app(name)
        # Where earlier versions wrote secret_env; the module removes a file left there.
        self.env_file = state_dir / "env" / ("%s.env" % name)
        self.secret_base = state_dir / "secrets"
        self.secret_dir = self.secret_base / name
        self.lock_dir = state_dir / "locks"
        # The release log goes to the test's state dir, not the machine's /var/lib/appfleet.
        self.release_dir = state_dir / "releases"

    def args(self, **over):
        args = {
            "name": self.name,
            "port": 8080,
            "health": {"path": "/health", "timeout": 10, "interval": 0.2},
            "drain_seconds": 1,
            "stop_timeout": 1,
            "secret_env_file": str(self.env_file),
            "secret_dir": str(self.secret_base),
            "lock_dir": str(self.lock_dir),
            "release_dir": str(self.release_dir),
            "proxy": {
                "upstream_file": str(self.nginx.upstreams / ("%s.conf" % self.name)),
                "test_command": self.nginx.test_command,
                "reload_command": self.nginx.reload_command,
            },
        }
        args.update(over)
        return args

    def containers(self, drained=True):
        """The app's containers; ``drained``: once no old container drains any more (bounded), as a run
        returns before the drain of a start-first swap ends."""
        found = app_containers(self.client, self.name)
        deadline = time.time() + 30
        while drained and any(DRAINING in c.name for c in found) and time.time() < deadline:
            time.sleep(0.2)
            found = app_containers(self.client, self.name)
        return found

    def releases(self):
        """The release directories of secret files on the host."""
        if not self.secret_dir.exists():
            return []
        return sorted(p.name for p in self.secret_dir.iterdir())

    def get(self, path="/", timeout=2.0):
        conn = http.client.HTTPConnection("127.0.0.1", self.proxy_port, timeout=timeout)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.read().decode()
        finally:
            conn.close()


@pytest.fixture
def app(request, nginx, state_dir, app_images, docker_client):
    """A fresh app per test, named afb-<test>-<pid>: apart from the apps of another pytest-xdist
    worker or run (a parametrized test's cases share the <test> part). Its containers are removed
    at teardown."""
    short = request.node.name.replace("test_", "")[:20].replace("[", "-").replace("]", "").replace("_", "-")
    name = "afb-%s-%d" % (short.strip("-"), os.getpid())
    app = App(name, nginx, state_dir, docker_client)
    yield app
    # The app's drain removers first (each would remove a container later, under a later test's
    # feet: deploy_state's tests compare every container of the engine), then every container of
    # the app, draining ones included, until none is left.
    for pid, argv in process_argvs():
        if DRAIN_MARKER in argv and name in argv:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass
    deadline = time.time() + 60
    while True:
        left = app_containers(docker_client, name)
        for container in left:
            try:
                container.remove(force=True)
            except Exception:  # gone, or a removal already under way: listed again below
                pass
        if not left or time.time() > deadline:
            break
        time.sleep(0.2)
    assert not app_containers(docker_client, name), "containers of %s left after the test" % name
    shutil.rmtree(app.secret_dir, ignore_errors=True)


class Probe(threading.Thread):
    """GET the app through nginx about 25 times a second; bounded in count and time.

    ``keepalive``: send every request on one kept-alive connection (opened
    again only after a failure, which is counted), as browsers and HTTP client
    pools do; else a new connection per request. A failed request is never
    retried: the probe counts what a client that does not retry sees.
    """

    def __init__(self, port, interval=0.04, max_requests=4000, max_seconds=150, path="/", keepalive=False):
        super().__init__(daemon=True)
        self.port = port
        self.keepalive = keepalive
        self.path = path
        self.interval = interval
        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self.stop_event = threading.Event()
        self.ok = 0
        self.failures = []
        self.bodies = set()

    def run(self):
        deadline = time.time() + self.max_seconds
        conn = None
        for dummy in range(self.max_requests):
            if self.stop_event.is_set() or time.time() > deadline:
                break
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            try:
                conn.request("GET", self.path)
                resp = conn.getresponse()
                body = resp.read().decode().strip()
                if resp.status == 200:
                    self.ok += 1
                    self.bodies.add(body)
                else:
                    self.failures.append("HTTP %s" % resp.status)
                if resp.will_close:
                    conn.close()
                    conn = None
            except Exception as exc:  # any failure to get an answer counts
                self.failures.append(("keep-alive " if self.keepalive else "") + repr(exc))
                conn.close()
                conn = None
            if conn is not None and not self.keepalive:
                conn.close()
                conn = None
            time.sleep(self.interval)
        if conn is not None:
            conn.close()

    def wait_ok(self, count):
        """Wait until ``count`` requests in all were answered 200 (or the probe ended)."""
        while self.ok < count and self.is_alive():
            self.stop_event.wait(0.05)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        self.join(30)
        return False


def descendants(pid):
    """Pids of all descendants of pid (walking /proc), children first-level last."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
        except (OSError, IndexError):
            continue
    out, todo = [], [pid]
    while todo:
        cur = todo.pop()
        for child in children.get(cur, []):
            out.append(child)
            todo.append(child)
    return out


def kill_tree(proc):
    """SIGKILL a process we started and every process below it (ansible's workers setsid)."""
    pids = descendants(proc.pid)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    proc.wait(30)
