"""labctl: the local lab fleet of appfleet.docker.

The lab is a real fleet on this machine: N "VMs" (default 2) that look like a
fresh Debian cloud image as cloud-init leaves it -- systemd, sshd, python3,
sudo, an initial user `debian` with the operator's key and passwordless sudo,
root login refused, and no git, Docker or nginx -- plus a git host serving the
sample apps over SSH. Ansible reaches each VM by SSH on a port published on
127.0.0.1, checking the host keys recorded in .lab/ssh/known_hosts.

    labctl.py up [--vms N] [--suites bookworm[,trixie...]]
                            base image(s), keys, git host, vm1..vmN (idempotent)
    labctl.py down          remove every container, volume and network the lab made
    labctl.py status        what runs
    labctl.py fleet         the fleet as JSON (the lab inventory reads it)
    labctl.py base-image [--suite bookworm] [--save]
    labctl.py vm-create NAME --ssh-port PORT [--suite S] [--network N] [--publish SPEC]...
    labctl.py vm-destroy NAME

Everything the lab creates carries the label io.appfleet.lab; state (SSH keys,
known_hosts, image archives, the fleet description, the sample apps' work
trees) lives in .lab/ (APPFLEET_LAB_DIR).
"""

from __future__ import annotations

import argparse
import fcntl
import glob
import hashlib
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STATE = Path(os.environ.get("APPFLEET_LAB_DIR", REPO / ".lab")).resolve()
KEY = STATE / "ssh" / "id_ed25519"
DEPLOY_KEY = STATE / "ssh" / "deploy_key"
LABEL = "io.appfleet.lab"
IMAGE_REPO = "appfleet-lab/debian"
NETWORK = "appfleet-lab"
# The lab network has IPv6 as well (a ULA prefix), as cloud VMs do.
NETWORK_IPV6_SUBNET = "fd00:af1:1ab::/64"
APPS_DIR = REPO / "examples" / "apps"
FLEET_FILE = STATE / "fleet.json"
KNOWN_HOSTS = STATE / "ssh" / "known_hosts"
SUITES = ("bookworm", "trixie")
MAX_VMS = 16

# The user cloud-init creates on Debian's cloud images (AWS: admin).
INITIAL_USER = "debian"

# The git host also runs the lab's registry (Debian's docker-registry: TLS with
# the lab's own CA, htpasswd): the VMs reach it as git:5000, this machine as
# 127.0.0.1:5500 (to push the lab's images).
REGISTRY_PORT = 5000
REGISTRY_LOCAL_PORT = 5500
GIT_HOST = {"name": "appfleet-git", "hostname": "git", "ssh_port": 2200,
            "publish": ["127.0.0.1:%d:%d" % (REGISTRY_LOCAL_PORT, REGISTRY_PORT)]}
REGISTRY_DIR = STATE / "registry"
REGISTRY_USER = "lab"
# What the lab pushes to its registry: the `hello` image, for apps deployed by
# `image:` (built here from examples/apps/web, served version "hello-1"), and
# the lab's Debian base image, for apps that build FROM the registry
# (BASE_IMAGE=git:5000/lab/debian:bookworm) as real apps build FROM theirs.
REGISTRY_IMAGES = {"lab/hello:1": {"context": "web", "version": "hello-1"},
                   "lab/debian:bookworm": {"image": IMAGE_REPO + ":bookworm"}}


def vm_spec(index, suite="bookworm"):
    """vmN: SSH on 127.0.0.1:(2200+N), its port 80 on 8000+N and 443 on 8440+N."""
    return {"name": "appfleet-vm%d" % index, "hostname": "vm%d" % index, "suite": suite,
            "ssh_port": 2200 + index, "http_port": 8000 + index, "https_port": 8440 + index,
            "publish": ["127.0.0.1:%d:80" % (8000 + index), "127.0.0.1:%d:443" % (8440 + index)]}


# What a fresh Debian cloud image has: systemd, sshd, python3, sudo,
# ca-certificates. No git, no Docker, no nginx: the roles install what they need.
PACKAGES = ["systemd", "systemd-sysv", "dbus", "python3", "openssh-server", "sudo",
            "ca-certificates", "iproute2", "procps", "less"]

# Capabilities for the systemd containers: all but SYS_RESOURCE, which this
# machine's bounding set lacks (see LAB-NOTES.md).
VM_RUN_FLAGS = [
    "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
    "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
    "--security-opt", "systempaths=unconfined", "--device-cgroup-rule", "a *:* rwm",
    "--cgroupns=host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", "/tmp",
    "--stop-signal", "SIGRTMIN+3", "--stop-timeout", "20",
]

# Host keys are checked against the ones recorded when each VM was made.
SSH_OPTS = ["-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=%s" % KNOWN_HOSTS,
            "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
            "-o", "IdentitiesOnly=yes"]


def log(msg):
    print("lab: " + msg, file=sys.stderr, flush=True)


def die(msg):
    print("lab: error: " + msg, file=sys.stderr)
    sys.exit(1)


def run(cmd, check=True, capture=True, input=None, timeout=900, env=None):
    proc = subprocess.run(cmd, capture_output=capture, text=True, input=input,
                          timeout=timeout, env=env, check=False)
    if check and proc.returncode != 0:
        die("command failed (%s): %s\n%s%s"
            % (proc.returncode, " ".join(cmd), proc.stdout or "", proc.stderr or ""))
    return proc


def docker(*args, **kw):
    return run(["docker"] + list(args), **kw)


def exists(kind, name):
    return docker(kind, "inspect", name, check=False).returncode == 0


def require_engine():
    if shutil.which("docker") is None:
        die("no docker client on PATH; run `make engine` (installs Debian's docker.io)")
    if docker("info", check=False, timeout=30).returncode != 0:
        die("no Docker engine answers; run `make engine` to install and start dockerd")


# --- SSH keys -------------------------------------------------------------

def ensure_keys():
    (STATE / "ssh").mkdir(parents=True, exist_ok=True)
    os.chmod(STATE / "ssh", 0o700)
    for key, comment in ((KEY, "appfleet-lab-operator"), (DEPLOY_KEY, "appfleet-lab-deploy")):
        if not key.exists():
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(key)])
            log("generated SSH key %s" % key)


# --- base image -----------------------------------------------------------

def apt_mirror():
    """The Debian mirror this machine's own apt sources use."""
    uris = []
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        text = Path(path).read_text()
        for stanza in re.split(r"\n\s*\n", text):
            fields = dict(re.findall(r"^(\S+):\s*(.*)$", stanza, re.M))
            if "security" in fields.get("Suites", "") or "security" in fields.get("URIs", ""):
                continue
            uris += fields.get("URIs", "").split()
    for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
        if os.path.exists(path):
            for line in Path(path).read_text().splitlines():
                m = re.match(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+\S+", line)
                if m and "security" not in line:
                    uris.append(m.group(1))
    uris = [u for u in uris if u.startswith(("http://", "https://"))]
    if not uris:
        die("cannot find a Debian mirror in this machine's apt sources")
    return uris[0]


def image_name(suite):
    return "%s:%s" % (IMAGE_REPO, suite)


def image_id(name):
    proc = docker("image", "inspect", "-f", "{{.Id}}", name, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def recipe_id(suite):
    """What the base image is made of; an image built from another recipe is rebuilt."""
    text = json.dumps([suite, PACKAGES, ROOTFS_FIXUPS])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def image_recipe(name):
    proc = docker("image", "inspect", "-f", '{{index .Config.Labels "%s.recipe"}}' % LABEL,
                  name, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def build_from_registry(suite, name):
    """Real users have a registry: start from the official debian image."""
    if docker("pull", "debian:%s" % suite, check=False, timeout=300).returncode != 0:
        return False
    log("pulled debian:%s; adding systemd, sshd, python3, sudo" % suite)
    dockerfile = (
        "FROM debian:%s\n"
        "ENV container=docker\n"
        "LABEL %s.recipe=%s\n"
        "RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "
        "--no-install-recommends %s && rm -rf /var/lib/apt/lists/*\n"
        "%s\n"
        'STOPSIGNAL SIGRTMIN+3\nCMD ["/lib/systemd/systemd"]\n'
    ) % (suite, LABEL, recipe_id(suite), " ".join(PACKAGES), "RUN " + " && ".join(ROOTFS_FIXUPS))
    with tempfile.TemporaryDirectory() as ctx:
        Path(ctx, "Dockerfile").write_text(dockerfile)
        docker("build", "-q", "-t", name, ctx, capture=False, timeout=1200)
    return True


# Applied to every base image: host keys and machine id made per VM at first
# boot; no console getty (containers have no tty1), no udev, no module loading.
ROOTFS_FIXUPS = [
    "rm -f /etc/ssh/ssh_host_*",
    "truncate -s 0 /etc/machine-id",
    "rm -f /var/lib/dbus/machine-id",
    "printf '[Unit]\\nDescription=Generate SSH host keys\\nBefore=ssh.service\\n"
    "[Service]\\nType=oneshot\\nExecStart=/usr/bin/ssh-keygen -A\\n"
    "[Install]\\nWantedBy=multi-user.target\\n' > /etc/systemd/system/lab-ssh-keys.service",
    "ln -sf /etc/systemd/system/lab-ssh-keys.service "
    "/etc/systemd/system/multi-user.target.wants/lab-ssh-keys.service",
    "ln -sf /dev/null /etc/systemd/system/getty@tty1.service",
    "ln -sf /dev/null /etc/systemd/system/console-getty.service",
    "ln -sf /dev/null /etc/systemd/system/systemd-udevd.service",
    # A container cannot load kernel modules (Debian 13 fails the unit, which
    # leaves systemd "degraded"); the host's kernel has them.
    "ln -sf /dev/null /etc/systemd/system/systemd-modules-load.service",
]


def build_with_debootstrap(suite, name):
    """No registry: debootstrap from the mirror the machine's apt sources use."""
    if shutil.which("debootstrap") is None:
        die("no registry to pull debian:%s and no debootstrap; run `make engine`" % suite)
    mirror = apt_mirror()
    log("building %s with debootstrap from %s (about a minute)" % (name, mirror))
    root = Path(tempfile.mkdtemp(prefix="appfleet-rootfs-"))
    try:
        run(["debootstrap", "--variant=minbase", "--include=" + ",".join(PACKAGES),
             suite, str(root), mirror], timeout=1500)
        run(["chroot", str(root), "sh", "-c", " && ".join(ROOTFS_FIXUPS)])
        (root / "etc/apt/sources.list").write_text(
            "deb %s %s main\n" % (mirror, suite))
        run(["chroot", str(root), "apt-get", "clean"])
        tar = subprocess.Popen(["tar", "-C", str(root), "--numeric-owner", "-c", "."],
                               stdout=subprocess.PIPE)
        imp = subprocess.run(
            ["docker", "import", "-c", 'CMD ["/lib/systemd/systemd"]',
             "-c", "ENV container=docker",
             "-c", "LABEL %s.recipe=%s" % (LABEL, recipe_id(suite)), "-", name],
            stdin=tar.stdout, capture_output=True, text=True, timeout=600, check=False)
        tar.stdout.close()
        if tar.wait() != 0 or imp.returncode != 0:
            die("docker import of the rootfs failed: %s" % imp.stderr)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def ensure_base_image(suite, save=False):
    name = image_name(suite)
    if image_id(name) and image_recipe(name) == recipe_id(suite):
        log("base image %s present, reused" % name)
    else:
        if image_id(name):
            log("base image %s was made from another recipe; building it again" % name)
        if not build_from_registry(suite, name):
            log("cannot pull debian:%s (no registry reachable); falling back to debootstrap"
                % suite)
            build_with_debootstrap(suite, name)
    archive = None
    if save:
        archive = STATE / "images" / ("debian-%s.tar" % suite)
        stamp = archive.with_suffix(".id")
        iid = image_id(name)
        if not (archive.exists() and stamp.exists() and stamp.read_text() == iid):
            archive.parent.mkdir(parents=True, exist_ok=True)
            log("saving %s to %s" % (name, archive))
            docker("save", "-o", str(archive) + ".part", name)
            os.replace(str(archive) + ".part", archive)
            stamp.write_text(iid)
    return name, archive


# --- systemd "VM" containers ----------------------------------------------

def ssh_cmd(port, user=INITIAL_USER, key=KEY):
    return ["ssh"] + SSH_OPTS + ["-i", str(key), "-p", str(port), "%s@127.0.0.1" % user]


def wait_for(what, probe, timeout=90, interval=1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(interval)
    die("timed out after %s s waiting for %s" % (timeout, what))


# What cloud-init leaves on a Debian cloud image: the initial user with the
# operator's key and passwordless sudo; root's key refused with a message
# (disable_root); password login off in 50-cloud-init.conf.
CLOUD_INIT = r"""set -e
user=%(user)s
key=$(cat)
if ! id "$user" >/dev/null 2>&1; then
  useradd -m -s /bin/bash "$user"
  for g in adm sudo dip plugdev netdev video audio cdrom floppy dialout; do
    getent group "$g" >/dev/null && usermod -aG "$g" "$user"
  done
  passwd -l "$user" >/dev/null
fi
install -d -m 0700 -o "$user" -g "$user" "/home/$user/.ssh"
printf '%%s\n' "$key" > "/home/$user/.ssh/authorized_keys"
chown "$user:$user" "/home/$user/.ssh/authorized_keys"
chmod 0600 "/home/$user/.ssh/authorized_keys"
printf '# Created by cloud-init (lab stand-in)\n%%s ALL=(ALL) NOPASSWD:ALL\n' "$user" \
  > /etc/sudoers.d/90-cloud-init-users
chmod 0440 /etc/sudoers.d/90-cloud-init-users
install -d -m 0700 /root/.ssh
refuse='no-port-forwarding,no-agent-forwarding,no-X11-forwarding'
refuse="$refuse,command=\"echo 'Please login as the user \\\"$user\\\" rather than the user \\\"root\\\".';echo;sleep 10;exit 142\""
printf '%%s %%s\n' "$refuse" "$key" > /root/.ssh/authorized_keys
chmod 0600 /root/.ssh/authorized_keys
if [ ! -f /etc/ssh/sshd_config.d/50-cloud-init.conf ]; then
  printf 'PasswordAuthentication no\n' > /etc/ssh/sshd_config.d/50-cloud-init.conf
  systemctl reload ssh || true
fi
"""


def cloud_init(name):
    docker("exec", "-i", name, "sh", "-c", CLOUD_INIT % {"user": INITIAL_USER},
           input=KEY.with_suffix(".pub").read_text().strip())


def host_keys(name):
    """The VM's SSH host public keys, read through the engine (the lab's console)."""
    out = docker("exec", name, "sh", "-c", "cat /etc/ssh/ssh_host_*_key.pub").stdout
    return [" ".join(line.split()[:2]) for line in out.splitlines() if line.strip()]


def record_host_keys(patterns, keys, path=KNOWN_HOSTS):
    """Replace the known_hosts entries of `patterns` with `keys` (under a lock:
    molecule creates several VMs at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(str(path) + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        lines = path.read_text().splitlines() if path.exists() else []
        lines = [ln for ln in lines if ln.split(" ", 1)[0] != ",".join(patterns)]
        lines += ["%s %s" % (",".join(patterns), key) for key in keys]
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        os.replace(tmp, path)


def forget_host_keys(patterns, path=KNOWN_HOSTS):
    record_host_keys(patterns, [], path)


def vm_create(name, ssh_port, suite="bookworm", network=None, publish=(), hostname=None,
              role="vm"):
    """Create (or start) a systemd container that behaves like a fresh cloud VM."""
    ensure_keys()
    image = ensure_base_image(suite)[0]
    state = docker("inspect", "-f", "{{.State.Running}}", name, check=False)
    if state.returncode != 0:
        volume = name + "-docker"
        if not exists("volume", volume):
            docker("volume", "create", "--label", "%s=%s" % (LABEL, role), volume)
        cmd = ["run", "-d", "--name", name, "--hostname", hostname or name,
               "--label", "%s=%s" % (LABEL, role), "--label", "%s.suite=%s" % (LABEL, suite),
               "-p", "127.0.0.1:%d:22" % ssh_port, "-v", volume + ":/var/lib/docker"]
        for spec in publish:
            cmd += ["-p", spec]
        if network:
            cmd += ["--network", network]
        docker(*(cmd + VM_RUN_FLAGS + [image, "/lib/systemd/systemd"]))
        log("created %s (%s) with SSH on 127.0.0.1:%d" % (name, image, ssh_port))
    elif state.stdout.strip() != "true":
        docker("start", name)
        log("started %s" % name)

    def booted():
        proc = docker("exec", name, "systemctl", "is-system-running", check=False)
        return proc.stdout.strip() in ("running", "degraded")

    wait_for("systemd in %s" % name, booted)
    wait_for("SSH host keys in %s" % name,
             lambda: docker("exec", name, "test", "-s", "/etc/ssh/ssh_host_ed25519_key.pub",
                            check=False).returncode == 0)
    cloud_init(name)
    record_host_keys(["[127.0.0.1]:%d" % ssh_port], host_keys(name))

    def ssh_ok():
        return run(ssh_cmd(ssh_port) + ["true"], check=False, timeout=20).returncode == 0

    wait_for("SSH on 127.0.0.1:%d (%s)" % (ssh_port, name), ssh_ok)


def vm_destroy(name):
    if exists("container", name):
        port = docker("port", name, "22", check=False).stdout.strip()
        docker("rm", "-f", "-v", name)
        log("removed container %s" % name)
        if port.startswith("127.0.0.1:"):
            forget_host_keys(["[127.0.0.1]:%s" % port.split(":")[1]])
    if exists("volume", name + "-docker"):
        docker("volume", "rm", name + "-docker")


# --- git host with the sample apps ----------------------------------------

def sample_apps():
    return sorted(p.name for p in APPS_DIR.iterdir() if (p / "Dockerfile").exists())


def git_env():
    env = dict(os.environ)
    env["GIT_SSH_COMMAND"] = " ".join(["ssh"] + SSH_OPTS + ["-i", str(KEY)])
    env.setdefault("GIT_AUTHOR_NAME", "appfleet lab")
    env.setdefault("GIT_AUTHOR_EMAIL", "lab@appfleet.invalid")
    env.setdefault("GIT_COMMITTER_NAME", "appfleet lab")
    env.setdefault("GIT_COMMITTER_EMAIL", "lab@appfleet.invalid")
    return env


def push_url(app):
    """The app's repository as this machine reaches it (the VMs use git@git:/srv/git/APP.git)."""
    return "ssh://git@127.0.0.1:%d/srv/git/%s.git" % (GIT_HOST["ssh_port"], app)


GIT_KNOWN_HOSTS = STATE / "ssh" / "git_known_hosts"


def setup_git_host():
    name = GIT_HOST["name"]
    vm_create(name, GIT_HOST["ssh_port"], network=NETWORK, hostname=GIT_HOST["hostname"],
              publish=GIT_HOST["publish"], role="fleet")
    # The base image is a cloud image without git: the git host installs it.
    if docker("exec", name, "sh", "-c", "command -v git", check=False).returncode != 0:
        log("installing git on the git host")
        docker("exec", name, "sh", "-c",
               "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
               "--no-install-recommends git >/dev/null", timeout=600)
    keys = KEY.with_suffix(".pub").read_text() + DEPLOY_KEY.with_suffix(".pub").read_text()
    apps = " ".join(sample_apps())
    script = (
        "set -e\n"
        "id git >/dev/null 2>&1 || useradd -m -d /home/git -s /usr/bin/git-shell git\n"
        "install -d -o git -g git -m 0700 /home/git/.ssh\n"
        "cat > /home/git/.ssh/authorized_keys\n"
        "chown git:git /home/git/.ssh/authorized_keys; chmod 0600 /home/git/.ssh/authorized_keys\n"
        "install -d -o git -g git /srv/git\n"
        "for app in %s; do\n"
        "  [ -d /srv/git/$app.git ] || su -s /bin/sh git -c \"git init -q --bare -b main /srv/git/$app.git\"\n"
        "done\n"
    ) % apps
    docker("exec", "-i", name, "sh", "-c", script, input=keys)
    # The VMs reach the git host as `git` on the lab network: its host key, for
    # the apps' source.known_hosts.
    record_host_keys([GIT_HOST["hostname"]], host_keys(name), GIT_KNOWN_HOSTS)
    for app in sample_apps():
        push_app(app)


def push_app(app):
    """Keep a work tree per app in the lab state and push it to the git host."""
    work = STATE / "work" / app
    env = git_env()
    if not (work / ".git").exists():
        shutil.copytree(APPS_DIR / app, work, dirs_exist_ok=True)
        run(["git", "-C", str(work), "init", "-q", "-b", "main"], env=env)
        run(["git", "-C", str(work), "add", "-A"], env=env)
        run(["git", "-C", str(work), "commit", "-q", "-m", "%s: initial version" % app], env=env)
    run(["git", "-C", str(work), "push", "-q", "--force", push_url(app),
         "main"], env=env)
    log("pushed %s to the git host" % app)


# --- registry on the git host ------------------------------------------------

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


# --- whole lab --------------------------------------------------------------

def read_fleet():
    """The lab's VMs as `up` last made them (default: vm1, vm2 on bookworm)."""
    if FLEET_FILE.exists():
        return json.loads(FLEET_FILE.read_text())["vms"]
    return [vm_spec(i) for i in (1, 2)]


def write_ssh_config(vms):
    """`ssh -F .lab/ssh/config vm1` (and testinfra) reach the lab hosts by name,
    as the initial user, checking the recorded host keys."""
    lines = []
    for host in [GIT_HOST] + vms:
        lines += ["Host %s" % host["hostname"], "  HostName 127.0.0.1",
                  "  Port %d" % host["ssh_port"], "  User %s" % INITIAL_USER,
                  "  IdentityFile %s" % KEY, "  IdentitiesOnly yes",
                  "  StrictHostKeyChecking yes", "  UserKnownHostsFile %s" % KNOWN_HOSTS,
                  "  LogLevel ERROR", ""]
    (STATE / "ssh" / "config").write_text("\n".join(lines))


def fleet_spec(args):
    """The VMs `up` should make: from --vms/--suites, else as last time."""
    previous = read_fleet()
    count = args.vms if args.vms is not None else len(previous)
    if not 1 <= count <= MAX_VMS:
        die("--vms must be between 1 and %d, not %d" % (MAX_VMS, count))
    if args.suites:
        suites = [x.strip() for x in args.suites.split(",") if x.strip()]
        bad = [x for x in suites if x not in SUITES]
        if bad or not suites:
            die("--suites takes a comma-separated list of %s, not %r" % ("/".join(SUITES), args.suites))
        return [vm_spec(i, suites[(i - 1) % len(suites)]) for i in range(1, count + 1)]
    old = {vm["hostname"]: vm["suite"] for vm in previous}
    return [vm_spec(i, old.get("vm%d" % i, "bookworm")) for i in range(1, count + 1)]


def up(args):
    require_engine()
    ensure_keys()
    vms = fleet_spec(args)
    for suite in sorted({vm["suite"] for vm in vms} | {"bookworm"}):
        # bookworm is what the sample apps build FROM: its archive is preloaded.
        ensure_base_image(suite, save=True)
    if not exists("network", NETWORK):
        docker("network", "create", "--label", "%s=fleet" % LABEL, "--ipv6",
               "--subnet", NETWORK_IPV6_SUBNET, NETWORK)
    # VMs beyond the requested count, or on another suite, go.
    wanted = {vm["name"]: vm["suite"] for vm in vms}
    for name in docker("ps", "-a", "--filter", "label=%s=fleet" % LABEL,
                       "--format", "{{.Names}}").stdout.split():
        if re.match(r"^appfleet-vm\d+$", name):
            suite = docker("inspect", "-f", '{{index .Config.Labels "%s.suite"}}' % LABEL,
                           name).stdout.strip()
            if wanted.get(name) != suite:
                vm_destroy(name)
    setup_git_host()
    setup_registry()
    for vm in vms:
        vm_create(vm["name"], vm["ssh_port"], suite=vm["suite"], network=NETWORK,
                  publish=vm["publish"], hostname=vm["hostname"], role="fleet")
    FLEET_FILE.write_text(json.dumps({"vms": vms}, indent=2) + "\n")
    write_ssh_config(vms)
    status(args)


def down(args):
    require_engine()
    names = docker("ps", "-aq", "--filter", "label=%s=fleet" % LABEL).stdout.split()
    if names:
        docker("rm", "-f", "-v", *names)
    vols = docker("volume", "ls", "-q", "--filter", "label=%s=fleet" % LABEL).stdout.split()
    if vols:
        docker("volume", "rm", *vols)
    if exists("network", NETWORK):
        docker("network", "rm", NETWORK)
    shutil.rmtree(STATE / "work", ignore_errors=True)
    for vm in read_fleet():
        forget_host_keys(["[127.0.0.1]:%d" % vm["ssh_port"]])
    forget_host_keys(["[127.0.0.1]:%d" % GIT_HOST["ssh_port"]])
    log("lab is down (%d containers, %d volumes removed)" % (len(names), len(vols)))


def status(args):
    rows = docker("ps", "-a", "--filter", "label=%s" % LABEL,
                  "--format", "{{.Names}}\t{{.Status}}\t{{.Ports}}").stdout.strip()
    print(rows or "lab: nothing runs")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("up")
    p.add_argument("--vms", type=int, help="how many VMs (default: as last time, else 2)")
    p.add_argument("--suites", help="Debian suites of vm1..vmN, cycled (e.g. bookworm,trixie)")
    sub.add_parser("down")
    sub.add_parser("status")
    sub.add_parser("fleet")
    p = sub.add_parser("base-image")
    p.add_argument("--suite", default="bookworm", choices=SUITES)
    p.add_argument("--save", action="store_true")
    p = sub.add_parser("vm-create")
    p.add_argument("name")
    p.add_argument("--ssh-port", type=int, required=True)
    p.add_argument("--suite", default="bookworm", choices=SUITES)
    p.add_argument("--network")
    p.add_argument("--hostname")
    p.add_argument("--publish", action="append", default=[])
    p.add_argument("--role", default="molecule")
    p = sub.add_parser("vm-destroy")
    p.add_argument("name")
    args = parser.parse_args(argv)

    if args.cmd == "up":
        up(args)
    elif args.cmd == "down":
        down(args)
    elif args.cmd == "status":
        status(args)
    elif args.cmd == "fleet":
        print(json.dumps(read_fleet(), indent=2))
    elif args.cmd == "base-image":
        require_engine()
        name, archive = ensure_base_image(args.suite, save=args.save)
        print(name)
        if archive:
            print(archive)
    elif args.cmd == "vm-create":
        require_engine()
        if not re.match(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$", args.name):
            die("vm name %r: use letters, digits, '.', '_' and '-'" % args.name)
        vm_create(args.name, args.ssh_port, suite=args.suite, network=args.network,
                  publish=args.publish, hostname=args.hostname, role=args.role)
    elif args.cmd == "vm-destroy":
        require_engine()
        vm_destroy(args.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
