"""An `image:` app from the lab registry (Debian's docker-registry on the git host, TLS with the
lab's own CA, htpasswd): the engine role trusts the CA, each pull gets the credentials for that
pull only, and they are found neither in -vvv output nor in /root/.docker/config.json. Reuses the
converged fleet of test_50_fleet (site.yml once per session)."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from conftest import REPO, run_playbook
from lab_support import http_get, lab, lab_host  # noqa: F401  # pylint: disable=unused-import
from test_50_fleet import BOTH, fleet, recap, running_image_id  # noqa: F401  # pylint: disable=unused-import
from test_70_lifecycle import lab_apps

VMS = ("vm1", "vm2")
APP = "hello"
REGISTRY = "git:5000"
IMAGE = REGISTRY + "/lab/hello:1"
# labctl pushed it from this machine, through the registry's port on 127.0.0.1.
LOCAL_IMAGE = "127.0.0.1:5500/lab/hello:1"
STATE = REPO / ".lab" / "registry"


def registry_password():
    return (STATE / "password").read_text().strip()


@pytest.fixture(scope="module")
def apps_with_hello(tmp_path_factory):
    """Extra vars: the lab's apps plus `hello`, run from the lab registry's image."""
    hello = {"name": APP, "image": IMAGE, "port": 8080, "proxy": {"server_name": APP + ".lab.test"},
             "health": {"path": "/health", "timeout": 60}}
    path = tmp_path_factory.mktemp("registry") / "apps.json"
    path.write_text(json.dumps({"appfleet_apps": lab_apps() + [hello]}))
    return "@%s" % path


def docker_config_auths(vm):
    """The registries root's docker config on the VM holds credentials for ({} without a file)."""
    host = lab_host(vm)
    config = host.file("/root/.docker/config.json")
    if not config.exists:
        return {}
    return json.loads(config.content_string).get("auths", {})


def test_engine_trusts_the_lab_registry_ca(fleet):
    ca = (STATE / "ca.crt").read_text().strip()
    for vm in VMS:
        host = lab_host(vm)
        installed = host.file("/etc/docker/certs.d/%s/ca.crt" % REGISTRY)
        assert installed.exists and installed.mode == 0o644 and installed.user == "root", vm
        assert installed.content_string.strip() == ca, vm


def test_image_app_is_pulled_with_credentials_left_nowhere(fleet, apps_with_hello):
    password = registry_password()
    proc = run_playbook("playbooks/deploy.yml", *BOTH, "-i", "inventories/lab", "-e", apps_with_hello,
                        "-e", "apps=" + APP, "-vvv", check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, proc.stdout[-8000:]
    assert password not in output
    pushed = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", LOCAL_IMAGE],
                            capture_output=True, text=True, check=True).stdout.strip()
    for vm in VMS:
        status, body = http_get(vm, APP, "/")
        assert status == 200 and body.split()[1] == "hello-1", (vm, status, body)
        # The very image labctl pushed: same id on both VMs as on this machine.
        assert running_image_id(vm, APP) == pushed, vm
        assert REGISTRY not in docker_config_auths(vm), vm
    again = run_playbook("playbooks/deploy.yml", *BOTH, "-i", "inventories/lab", "-e", apps_with_hello,
                         "-e", "apps=" + APP)
    for vm, row in recap(again.stdout).items():
        assert row == (0, 0, 0), (vm, again.stdout[-6000:])


def test_image_app_without_credentials_fails_naming_the_registry(fleet, apps_with_hello):
    """Without the credentials the registry refuses the pull: the run fails saying so, and the
    container that runs keeps serving."""
    before = {vm: running_image_id(vm, APP) for vm in VMS}
    proc = run_playbook("playbooks/deploy.yml", *BOTH, "-i", "inventories/lab", "-e", apps_with_hello,
                        "-e", "apps=" + APP, "-e", '{"apps_registry_logins": []}', check=False)
    out = re.sub(r"\s+", " ", proc.stdout)
    assert proc.returncode != 0, out[-4000:]
    assert "Pull the image of %s" % APP in out and IMAGE in out, out[-4000:]
    assert re.search(r"credentials|unauthori[sz]ed|authentication", out, re.I), out[-4000:]
    for vm in VMS:
        assert running_image_id(vm, APP) == before[vm], vm
        status, body = http_get(vm, APP, "/")
        assert status == 200 and body.split()[1] == "hello-1", (vm, status, body)
