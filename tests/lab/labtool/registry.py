"""The lab registry on the git host: TLS with the lab's own CA, htpasswd, the images it holds."""

from __future__ import annotations

import hashlib
import os
import shutil
import ssl
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from .shell import die, docker, log, run, wait_for
from .state import APPS_DIR, GIT_HOST, IMAGE_REPO, REGISTRY_DIR, REGISTRY_LOCAL_PORT, REGISTRY_PORT, REGISTRY_USER


# What the lab pushes to its registry: the `hello` image, for apps deployed by
# `image:` (built here from examples/apps/web, served version "hello-1"), and
# the lab's Debian base image, for apps that build FROM the registry
# (BASE_IMAGE=git:5000/lab/debian:bookworm) as real apps build FROM theirs.
REGISTRY_IMAGES = {"lab/hello:1": {"context": "web", "version": "hello-1"},
                   "lab/debian:bookworm": {"image": IMAGE_REPO + ":bookworm"}}


def registry_credentials():
    """(user, password) of the lab registry; the password is made once, kept 0600."""
    path = REGISTRY_DIR / "password"
    if not path.exists():
        REGISTRY_DIR.mkdir(parents=True, exist_ok=True)
        os.chmod(REGISTRY_DIR, 0o700)
        fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(hashlib.sha256(os.urandom(32)).hexdigest()[:32])
    return REGISTRY_USER, path.read_text().strip()


def ensure_registry_certs():
    """A CA of the lab's own and the registry's certificate (names git, localhost,
    127.0.0.1), made once with openssl into .lab/registry."""
    if shutil.which("openssl") is None:
        die("no openssl on PATH; run `make setup` (installs the Debian package openssl)")
    REGISTRY_DIR.mkdir(parents=True, exist_ok=True)
    os.chmod(REGISTRY_DIR, 0o700)
    ca_key, ca_crt = REGISTRY_DIR / "ca.key", REGISTRY_DIR / "ca.crt"
    key, crt = REGISTRY_DIR / "server.key", REGISTRY_DIR / "server.crt"
    if not (ca_key.exists() and ca_crt.exists()):
        run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
             "-days", "3650", "-subj", "/CN=appfleet lab registry CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-keyout", str(ca_key), "-out", str(ca_crt)])
        crt.unlink(missing_ok=True)
        log("generated the lab registry CA %s" % ca_crt)
    if not (key.exists() and crt.exists()):
        csr = REGISTRY_DIR / "server.csr"
        ext = REGISTRY_DIR / "server.ext"
        ext.write_text("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                       "extendedKeyUsage=serverAuth\n"
                       "subjectAltName=DNS:%s,DNS:localhost,IP:127.0.0.1\n" % GIT_HOST["hostname"])
        run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-sha256",
             "-subj", "/CN=%s" % GIT_HOST["hostname"], "-keyout", str(key), "-out", str(csr)])
        run(["openssl", "x509", "-req", "-sha256", "-days", "825", "-in", str(csr),
             "-CA", str(ca_crt), "-CAkey", str(ca_key), "-CAcreateserial",
             "-extfile", str(ext), "-out", str(crt)])
        csr.unlink()
    for path in (ca_key, key):
        os.chmod(path, 0o600)
    return ca_crt, crt, key


REGISTRY_CONFIG = """\
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: /var/lib/docker-registry
  delete:
    enabled: true
http:
  addr: :%d
  tls:
    certificate: /etc/docker/registry/server.crt
    key: /etc/docker/registry/server.key
auth:
  htpasswd:
    realm: appfleet-lab
    path: /etc/docker/registry/htpasswd
""" % REGISTRY_PORT


def registry_answers():
    """The registry answers on 127.0.0.1 over TLS (checked against the lab CA) and
    asks for credentials (401) when none are given."""
    context = ssl.create_default_context(cafile=str(REGISTRY_DIR / "ca.crt"))
    try:
        urllib.request.urlopen("https://localhost:%d/v2/" % REGISTRY_LOCAL_PORT,
                               timeout=5, context=context)
    except urllib.error.HTTPError as exc:
        return exc.code == 401
    except (OSError, ssl.SSLError):
        return False
    return False


def setup_registry():
    """Debian's docker-registry on the git host, TLS + htpasswd, then the lab's images pushed."""
    name = GIT_HOST["name"]
    ca_crt, crt, key = ensure_registry_certs()
    user, password = registry_credentials()
    if docker("exec", name, "sh", "-c", "command -v docker-registry && command -v htpasswd",
              check=False).returncode != 0:
        log("installing docker-registry on the git host")
        docker("exec", name, "sh", "-c",
               "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
               "--no-install-recommends docker-registry apache2-utils >/dev/null", timeout=600)
    script = (
        "set -e\n"
        "install -d -m 0755 /etc/docker/registry\n"
        "cat > /etc/docker/registry/config.yml <<'EOF'\n%s"
        "EOF\n"
        "printf '%%s\\n' \"$1\" > /etc/docker/registry/server.crt\n"
        "printf '%%s\\n' \"$2\" > /etc/docker/registry/server.key\n"
        "chown root:docker-registry /etc/docker/registry/server.key\n"
        "chmod 0640 /etc/docker/registry/server.key\n"
        "htpasswd -iBc /etc/docker/registry/htpasswd %s 2>/dev/null\n"
        "chown root:docker-registry /etc/docker/registry/htpasswd\n"
        "chmod 0640 /etc/docker/registry/htpasswd\n"
        "systemctl restart docker-registry\n"
    ) % (REGISTRY_CONFIG, user)
    docker("exec", "-i", name, "sh", "-c", script, "registry-setup",
           crt.read_text().strip(), key.read_text().strip(), input=password + "\n")
    wait_for("the lab registry on 127.0.0.1:%d" % REGISTRY_LOCAL_PORT, registry_answers)
    for ref, spec in REGISTRY_IMAGES.items():
        push_registry_image(ref, spec, user, password)
    log("registry on the git host: git:%d (CA %s)" % (REGISTRY_PORT, ca_crt))


def push_registry_image(ref, spec, user, password):
    """Push `ref`: a local image (spec "image") or one built here from a sample
    app, logged in through a throwaway docker config (nothing is left in
    ~/.docker/config.json)."""
    local = "127.0.0.1:%d/%s" % (REGISTRY_LOCAL_PORT, ref)
    with tempfile.TemporaryDirectory(prefix="appfleet-lab-push-") as tmp:
        env = dict(os.environ, DOCKER_CONFIG=tmp)
        if "image" in spec:
            docker("tag", spec["image"], local)
        else:
            context = Path(tmp) / "context"
            shutil.copytree(APPS_DIR / spec["context"], context)
            (context / "VERSION").write_text(spec["version"] + "\n")
            docker("build", "-q", "-t", local, str(context), env=env, timeout=600)
        run(["docker", "login", "--username", user, "--password-stdin",
             "127.0.0.1:%d" % REGISTRY_LOCAL_PORT], input=password, env=env)
        docker("push", "-q", local, env=env, timeout=600)
    log("pushed %s to the lab registry" % ref)
