"""docs/security.md, CIS Docker Benchmark §5: the rows marked "default", observed on a real app container.

One app deployed by app_container with nothing but its name, image, port, health and a secret
(the secret gives it the one bind mount the collection adds); then `docker inspect` and the
container's own /proc show what each row claims. The refusals of options the module does not
have are in tests/unit/plugins/modules/test_app_container_spec.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import run_module  # noqa: E402  (tests/conftest.py helpers)

# The fixtures app, app_images, nginx and state_dir (private nginx, test images, one app per test) live there.
pytest_plugins = ["app_container.fixtures"]

SECRET = "cis-runtime-secret-value"


def _proc_status(container):
    """{field: value} of /proc/1/status inside the container (its main process)."""
    code, out = container.exec_run(["/bin/busybox", "cat", "/proc/1/status"])
    assert code == 0, out
    return dict(line.split(":", 1) for line in out.decode().splitlines() if ":" in line)


def test_default_app_container_meets_the_cis_runtime_defaults(app, docker_client):
    res = run_module("app_container", app.args(image="afb-app:v1", secret_env={"API_TOKEN": SECRET}))
    assert res.get("changed") is True and res["action"] == "created", res
    (container,) = app.containers()
    attrs = container.attrs
    host = attrs["HostConfig"]

    assert host["Privileged"] is False  # 5.5
    assert host["NetworkMode"] in ("default", "bridge")  # 5.10, 5.30: the default bridge, never host
    assert list(attrs["NetworkSettings"]["Networks"]) == ["bridge"]
    assert host["PidMode"] == ""  # 5.16
    assert host["IpcMode"] in ("private", "shareable")  # 5.17 (the engine's default, not host)
    assert host["UTSMode"] == ""  # 5.21
    assert host["UsernsMode"] == ""  # 5.31
    assert not host["Devices"] and not host["DeviceCgroupRules"]  # 5.18
    assert not host["Ulimits"]  # 5.19
    assert host["CgroupParent"] == ""  # 5.25: the engine's default parent
    assert host["RestartPolicy"] == {"Name": "unless-stopped", "MaximumRetryCount": 0}  # 5.15
    assert host["PidsLimit"] == 1024  # 5.29
    assert host["SecurityOpt"] == ["no-new-privileges:true"]  # 5.26; no seccomp=unconfined (5.22)
    assert not host["CapAdd"]  # 5.4: Docker's reduced set, nothing added

    # 5.6, 5.20, 5.32: the one mount is the app's read-only secret file, private propagation;
    # no Docker socket.
    (mount,) = attrs["Mounts"]
    assert mount["Destination"] == "/run/secrets/API_TOKEN" and mount["RW"] is False, mount
    assert mount["Type"] == "bind" and mount["Propagation"] == "rprivate", mount
    assert not any("docker.sock" in (m.get("Source") or "") for m in attrs["Mounts"])

    # 5.14: the app's port is published on loopback only.
    published = attrs["NetworkSettings"]["Ports"]
    assert {b["HostIp"] for values in published.values() for b in values or []} == {"127.0.0.1"}, published

    # 2.17, 5.22, 5.26 in the kernel's own words: a seccomp filter is on and no process can gain
    # privileges (docker info lists the engine's default profile).
    status = _proc_status(container)
    assert status["NoNewPrivs"].strip() == "1", status
    if any(opt.startswith("name=seccomp") for opt in docker_client.info().get("SecurityOptions", [])):
        assert status["Seccomp"].strip() == "2", status  # 2 = SECCOMP_MODE_FILTER
