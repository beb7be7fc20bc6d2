"""Observable state of a host after appfleet.docker.bootstrap."""

from __future__ import annotations

import os
import subprocess

import yaml

# The lab's known_hosts (linked into the ephemeral directory by
# ../shared/create.yml), as for the instances' Ansible connections.
KNOWN_HOSTS = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "known_hosts")
# A new login each time (no shared connection), host key checked.
SSH_OPTS = ["-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=%s" % KNOWN_HOSTS,
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "ControlPath=none",
            "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10", "-o", "IdentitiesOnly=yes"]


def instance(host):
    name = host.backend.get_hostname()
    with open(os.environ["MOLECULE_INSTANCE_CONFIG"], encoding="utf-8") as handle:
        return next(item for item in yaml.safe_load(handle) if item["instance"] == name)


def ssh(host, user, command, *extra):
    inst = instance(host)
    cmd = (["ssh"] + SSH_OPTS + list(extra)
           + ["-i", inst["identity_file"], "-p", str(inst["port"]), "%s@127.0.0.1" % user, command])
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


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
    assert settings["permitrootlogin"] == "without-password"  # sshd -T spelling of prohibit-password
    assert settings["pubkeyauthentication"] == "yes"
    dropin = host.file("/etc/ssh/sshd_config.d/00-appfleet-hardening.conf")
    assert dropin.exists and dropin.user == "root" and dropin.mode == 0o644


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
