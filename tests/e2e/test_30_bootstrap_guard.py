"""Bootstrap never locks the operator out: on a fresh cloud-like VM whose deploy
user would get a key the controller does not hold, bootstrap refuses to harden
sshd, and the initial user still logs in. A VM of its own, made and removed here."""

from __future__ import annotations

import os
import re
import subprocess

import pytest
import yaml

from conftest import run_playbook
from lab_support import lab, lab_tool, labctl, start_fleet_converge  # noqa: F401  # pylint: disable=unused-import

NAME = "appfleet-e2e-guard"
PORT = 2240


@pytest.fixture(scope="module")
def guard_vm(request, lab, tmp_path_factory):
    # The fleet's VMs are not this module's: their site.yml (the fleet fixture's, when
    # the session has tests that use it) runs meanwhile, after test_10_lab.py saw them fresh.
    if any("fleet" in getattr(item, "fixturenames", ()) for item in request.session.items):
        start_fleet_converge()
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


def _guard_ssh(user, *extra):
    """ssh to the guard VM as ``user``, host key checked, with options ``extra``."""
    return ["ssh", "-o", "StrictHostKeyChecking=yes",
            "-o", "UserKnownHostsFile=%s" % (lab_tool.STATE / "ssh" / "known_hosts"),
            "-p", str(PORT)] + list(extra) + ["%s@127.0.0.1" % user]


def test_the_login_check_refuses_a_password_only_login(guard_vm, tmp_path):
    """The deploy user has a password that sshd accepts and ansible_password gives, but not the
    controller's key: the check logs in by key only, so it refuses, and sshd keeps passwords on."""
    password = "e2e-Guard-%d" % PORT
    crypted = subprocess.run(["openssl", "passwd", "-6", "-salt", "e2eguard", password], capture_output=True,
                             text=True, check=True).stdout.strip()
    # Password login on for this VM (a drop-in read before any other).
    initial = _guard_ssh("debian", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i", str(lab_tool.KEY))
    enable = subprocess.run(initial + ["printf 'PasswordAuthentication yes\\n' | sudo tee "
                                       "/etc/ssh/sshd_config.d/01-e2e-password.conf >/dev/null "
                                       "&& sudo systemctl reload ssh"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert enable.returncode == 0, enable.stderr
    inventory = yaml.safe_load(guard_vm.read_text())
    host = inventory["all"]["children"]["fleet"]["hosts"]["guard"]
    # The role sets the deploy user's password; the controller offers it (no sshpass needed).
    host.update(bootstrap_user_password_hash=crypted, ansible_password=password,
                ansible_ssh_password_mechanism="ssh_askpass")
    hosts = tmp_path / "hosts.yml"
    hosts.write_text(yaml.safe_dump(inventory))

    proc = run_playbook("playbooks/bootstrap.yml", "-i", str(hosts), check=False)
    assert proc.returncode != 0
    out = re.sub(r"\s+", " ", proc.stdout)
    assert re.search(r"a new SSH login as the deploy user deploy with the key \S*/id_ed25519 failed", out), out[-4000:]
    assert "the check logs in by public key only, a password never counts" in out
    assert "sshd is left as it was" in out
    dropin = subprocess.run(initial + ["sudo test -e /etc/ssh/sshd_config.d/00-appfleet-hardening.conf"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert dropin.returncode == 1, dropin

    # The password was a way in all along: a check that took it would have passed.
    askpass = tmp_path / "askpass"
    askpass.write_text("#!/bin/sh\necho '%s'\n" % password)
    askpass.chmod(0o700)
    env = dict(os.environ, SSH_ASKPASS=str(askpass), SSH_ASKPASS_REQUIRE="force", DISPLAY=":0")
    by_password = subprocess.run(
        _guard_ssh("deploy", "-o", "PreferredAuthentications=password", "-o", "PubkeyAuthentication=no",
                   "-o", "NumberOfPasswordPrompts=1") + ["id -un"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, check=False, env=env)
    assert by_password.returncode == 0 and by_password.stdout.strip() == "deploy", by_password.stderr
