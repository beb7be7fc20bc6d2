"""Bootstrap never locks the operator out: on a fresh cloud-like VM whose deploy
user would get a key the controller does not hold, bootstrap refuses to harden
sshd, and the initial user still logs in. A VM of its own, made and removed here."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from conftest import run_playbook
from lab_support import lab, lab_tool, labctl  # noqa: F401  # pylint: disable=unused-import

NAME = "appfleet-e2e-guard"
PORT = 2240


@pytest.fixture(scope="module")
def guard_vm(lab, tmp_path_factory):
    made = labctl("vm-create", NAME, "--ssh-port", str(PORT), "--role", "fleet")
    assert made.returncode == 0, made.stderr
    tmp = tmp_path_factory.mktemp("guard")
    # A key pair the controller will not use: the deploy user gets its public half.
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp / "other")],
                   check=True)
    state = lab_tool.STATE
    inventory = {"all": {"children": {"fleet": {"hosts": {"guard": {
        "ansible_host": "127.0.0.1", "ansible_port": PORT,
        "ansible_user": "deploy", "appfleet_initial_user": "debian",
        "ansible_ssh_private_key_file": str(state / "ssh" / "id_ed25519"),
        "ansible_ssh_common_args": "-o StrictHostKeyChecking=yes -o UserKnownHostsFile=%s"
                                   % (state / "ssh" / "known_hosts"),
        "bootstrap_authorized_keys": [(tmp / "other.pub").read_text().strip()],
        "bootstrap_sshd_permit_root_login": "no",
        # Only what the guard needs: keep the run short.
        "bootstrap_unattended_upgrades": False,
        "bootstrap_timesync": False,
    }}}}}}
    (tmp / "hosts.yml").write_text(yaml.safe_dump(inventory))
    yield tmp / "hosts.yml"
    labctl("vm-destroy", NAME)


def test_bootstrap_refuses_to_harden_sshd_when_the_deploy_key_does_not_log_in(guard_vm):
    proc = run_playbook("playbooks/bootstrap.yml", "-i", str(guard_vm), check=False)
    assert proc.returncode != 0
    out = re.sub(r"\s+", " ", proc.stdout)
    assert "bootstrapping as the initial user debian" in out
    assert re.search(r"a new SSH login as the deploy user deploy with the key \S*/id_ed25519 failed", out), out[-4000:]
    assert "sshd is left as it was" in out
    # Nothing of the hardening landed; sshd still takes the initial user's key.
    ssh = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
           "-o", "UserKnownHostsFile=%s" % (lab_tool.STATE / "ssh" / "known_hosts"),
           "-o", "IdentitiesOnly=yes", "-i", str(lab_tool.KEY), "-p", str(PORT)]
    dropin = subprocess.run(ssh + ["debian@127.0.0.1", "sudo test -e /etc/ssh/sshd_config.d/00-appfleet-hardening.conf"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert dropin.returncode == 1, dropin
    again = subprocess.run(ssh + ["debian@127.0.0.1", "id -un"], capture_output=True, text=True,
                           timeout=60, check=False)
    assert again.returncode == 0 and again.stdout.strip() == "debian", again.stderr
    # The deploy user exists, with the key that was asked for, which the controller lacks.
    deploy = subprocess.run(ssh + ["deploy@127.0.0.1", "true"], capture_output=True, text=True,
                            timeout=60, check=False)
    assert deploy.returncode == 255 and "Permission denied" in deploy.stderr
