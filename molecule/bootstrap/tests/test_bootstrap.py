"""Observable state of a host after appfleet.docker.bootstrap."""

from __future__ import annotations

import os
import subprocess
import sys

import yaml

# The lab's known_hosts (linked into the ephemeral directory by
# ../shared/create.yml), as for the instances' Ansible connections.
KNOWN_HOSTS = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "known_hosts")
# A new login each time (no shared connection), host key checked.
SSH_OPTS = ["-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=%s" % KNOWN_HOSTS,
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "ControlPath=none",
            "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10", "-o", "IdentitiesOnly=yes"]
# The cloud image's initial user (tests/lab/labctl.py INITIAL_USER).
INITIAL_USER = "debian"


def instance(host):
    name = host.backend.get_hostname()
    with open(os.environ["MOLECULE_INSTANCE_CONFIG"], encoding="utf-8") as handle:
        return next(item for item in yaml.safe_load(handle) if item["instance"] == name)


def ssh(host, user, command, *extra):
    inst = instance(host)
    cmd = (["ssh"] + SSH_OPTS + list(extra)
           + ["-i", inst["identity_file"], "-p", str(inst["port"]), "%s@127.0.0.1" % user, command])
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


def permit_root_login(host):
    """The PermitRootLogin value this instance was converged with (molecule.yml host_vars)."""
    return host.ansible.get_variables().get("bootstrap_sshd_permit_root_login", "prohibit-password")


def test_deploy_user_exists(host):
    user = host.user("deploy")
    assert user.exists
    assert user.shell == "/bin/bash"
    keys = host.file("/home/deploy/.ssh/authorized_keys")
    assert keys.user == "deploy" and keys.mode == 0o600
    assert keys.content_string.startswith("ssh-ed25519 ")
    assert host.file("/home/deploy/.ssh").mode == 0o700


def test_key_login_as_deploy_works_from_the_controller(host):
    proc = ssh(host, "deploy", "id -un", "-o", "BatchMode=yes")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "deploy"


def test_deploy_user_has_passwordless_sudo(host):
    proc = ssh(host, "deploy", "sudo -n id -u", "-o", "BatchMode=yes")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "0"


def test_password_login_is_refused(host):
    # Offer only password authentication: sshd must not even accept the method.
    proc = ssh(host, "deploy", "true", "-o", "BatchMode=yes", "-o", "PubkeyAuthentication=no",
               "-o", "PreferredAuthentications=password,keyboard-interactive")
    assert proc.returncode == 255
    assert "password" not in proc.stderr.split("(")[-1], proc.stderr


def test_sshd_effective_config_is_hardened(host):
    config = host.check_output("sshd -T")
    settings = dict(line.split(" ", 1) for line in config.splitlines() if " " in line)
    assert settings["passwordauthentication"] == "no"
    assert settings["kbdinteractiveauthentication"] == "no"
    # sshd -T spells prohibit-password "without-password".
    assert settings["permitrootlogin"] == {"prohibit-password": "without-password", "no": "no"}[
        permit_root_login(host)]
    assert settings["pubkeyauthentication"] == "yes"
    dropin = host.file("/etc/ssh/sshd_config.d/00-appfleet-hardening.conf")
    assert dropin.exists and dropin.user == "root" and dropin.mode == 0o644


def test_root_login_is_refused(host):
    proc = ssh(host, "root", "id -un", "-o", "BatchMode=yes")
    assert "root" not in proc.stdout.split(), proc.stdout
    if permit_root_login(host) == "no":
        # sshd itself refuses root, whatever key is offered.
        assert proc.returncode == 255, (proc.returncode, proc.stdout, proc.stderr)
        assert "Permission denied" in proc.stderr, proc.stderr
    else:
        # By key only: sshd accepts the key, cloud-init's forced command in
        # root's authorized_keys refuses the session (disable_root).
        assert proc.returncode == 142, (proc.returncode, proc.stdout, proc.stderr)
        assert 'Please login as the user \"%s\" rather than the user \"root\"' % INITIAL_USER in proc.stdout


def test_initial_user_still_logs_in_with_sudo(host):
    proc = ssh(host, INITIAL_USER, "id -un; sudo -n id -u", "-o", "BatchMode=yes")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [INITIAL_USER, "0"]


def test_a_changed_host_key_fails_the_connection(host, tmp_path):
    """The instances' Ansible connections check the host key against the lab's
    known_hosts: with this VM's keys replaced by another key in a copy of that
    file, a new connection with the same inventory fails; with the true copy it works."""
    name = host.backend.get_hostname()
    pattern = "[127.0.0.1]:%d" % instance(host)["port"]
    with open(KNOWN_HOSTS, encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    assert any(line.split(" ", 1)[0] == pattern for line in lines), (pattern, KNOWN_HOSTS)
    with open(os.environ["MOLECULE_INVENTORY_FILE"], encoding="utf-8") as handle:
        inventory = handle.read()
    hostvars = yaml.safe_load(inventory)["all"]["hosts"][name]
    assert "UserKnownHostsFile=%s" % KNOWN_HOSTS in hostvars["ansible_ssh_common_args"].split()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")],
                   check=True, timeout=30)
    other = " ".join((tmp_path / "other.pub").read_text().split()[:2])
    (tmp_path / "true_hosts").write_text("\n".join(lines) + "\n")
    (tmp_path / "changed_hosts").write_text(
        "\n".join([line for line in lines if line.split(" ", 1)[0] != pattern]
                  + ["%s %s" % (pattern, other)]) + "\n")
    # No shared connection that would skip the key exchange.
    env = dict(os.environ, ANSIBLE_SSH_ARGS="-o ControlMaster=no -o ControlPath=none",
               ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    results = {}
    for case in ("true_hosts", "changed_hosts"):
        inventory_file = tmp_path / ("inventory_%s.yml" % case)
        inventory_file.write_text(inventory.replace(KNOWN_HOSTS, str(tmp_path / case)))
        results[case] = subprocess.run(
            [os.path.join(os.path.dirname(sys.executable), "ansible"), name, "-i", str(inventory_file),
             "-m", "ansible.builtin.ping"],
            capture_output=True, text=True, timeout=120, env=env, check=False)
    assert results["true_hosts"].returncode == 0, results["true_hosts"].stdout
    assert '"ping": "pong"' in results["true_hosts"].stdout
    changed = results["changed_hosts"]
    assert changed.returncode != 0 and "UNREACHABLE" in changed.stdout, changed.stdout
    assert "Host key verification failed" in changed.stdout, changed.stdout


def test_sshd_checker_refuses_a_bad_dropin_and_accepts_the_good_one(host):
    good = host.run("/usr/local/sbin/appfleet-sshd-check /etc/ssh/sshd_config.d/00-appfleet-hardening.conf")
    assert good.rc == 0, good.stderr
    host.run("printf 'PasswordAuthentication maybe\\n' > /tmp/afc-bad.conf")
    bad = host.run("/usr/local/sbin/appfleet-sshd-check /tmp/afc-bad.conf")
    assert bad.rc != 0
    assert "00-appfleet-hardening.conf line 1" in bad.stderr and '"maybe"' in bad.stderr, bad.stderr
    # The live drop-in is untouched by a check.
    assert "PasswordAuthentication no" in host.file(
        "/etc/ssh/sshd_config.d/00-appfleet-hardening.conf").content_string


def test_sudoers_dropin(host):
    sudoers = host.file("/etc/sudoers.d/90-appfleet-deploy")
    assert sudoers.mode == 0o440 and sudoers.user == "root"
    assert host.run("visudo -cf /etc/sudoers.d/90-appfleet-deploy").rc == 0


def test_base_packages_and_services(host):
    for name in ("python3", "python3-apt", "sudo", "ca-certificates", "unattended-upgrades",
                 "systemd-timesyncd"):
        assert host.package(name).is_installed, name
    assert host.service("systemd-timesyncd").is_enabled
    assert "NTP=0.debian.pool.ntp.org" in host.file(
        "/etc/systemd/timesyncd.conf.d/50-appfleet.conf").content_string


def test_unattended_upgrades_are_on(host):
    out = host.check_output("apt-config dump APT::Periodic")
    assert 'APT::Periodic::Unattended-Upgrade "1";' in out
    assert 'APT::Periodic::Update-Package-Lists "1";' in out
    assert 'Unattended-Upgrade::Automatic-Reboot "false";' in host.check_output(
        "apt-config dump Unattended-Upgrade::Automatic-Reboot")


def test_hostname(host):
    assert host.check_output("hostname") == host.backend.get_hostname()
