"""The lab's SSH keys, and the host keys recorded for its VMs (known_hosts)."""

from __future__ import annotations

import fcntl
import os

from .shell import docker, log, run
from .state import DEPLOY_KEY, KEY, KNOWN_HOSTS, STATE


def ensure_keys():
    (STATE / "ssh").mkdir(parents=True, exist_ok=True)
    os.chmod(STATE / "ssh", 0o700)
    for key, comment in ((KEY, "appfleet-lab-operator"), (DEPLOY_KEY, "appfleet-lab-deploy")):
        if not key.exists():
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(key)])
            log("generated SSH key %s" % key)


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
