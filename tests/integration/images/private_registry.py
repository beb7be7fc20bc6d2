"""A private registry for the module tests: Debian's docker-registry (distribution 2.8) as a process.

It runs on a free 127.0.0.1 port with TLS (a CA and a server certificate made by openssl)
and htpasswd (bcrypt) authentication. The engine treats 127.0.0.0/8 registries as insecure,
so it does not check the certificate; the TLS and auth paths are real otherwise.
``private_registry()`` skips the test when the tools are missing (CI turns a skip into a failure).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from images.helpers import BUSYBOX_IMAGE, image_or_none

REGISTRY_BIN = "/usr/bin/docker-registry"
TOOLS = {REGISTRY_BIN: "docker-registry", "htpasswd": "apache2-utils", "openssl": "openssl"}
USER = "afa-puller"


def free_port():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
    finally:
        sock.close()


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=str(cwd), check=True, capture_output=True, timeout=60)


class PrivateRegistry(object):
    """A docker-registry process on 127.0.0.1 with TLS and one htpasswd user."""

    def __init__(self, base):
        self.base = base
        self.port = free_port()
        self.host = "127.0.0.1:%d" % self.port
        self.password = "afa-pw-" + secrets.token_hex(12)
        self.auth = dict(username=USER, password=self.password)
        self.proc = None

    def ref(self, repo, tag):
        return "%s/%s:%s" % (self.host, repo, tag)

    def start(self):
        base = self.base
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
                "-days", "2", "-subj", "/CN=afa test registry CA", cwd=base)
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
                "-subj", "/CN=127.0.0.1", cwd=base)
        (base / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", "server.crt", "-days", "2", "-extfile", "san.cnf", cwd=base)
        # bcrypt (-B), the password on stdin (-i), not on a command line.
        htpasswd = subprocess.run(["htpasswd", "-B", "-i", "-n", USER], input=self.password, text=True,
                                  check=True, capture_output=True, timeout=60).stdout
        (base / "htpasswd").write_text(htpasswd)
        (base / "data").mkdir()
        (base / "config.yml").write_text(
            "version: 0.1\n"
            "log:\n  level: warn\n"
            "storage:\n  filesystem:\n    rootdirectory: %(base)s/data\n  delete:\n    enabled: true\n"
            "http:\n  addr: %(host)s\n  tls:\n    certificate: %(base)s/server.crt\n    key: %(base)s/server.key\n"
            "auth:\n  htpasswd:\n    realm: afa-test\n    path: %(base)s/htpasswd\n"
            % dict(base=base, host=self.host))
        log = open(str(base / "registry.log"), "wb")  # pylint: disable=consider-using-with
        self.proc = subprocess.Popen([REGISTRY_BIN, "serve", str(base / "config.yml")],  # pylint: disable=consider-using-with
                                     stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        log.close()
        context = ssl.create_default_context(cafile=str(base / "ca.crt"))
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen("https://%s/v2/" % self.host, timeout=2, context=context)  # noqa: S310
                raise AssertionError("the registry answered without credentials: auth is not on")
            except urllib.error.HTTPError as exc:
                if exc.code == 401:
                    return  # up, TLS with our CA, and asking for credentials
                raise
            except (urllib.error.URLError, OSError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("docker-registry did not start:\n%s"
                                         % (base / "registry.log").read_text()[-3000:])
                time.sleep(0.2)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@contextlib.contextmanager
def private_registry(base):
    """A started PrivateRegistry under the directory ``base``; stopped on exit."""
    missing = [package for tool, package in sorted(TOOLS.items()) if not shutil.which(tool)]
    if missing:
        pytest.skip("these tests need a private registry: apt-get install -y %s (make setup installs them)"
                    % " ".join(sorted(set(missing))))
    reg = PrivateRegistry(base)
    try:
        reg.start()
        yield reg
    finally:
        reg.stop()


def push_new(client, reg, repo, tag):
    """Build a new tiny image as ``repo:tag`` of the registry, push it, remove it here.

    Returns (image id, manifest digest). The local image is removed so a pull has to fetch it.
    """
    ref = reg.ref(repo, tag)
    dockerfile = "FROM %s\nLABEL afa.pull=%s\n" % (BUSYBOX_IMAGE, secrets.token_hex(8))
    built, _logs = client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=ref, rm=True, pull=False)
    digest = None
    for message in client.images.push(reg.host + "/" + repo, tag=tag, auth_config=reg.auth, stream=True,
                                      decode=True):
        assert "error" not in message, message
        digest = (message.get("aux") or {}).get("Digest") or digest
    assert digest, "the push returned no digest"
    client.images.remove(built.id, force=True)
    assert image_or_none(client, ref) is None
    return built.id, digest


def pushed_and_present(client, reg, repo, tag):
    """push_new(), then the image pulled back with the SDK (not the module): (image id, digest)."""
    image_id, digest = push_new(client, reg, repo, tag)
    client.images.pull(reg.host + "/" + repo, tag=tag, auth_config=reg.auth)
    assert client.images.get(reg.ref(repo, tag)).id == image_id
    return image_id, digest


def docker_config_state():
    """What is in the docker config files of this user now: {path: sha256 or None}."""
    paths = [Path(os.path.expanduser("~")) / ".docker" / "config.json"]
    if os.environ.get("DOCKER_CONFIG"):
        paths.append(Path(os.environ["DOCKER_CONFIG"]) / "config.json")
    return dict((str(p), hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else None) for p in paths)


@pytest.fixture(scope="module")
def config_before(registry):  # pylint: disable=unused-argument,redefined-outer-name
    """The docker config files before the tests of a module (``registry``: that module's fixture)."""
    return docker_config_state()
