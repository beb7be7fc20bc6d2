"""Running commands for the lab: docker, ssh-keygen, git; messages and waits."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time


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


def wait_for(what, probe, timeout=90, interval=1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(interval)
    die("timed out after %s s waiting for %s" % (timeout, what))
