"""The systemd "VM" containers: made like a fresh Debian cloud VM, reached over SSH."""

from __future__ import annotations

from .images import ensure_base_image
from .keys import ensure_keys, forget_host_keys, host_keys, record_host_keys
from .shell import docker, exists, log, run, wait_for
from .state import INITIAL_USER, KEY, LABEL, SSH_OPTS


def vm_spec(index, suite="bookworm"):
    """vmN: SSH on 127.0.0.1:(2200+N), its port 80 on 8000+N and 443 on 8440+N."""
    return {"name": "appfleet-vm%d" % index, "hostname": "vm%d" % index, "suite": suite,
            "ssh_port": 2200 + index, "http_port": 8000 + index, "https_port": 8440 + index,
            "publish": ["127.0.0.1:%d:80" % (8000 + index), "127.0.0.1:%d:443" % (8440 + index)]}


# Capabilities for the systemd containers: all but SYS_RESOURCE, which this
# machine's bounding set lacks (see LAB-NOTES.md).
VM_RUN_FLAGS = [
    "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
    "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
    "--security-opt", "systempaths=unconfined", "--device-cgroup-rule", "a *:* rwm",
    "--cgroupns=host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", "/tmp",
    "--stop-signal", "SIGRTMIN+3", "--stop-timeout", "20",
    # Docker lets anyone in a container bind any port (0); a VM's kernel
    # keeps ports below 1024 for root.
    "--sysctl", "net.ipv4.ip_unprivileged_port_start=1024",
]


def ssh_cmd(port, user=INITIAL_USER, key=KEY):
    return ["ssh"] + SSH_OPTS + ["-i", str(key), "-p", str(port), "%s@127.0.0.1" % user]


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
