"""The lab's Debian base images: pulled and completed, else made with debootstrap; saved for reuse."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from .shell import die, docker, log, run
from .state import IMAGE_REPO, LABEL, STATE


# What a fresh Debian cloud image has: systemd, sshd, python3, sudo,
# ca-certificates. No git, no Docker, no nginx: the roles install what they need.
PACKAGES = ["systemd", "systemd-sysv", "dbus", "python3", "openssh-server", "sudo",
            "ca-certificates", "iproute2", "procps", "less"]


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
