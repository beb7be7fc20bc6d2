"""_bootstrap_settings: every rule of the bootstrap role's variables, and its message."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ansible_collections.appfleet.docker.plugins.module_utils import _bootstrap_settings as model

ROLE = Path(__file__).resolve().parents[4] / "roles" / "bootstrap"
VARS = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())
DEFAULTS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx1Q4Nn2e0Y8Yg0gQm3N1h5b8o3S7Wm0cZb2e7QH3lK op@laptop"
HASH = "$6$saltsalt$" + "a" * 86


def problems(**changes):
    values = dict(DEFAULTS, bootstrap_authorized_keys=[KEY])
    values.update(changes)
    return model.bootstrap_problems({name: values[name] for name in model.SHAPES})


def test_defaults_with_a_key_pass():
    assert problems() == []


def test_inputs_of_the_role_are_the_shapes():
    assert set(VARS["_bootstrap_inputs"]) == set(model.SHAPES) == set(DEFAULTS)


def test_missing_setting_is_a_bug():
    with pytest.raises(KeyError):
        model.bootstrap_problems({})


GOOD = {
    "rsa key without comment": {"bootstrap_authorized_keys": ["ssh-rsa " + "A" * 40]},
    "sk key": {"bootstrap_authorized_keys": ["sk-ssh-ed25519@openssh.com " + "A" * 40 + "= yubi key"]},
    "password and sudo": {"bootstrap_sudo_nopasswd": False, "bootstrap_user_password_hash": HASH},
    "yescrypt hash": {"bootstrap_sudo_nopasswd": False, "bootstrap_user_password_hash": "$y$j9T$saltsalt$hash"},
    "hostname": {"bootstrap_hostname": "web-1.example.com"},
    "pinned package": {"bootstrap_extra_packages": ["vim=2:9.0*", "libc6:amd64"]},
    "ntp": {"bootstrap_ntp_servers": ["0.debian.pool.ntp.org", "2001:db8::1"]},
    "reboot at midnight": {"bootstrap_unattended_reboot_time": "00:00"},
    "root login no": {"bootstrap_sshd_permit_root_login": "no"},
    "templated sshd unit": {"bootstrap_sshd_service": "sshd@1.service"},
}


@pytest.mark.parametrize("case", sorted(GOOD))
def test_good_values_pass(case):
    assert problems(**GOOD[case]) == []


BAD = {
    "key as a string": ({"bootstrap_authorized_keys": KEY},
                        ['bootstrap_authorized_keys: give a list of SSH public keys, one string each, for example '
                         '["ssh-ed25519 AAAA... me@laptop"]; got the string "ssh-ed25519 AAAAC3Nza']),
    "ntp servers as a number": ({"bootstrap_ntp_servers": 7},
                                ["bootstrap_ntp_servers: give a list of host names or IP addresses", "got the number 7"]),
    "packages as a mapping": ({"bootstrap_base_packages": {"vim": 1}}, ["bootstrap_base_packages: give a list", "a mapping"]),
    "sudo as a string": ({"bootstrap_sudo_nopasswd": "perhaps"},
                         ['bootstrap_sudo_nopasswd: give true or false; got the string "perhaps"']),
    "reboot time as a number": ({"bootstrap_unattended_reboot_time": 330},
                                ['bootstrap_unattended_reboot_time: give a time HH:MM as a string, for example "03:30"']),
    "root login as false": ({"bootstrap_sshd_permit_root_login": False},
                            ['bootstrap_sshd_permit_root_login: give "no" or "prohibit-password" (quoted',
                             "got the boolean false"]),
    "root login yes": ({"bootstrap_sshd_permit_root_login": "yes"},
                       ['bootstrap_sshd_permit_root_login must be "no" or "prohibit-password"; got "yes"']),
    "no key": ({"bootstrap_authorized_keys": []},
               ["bootstrap_authorized_keys must list at least one SSH public key", "It is empty."]),
    "malformed key": ({"bootstrap_authorized_keys": [KEY, "ssh-ed25519 not base64 at all; rm -rf /"]},
                      ['Malformed entries: ["ssh-ed25519 not base64 at all; rm -rf /"]']),
    "key with a newline": ({"bootstrap_authorized_keys": [KEY + "\n"]}, ["Malformed entries"]),
    "long malformed key cut": ({"bootstrap_authorized_keys": ["x" * 100]}, ['Malformed entries: ["' + "x" * 57 + '..."]']),
    "user with metacharacters": ({"bootstrap_user": "deploy;reboot"},
                                 ['bootstrap_user must be a plain user name other than root', '"deploy;reboot"']),
    "root as deploy user": ({"bootstrap_user": "root"}, ["bootstrap_user must be a plain user name other than root"]),
    "shell with spaces": ({"bootstrap_user_shell": "/bin/sh -c id"}, ["bootstrap_user_shell must be an absolute path"]),
    "no way to root": ({"bootstrap_sudo_nopasswd": False},
                       ['bootstrap_sudo_nopasswd is false but bootstrap_user_password_hash is empty: the deploy user '
                        '"deploy" would have sudo with no password']),
    "not a hash": ({"bootstrap_user_password_hash": "hunter2-secret"},
                   ["bootstrap_user_password_hash is not a crypt(3) hash"]),
    "hostname with metacharacters": ({"bootstrap_hostname": "web$(id)"}, ["bootstrap_hostname must be empty or a valid"]),
    "hostname label too long": ({"bootstrap_hostname": "a" * 64}, ["bootstrap_hostname must be"]),
    "hostname too long": ({"bootstrap_hostname": ".".join(["a" * 60] * 5)}, ["bootstrap_hostname must be"]),
    "package with metacharacters": ({"bootstrap_extra_packages": ["vim && reboot"]},
                                    ['bootstrap_extra_packages must hold Debian package names (optionally '
                                     'name=version); invalid: ["vim && reboot"]']),
    "base package uppercase": ({"bootstrap_base_packages": ["Vim"]}, ["bootstrap_base_packages must hold"]),
    "bad ntp server": ({"bootstrap_ntp_servers": ["pool ntp"]}, ['bootstrap_ntp_servers must hold host names or IP '
                                                                 'addresses; invalid: ["pool ntp"]']),
    "bad reboot time": ({"bootstrap_unattended_reboot_time": "25:00"},
                        ['bootstrap_unattended_reboot_time must be HH:MM, e.g. "03:30"; got "25:00"']),
    "reboot time with a newline": ({"bootstrap_unattended_reboot_time": "03:30\n"}, ["must be HH:MM"]),
    "bad sshd unit": ({"bootstrap_sshd_service": "ssh; reboot"}, ["bootstrap_sshd_service must be a systemd unit name"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_values_are_named(case):
    changes, needles = BAD[case]
    found = problems(**changes)
    assert len(found) == 1, found
    for needle in needles:
        assert needle in found[0], (needle, found[0])


def test_a_password_is_never_shown():
    assert "hunter2" not in " ".join(problems(bootstrap_user_password_hash="hunter2"))


def test_every_problem_at_once():
    found = problems(bootstrap_user="root", bootstrap_authorized_keys="x", bootstrap_hostname="a b", bootstrap_timesync=1)
    assert [p.split(" ")[0] for p in found] == ["bootstrap_authorized_keys:", "bootstrap_timesync:", "bootstrap_user",
                                                "bootstrap_hostname"]


DEBIAN_12 = {"distribution": "Debian", "distribution_major_version": "12", "distribution_version": "12.8",
             "os_family": "Debian"}


def plan(facts=None, home=None, **changes):
    """The plan of the defaults with a key and ``changes``, on Debian 12 unless ``facts`` say otherwise."""
    facts = DEBIAN_12 if facts is None else facts
    values = dict(DEFAULTS, bootstrap_authorized_keys=[KEY])
    values.update(changes)
    return model.bootstrap_plan({name: values[name] for name in model.SHAPES}, facts, home)


def files(result):
    return {item["dest"]: item for item in result["files"]}


@pytest.mark.parametrize("facts, needle", [
    (dict(DEBIAN_12, distribution="Ubuntu", distribution_major_version="24"), "this host is Ubuntu"),
    (dict(DEBIAN_12, distribution_major_version="11"), "this host is Debian 12.8 (os family Debian)"),
    ({"os_family": "RedHat", "distribution": "RedHat"}, "this host is RedHat"),
])
def test_plan_refuses_an_untested_release(facts, needle):
    found = plan(facts)["problems"]
    assert len(found) == 1 and needle in found[0], found
    assert found[0].startswith("appfleet.docker.bootstrap supports the releases it is tested on")


def test_plan_with_problems_gives_only_them():
    assert plan(bootstrap_user="root") == {"problems": [problems(bootstrap_user="root")[0]]}


def test_plan_of_the_defaults():
    result = plan(home="/srv/deploy")
    assert result["problems"] == []
    assert result["packages"] == DEFAULTS["bootstrap_base_packages"] + ["systemd-timesyncd", "unattended-upgrades"]
    assert [d["path"] for d in result["dirs"]] == ["/srv/deploy/.ssh", "/etc/systemd/timesyncd.conf.d"]
    assert result["dirs"][0]["mode"] == "0700" and result["dirs"][0]["owner"] == "deploy"
    written = files(result)
    keys = written["/srv/deploy/.ssh/authorized_keys"]
    assert keys["content"] == KEY + "\n" and keys["mode"] == "0600" and keys["owner"] == "deploy"
    sudoers = written["/etc/sudoers.d/90-appfleet-deploy"]
    assert sudoers["content"].endswith("\ndeploy ALL=(ALL:ALL) NOPASSWD: ALL\n")
    assert sudoers["mode"] == "0440" and sudoers["validate"] == "/usr/sbin/visudo -cf %s"
    assert 'APT::Periodic::Unattended-Upgrade "1";' in written["/etc/apt/apt.conf.d/20auto-upgrades"]["content"]
    assert 'Automatic-Reboot "false";' in written["/etc/apt/apt.conf.d/52appfleet-unattended-upgrades"]["content"]
    assert written[model.SSHD_CHECK]["src"] == "appfleet-sshd-check"
    assert result["timesync"]["content"].endswith("[Time]\n")
    assert "PermitRootLogin prohibit-password\nPasswordAuthentication no\n" in result["sshd_dropin"]
    assert result["in_container"] is False


def test_plan_follows_the_switches():
    result = plan(bootstrap_timesync=False, bootstrap_unattended_upgrades=False, bootstrap_sshd_harden=False,
                  bootstrap_sudo_nopasswd=False, bootstrap_user_password_hash=HASH, bootstrap_user="ops",
                  bootstrap_authorized_keys=[KEY + "  ", KEY], bootstrap_extra_packages=["vim"],
                  bootstrap_sshd_permit_root_login="no")
    assert result["packages"] == DEFAULTS["bootstrap_base_packages"] + ["vim"]
    assert [d["path"] for d in result["dirs"]] == ["/home/ops/.ssh"]
    written = files(result)
    assert sorted(written) == ["/etc/apt/apt.conf.d/20auto-upgrades", "/etc/sudoers.d/90-appfleet-ops",
                               "/home/ops/.ssh/authorized_keys"]
    assert written["/home/ops/.ssh/authorized_keys"]["content"] == KEY + "\n" + KEY + "\n"
    assert written["/etc/sudoers.d/90-appfleet-ops"]["content"].endswith("\nops ALL=(ALL:ALL) ALL\n")
    assert 'APT::Periodic::Unattended-Upgrade "0";' in written["/etc/apt/apt.conf.d/20auto-upgrades"]["content"]
    assert result["timesync"] is None
    assert "PermitRootLogin no\n" in result["sshd_dropin"]


@pytest.mark.parametrize("virtualization, inside", [
    ({"virtualization_role": "guest", "virtualization_type": "docker"}, True),
    ({"virtualization_role": "guest", "virtualization_type": "kvm"}, False),
    ({"virtualization_role": "host", "virtualization_type": "docker"}, False),
])
def test_plan_knows_a_container(virtualization, inside):
    assert plan(dict(DEBIAN_12, **virtualization))["in_container"] is inside


def test_plan_names_the_ntp_servers_and_the_reboot():
    result = plan(bootstrap_ntp_servers=["a.example", "b.example"], bootstrap_unattended_reboot=True,
                  bootstrap_unattended_reboot_time="04:15")
    assert result["timesync"]["content"].endswith("[Time]\nNTP=a.example b.example\n")
    upgrades = files(result)["/etc/apt/apt.conf.d/52appfleet-unattended-upgrades"]["content"]
    assert 'Automatic-Reboot "true";' in upgrades and 'Automatic-Reboot-Time "04:15";' in upgrades


def test_plan_without_facts_skips_the_release():
    assert plan({})["problems"] == []
