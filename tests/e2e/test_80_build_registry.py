"""Building through the lab registry (Debian's docker-registry on the git host, TLS with the lab's
own CA, htpasswd): base images FROM the registry refreshed only when asked (apps_base_refresh).
Build once by push and pull by digest (the lab inventory's apps_build_registry) is shown by
test_50_fleet's zero-failed-requests deploy. The credentials are passed per
push and pull: absent from -vvv output and from /root/.docker/config.json. Reuses the converged
fleet of test_50_fleet (site.yml once per session); runs after the registry tests of test_75."""

from __future__ import annotations

import json
import re
import subprocess
import uuid

import pytest

from conftest import run_playbook
from lab_support import commit_and_push, lab, lab_host, lab_tool, read_work_file  # noqa: F401  # pylint: disable=unused-import
from test_50_fleet import fleet, image_info, running_image_id, served_version, task_results  # noqa: F401  # pylint: disable=unused-import
from test_70_lifecycle import lab_apps
from test_75_registry import REGISTRY, docker_config_auths, registry_password

VMS = ("vm1", "vm2")
BASE = REGISTRY + "/lab/debian:bookworm"


def assert_no_secret(proc, password):
    output = proc.stdout + proc.stderr
    assert password not in output, "the registry password is in the output"
    for vm in VMS:
        assert REGISTRY not in docker_config_auths(vm), vm


@pytest.fixture(scope="module")
def web_from_registry_base(tmp_path_factory):
    """Extra vars: the lab's apps, web building FROM the lab registry's base image."""
    apps = lab_apps()
    for app in apps:
        if app["name"] == "web":
            app["build"] = dict(app.get("build") or {}, args={"BASE_IMAGE": BASE})
    path = tmp_path_factory.mktemp("base-refresh") / "apps.json"
    path.write_text(json.dumps({"appfleet_apps": apps}))
    return "@%s" % path


def push_newer_base():
    """A newer lab/debian:bookworm in the lab registry (the base plus a label): (image id, label)."""
    local = "appfleet-lab/debian:refresh-%s" % uuid.uuid4().hex[:8]
    dockerfile = "FROM appfleet-lab/debian:bookworm\nLABEL io.appfleet.lab.base=%s\n" % local
    subprocess.run(["docker", "build", "-q", "-t", local, "-"], input=dockerfile, text=True,
                   capture_output=True, check=True, timeout=300)
    try:
        lab_tool.push_registry_image("lab/debian:bookworm", {"image": local}, *lab_tool.registry_credentials())
        return subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", local],
                              capture_output=True, text=True, check=True).stdout.strip(), local
    finally:
        subprocess.run(["docker", "image", "rm", local], capture_output=True, check=False)


def deploy_web(extra, *args, verbose=False):
    more = ["-vvv"] if verbose else []
    # The default serial (1): vm2 takes vm1's image (build once), so both run one image id.
    return run_playbook("playbooks/deploy.yml", "-i", "inventories/lab", "-e", extra, "-e", "apps=web",
                        *args, *more, check=False)


def test_base_from_the_registry_is_refreshed_when_asked(fleet, web_from_registry_base):
    """web builds FROM git:5000/lab/debian:bookworm: image_build pulls it with the credentials of
    apps_registry_logins. With apps_base_refresh a newer base pushed there rebuilds web on it, on
    both VMs one image id, the password nowhere. That a newer base goes unnoticed without
    base_refresh, that check mode pulls nothing and that a second refresh changes nothing are the
    module's own (tests/integration/test_image_build_base_refresh.py)."""
    password = registry_password()
    first = deploy_web(web_from_registry_base, verbose=True)
    assert first.returncode == 0, first.stdout[-8000:]
    assert_no_secret(first, password)
    old_base = {vm: image_info(vm, BASE)[0] for vm in VMS}
    assert all(old_base.values()) and len(set(old_base.values())) == 1, old_base
    before = {vm: running_image_id(vm, "web") for vm in VMS}
    version = {vm: served_version(vm, "web") for vm in VMS}

    new_base, new_label = push_newer_base()
    assert new_base != old_base["vm1"]

    refresh = deploy_web(web_from_registry_base, "-e", "apps_base_refresh=true", verbose=True)
    assert refresh.returncode == 0, refresh.stdout[-8000:]
    assert_no_secret(refresh, password)
    assert "changed" in task_results(refresh.stdout, "Build the image of web").values(), refresh.stdout[-8000:]
    after = {vm: running_image_id(vm, "web") for vm in VMS}
    for vm in VMS:
        assert image_info(vm, BASE)[0] == new_base, vm
        assert after[vm] != before[vm], vm
        # Built FROM the new base: web's image carries the label only that base has.
        labels = json.loads(lab_host(vm).check_output(
            "sudo docker image inspect --format '{{json .Config.Labels}}' %s" % after[vm]))
        assert labels.get("io.appfleet.lab.base") == new_label, (vm, labels)
        assert served_version(vm, "web") == version[vm], vm
    assert after["vm1"] == after["vm2"], after
    assert not re.search(r"Traceback", refresh.stdout)
