"""_bootstrap_settings: every rule of the bootstrap role's variables, and its message."""

from __future__ import annotations

import re
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


def test_sshd_yml_reads_keys_as_the_model_does():
    """vars/main.yml spells the key pattern for sshd.yml; it must agree with SSH_KEY_RE."""
    spelled = VARS["_bootstrap_ssh_key_re"].replace("{{ _bootstrap_ssh_key_types }}", VARS["_bootstrap_ssh_key_types"])
    assert spelled.replace("$", r"\Z") == model.SSH_KEY_RE.pattern
    assert re.match(spelled, KEY)


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
