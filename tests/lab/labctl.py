"""labctl: the local lab fleet of appfleet.docker.

The lab is a real fleet on this machine: two "VMs" (systemd containers with
sshd, python3 and sudo, and no Docker) and a git host serving the sample apps
over SSH. Ansible reaches each by SSH on a port published on 127.0.0.1.

    labctl.py up            base image, keys, git host, vm1, vm2 (idempotent)
    labctl.py down          remove every container, volume and network the lab made
    labctl.py status        what runs
    labctl.py base-image [--suite bookworm] [--save]
    labctl.py vm-create NAME --ssh-port PORT [--suite S] [--network N] [--publish SPEC]...
    labctl.py vm-destroy NAME

Everything the lab creates carries the label io.appfleet.lab; state (SSH keys,
image archives, the sample apps' work trees) lives in .lab/ (APPFLEET_LAB_DIR).
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STATE = Path(os.environ.get("APPFLEET_LAB_DIR", REPO / ".lab")).resolve()
KEY = STATE / "ssh" / "id_ed25519"
DEPLOY_KEY = STATE / "ssh" / "deploy_key"
LABEL = "io.appfleet.lab"
IMAGE_REPO = "appfleet-lab/debian"
NETWORK = "appfleet-lab"
APPS_DIR = REPO / "examples" / "apps"

# The fleet: container name -> hostname, SSH port, extra published ports.
GIT_HOST = {"name": "appfleet-git", "hostname": "git", "ssh_port": 2200, "publish": []}
VMS = [
    {"name": "appfleet-vm1", "hostname": "vm1", "ssh_port": 2201,
     "publish": ["127.0.0.1:8001:80", "127.0.0.1:8441:443"]},
    {"name": "appfleet-vm2", "hostname": "vm2", "ssh_port": 2202,
     "publish": ["127.0.0.1:8002:80", "127.0.0.1:8442:443"]},
]

# What a freshly installed cloud VM has: systemd, sshd, python3, sudo (and git,
# which the sample apps' host needs). No Docker.
PACKAGES = ["systemd", "systemd-sysv", "dbus", "python3", "openssh-server", "sudo",
            "ca-certificates", "iproute2", "procps", "git", "less"]

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

SSH_OPTS = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5"]


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


def build_from_registry(suite, name):
    """Real users have a registry: start from the official debian image."""
    if docker("pull", "debian:%s" % suite, check=False, timeout=300).returncode != 0:
        return False
    log("pulled debian:%s; adding systemd, sshd, python3, sudo" % suite)
    dockerfile = (
        "FROM debian:%s\n"
        "ENV container=docker\n"
        "RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "
        "--no-install-recommends %s && rm -rf /var/lib/apt/lists/*\n"
        "%s\n"
        'STOPSIGNAL SIGRTMIN+3\nCMD ["/lib/systemd/systemd"]\n'
    ) % (suite, " ".join(PACKAGES), "RUN " + " && ".join(ROOTFS_FIXUPS))
    with tempfile.TemporaryDirectory() as ctx:
        Path(ctx, "Dockerfile").write_text(dockerfile)
        docker("build", "-q", "-t", name, ctx, capture=False, timeout=1200)
    return True


# Applied to every base image: host keys and machine id made per VM at first
# boot; no console getty (containers have no tty1).
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
]


def build_with_debootstrap(suite, name):
    """No registry: debootstrap from the mirror the machine's apt sources use."""
    if shutil.which("debootstrap") is None:
        die("no registry to pull debian:%s and no debootstrap; run `make deps`" % suite)
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
             "-c", "ENV container=docker", "-", name],
            stdin=tar.stdout, capture_output=True, text=True, timeout=600, check=False)
        tar.stdout.close()
        if tar.wait() != 0 or imp.returncode != 0:
            die("docker import of the rootfs failed: %s" % imp.stderr)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def ensure_base_image(suite, save=False):
    name = image_name(suite)
    if image_id(name):
        log("base image %s present, reused" % name)
    elif not build_from_registry(suite, name):
        log("cannot pull debian:%s (no registry reachable); falling back to debootstrap" % suite)
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

def ssh_cmd(port, user="root", key=KEY):
    return ["ssh"] + SSH_OPTS + ["-i", str(key), "-p", str(port), "%s@127.0.0.1" % user]


def wait_for(what, probe, timeout=90, interval=1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(interval)
    die("timed out after %s s waiting for %s" % (timeout, what))


def vm_create(name, ssh_port, suite="bookworm", network=None, publish=(), hostname=None,
              role="vm"):
    """Create (or start) a systemd container that behaves like a fresh VM."""
    ensure_keys()
    image = ensure_base_image(suite)[0]
    state = docker("inspect", "-f", "{{.State.Running}}", name, check=False)
    if state.returncode != 0:
        volume = name + "-docker"
        if not exists("volume", volume):
            docker("volume", "create", "--label", "%s=%s" % (LABEL, role), volume)
        cmd = ["run", "-d", "--name", name, "--hostname", hostname or name,
               "--label", "%s=%s" % (LABEL, role),
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
    pub = KEY.with_suffix(".pub").read_text()
    docker("exec", "-i", name, "sh", "-c",
           "install -d -m 0700 /root/.ssh && cat > /root/.ssh/authorized_keys "
           "&& chmod 0600 /root/.ssh/authorized_keys", input=pub)

    def ssh_ok():
        return run(ssh_cmd(ssh_port) + ["true"], check=False, timeout=20).returncode == 0

    wait_for("SSH on 127.0.0.1:%d (%s)" % (ssh_port, name), ssh_ok)


def vm_destroy(name):
    if exists("container", name):
        docker("rm", "-f", "-v", name)
        log("removed container %s" % name)
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


def setup_git_host():
    name = GIT_HOST["name"]
    vm_create(name, GIT_HOST["ssh_port"], network=NETWORK, hostname=GIT_HOST["hostname"],
              role="fleet")
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


# --- whole lab --------------------------------------------------------------

def write_ssh_config():
    """`ssh -F .lab/ssh/config vm1` (and testinfra) reach the lab hosts by name."""
    lines = []
    for host in [GIT_HOST] + VMS:
        lines += ["Host %s" % host["hostname"], "  HostName 127.0.0.1",
                  "  Port %d" % host["ssh_port"], "  User root", "  IdentityFile %s" % KEY,
                  "  IdentitiesOnly yes", "  StrictHostKeyChecking no",
                  "  UserKnownHostsFile /dev/null", "  LogLevel ERROR", ""]
    (STATE / "ssh" / "config").write_text("\n".join(lines))


def up(args):
    require_engine()
    ensure_keys()
    write_ssh_config()
    ensure_base_image("bookworm", save=True)
    if not exists("network", NETWORK):
        docker("network", "create", "--label", "%s=fleet" % LABEL, NETWORK)
    setup_git_host()
    for vm in VMS:
        vm_create(vm["name"], vm["ssh_port"], network=NETWORK, publish=vm["publish"],
                  hostname=vm["hostname"], role="fleet")
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
    log("lab is down (%d containers, %d volumes removed)" % (len(names), len(vols)))


def status(args):
    rows = docker("ps", "-a", "--filter", "label=%s" % LABEL,
                  "--format", "{{.Names}}\t{{.Status}}\t{{.Ports}}").stdout.strip()
    print(rows or "lab: nothing runs")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("up")
    sub.add_parser("down")
    sub.add_parser("status")
    p = sub.add_parser("base-image")
    p.add_argument("--suite", default="bookworm", choices=["bookworm", "trixie"])
    p.add_argument("--save", action="store_true")
    p = sub.add_parser("vm-create")
    p.add_argument("name")
    p.add_argument("--ssh-port", type=int, required=True)
    p.add_argument("--suite", default="bookworm", choices=["bookworm", "trixie"])
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
