# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The bootstrap role's variables, checked once, and what the role does with them
(private to this collection).

Pure: no Ansible, no file system. :func:`bootstrap_problems` returns one line per
problem, each naming the variable as the user wrote it and what to write instead;
:func:`bootstrap_plan` gives the role the packages, directories and files (their
contents rendered here, not in templates) that the checked variables ask for.
"""

from __future__ import annotations

import re

from ansible_collections.appfleet.docker.plugins.module_utils._input_types import release_problem, shown, type_problems

SHAPES = {
    "bootstrap_user": "str",
    "bootstrap_user_shell": "str",
    "bootstrap_authorized_keys": ("strlist", "a list of SSH public keys, one string each",
                                  '["ssh-ed25519 AAAA... me@laptop"]'),
    "bootstrap_sudo_nopasswd": "bool",
    "bootstrap_user_password_hash": "str",
    "bootstrap_hostname": "str",
    "bootstrap_base_packages": ("strlist", "a list of Debian package names", "[python3, sudo]"),
    "bootstrap_extra_packages": ("strlist", "a list of Debian package names", "[vim, htop]"),
    "bootstrap_timesync": "bool",
    "bootstrap_ntp_servers": ("strlist", "a list of host names or IP addresses", "[0.debian.pool.ntp.org]"),
    "bootstrap_unattended_upgrades": "bool",
    "bootstrap_unattended_reboot": "bool",
    "bootstrap_unattended_reboot_time": ("str", "a time HH:MM as a string", '"03:30"'),
    "bootstrap_sshd_harden": "bool",
    "bootstrap_sshd_login_check": "bool",
    "bootstrap_sshd_permit_root_login": ("str", '"no" or "prohibit-password" (quoted: YAML reads a bare no as false)',
                                         '"prohibit-password"'),
    "bootstrap_sshd_service": "str",
}
PERMIT_ROOT_LOGIN = ("no", "prohibit-password")

# Every pattern ends in \Z: `$` would also accept a trailing newline.
USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}\Z")
SHELL_RE = re.compile(r"^/[A-Za-z0-9/_.+-]+\Z")
HOSTNAME_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\Z")
# One OpenSSH public key: type, base64 blob, optional comment, on one line.
SSH_KEY_TYPES = (r"(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com"
                 r"|sk-ecdsa-sha2-nistp256@openssh\.com)")
SSH_KEY_RE = re.compile(r"^" + SSH_KEY_TYPES + r" +[A-Za-z0-9+/]{16,}={0,3}( +[^\r\n]*)?\Z")
# A crypt(3) hash: $id$[params$]salt$hash (sha-512, sha-256, yescrypt, bcrypt).
PASSWORD_HASH_RE = re.compile(r"^\$(6|5|y|2[aby])\$[./A-Za-z0-9$=,]{8,}\Z")
PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.:=~*-]*\Z")
NTP_SERVER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.:-]*\Z")
TIME_RE = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]\Z")
UNIT_RE = re.compile(r"^[A-Za-z0-9@_.-]+\Z")


def _user_problems(s, wrong):
    out = []
    if "bootstrap_user" not in wrong and (not USER_RE.match(s["bootstrap_user"]) or s["bootstrap_user"] == "root"):
        out.append('bootstrap_user must be a plain user name other than root (lowercase letters, digits, "_" and '
                   '"-", at most 32 characters); got %s' % shown(s["bootstrap_user"]))
    if "bootstrap_user_shell" not in wrong and not SHELL_RE.match(s["bootstrap_user_shell"]):
        out.append("bootstrap_user_shell must be an absolute path without spaces or shell metacharacters, e.g. "
                   "/bin/bash; got %s" % shown(s["bootstrap_user_shell"]))
    if wrong & {"bootstrap_user_password_hash", "bootstrap_sudo_nopasswd"}:
        return out
    password_hash = s["bootstrap_user_password_hash"]
    if password_hash and not PASSWORD_HASH_RE.match(password_hash):
        # The value is a secret (or a password typed by mistake): never shown.
        out.append('bootstrap_user_password_hash is not a crypt(3) hash (e.g. from `mkpasswd -m sha-512`: '
                   '"$6$salt$...")')
    elif not (s["bootstrap_sudo_nopasswd"] or password_hash):
        out.append("bootstrap_sudo_nopasswd is false but bootstrap_user_password_hash is empty: the deploy user "
                   "%s would have sudo with no password to give it, so no way to root. Set "
                   "bootstrap_user_password_hash (from `mkpasswd -m sha-512`, kept in a vault) or leave "
                   "bootstrap_sudo_nopasswd true" % shown(s["bootstrap_user"]))
    return out


def _key_problems(keys):
    if not keys:
        return ['bootstrap_authorized_keys must list at least one SSH public key ("type base64 [comment]" on one '
                'line, e.g. "ssh-ed25519 AAAA... me@laptop"); password login is only turned off once a key is in '
                "place. It is empty."]
    bad = [key[:57] + "..." if len(key) > 60 else key for key in keys if not SSH_KEY_RE.match(key)]
    if bad:
        return ['bootstrap_authorized_keys must hold SSH public keys ("type base64 [comment]" on one line, e.g. '
                '"ssh-ed25519 AAAA... me@laptop"). Malformed entries: %s' % shown(bad, 400)]
    return []


def _list_problems(s, wrong):
    out = []
    if "bootstrap_authorized_keys" not in wrong:
        out.extend(_key_problems(s["bootstrap_authorized_keys"]))
    for name in ("bootstrap_base_packages", "bootstrap_extra_packages"):
        bad = [] if name in wrong else [p for p in s[name] if not PACKAGE_RE.match(p)]
        if bad:
            out.append("%s must hold Debian package names (optionally name=version); invalid: %s" % (name, shown(bad)))
    bad = [] if "bootstrap_ntp_servers" in wrong else [n for n in s["bootstrap_ntp_servers"] if not NTP_SERVER_RE.match(n)]
    if bad:
        out.append("bootstrap_ntp_servers must hold host names or IP addresses; invalid: %s" % shown(bad))
    return out


def _host_problems(s, wrong):
    out = []
    hostname = s["bootstrap_hostname"]
    if "bootstrap_hostname" not in wrong and hostname and not (len(hostname) <= 253 and HOSTNAME_RE.match(hostname)):
        out.append('bootstrap_hostname must be empty or a valid host name (letters, digits and "-", dot-separated '
                   "labels of at most 63 characters); got %s" % shown(hostname))
    if "bootstrap_unattended_reboot_time" not in wrong and not TIME_RE.match(s["bootstrap_unattended_reboot_time"]):
        out.append('bootstrap_unattended_reboot_time must be HH:MM, e.g. "03:30"; got %s'
                   % shown(s["bootstrap_unattended_reboot_time"]))
    if "bootstrap_sshd_permit_root_login" not in wrong and s["bootstrap_sshd_permit_root_login"] not in PERMIT_ROOT_LOGIN:
        out.append('bootstrap_sshd_permit_root_login must be "no" or "prohibit-password"; got %s'
                   % shown(s["bootstrap_sshd_permit_root_login"]))
    if "bootstrap_sshd_service" not in wrong and not UNIT_RE.match(s["bootstrap_sshd_service"]):
        out.append("bootstrap_sshd_service must be a systemd unit name, e.g. ssh; got %s" % shown(s["bootstrap_sshd_service"]))
    return out


def bootstrap_problems(s):
    """Every problem of the bootstrap role's variables ``s`` ({name: value}), one line each."""
    missing = sorted(set(SHAPES) - set(s))
    if missing:
        raise KeyError("bootstrap settings lack %s" % ", ".join(missing))
    out, wrong = type_problems(s, SHAPES)
    return out + _user_problems(s, wrong) + _list_problems(s, wrong) + _host_problems(s, wrong)


HEADER = "# Ansible managed (appfleet.docker.bootstrap)\n"
SSHD_DROPIN = "/etc/ssh/sshd_config.d/00-appfleet-hardening.conf"
SSHD_CHECK = "/usr/local/sbin/appfleet-sshd-check"
TIMESYNC_DROPIN = "/etc/systemd/timesyncd.conf.d/50-appfleet.conf"
# Where systemd does not start timesyncd (ConditionVirtualization=!container).
CONTAINER_TYPES = ("docker", "container", "lxc", "podman", "systemd-nspawn", "containerd")


def _file(dest, content, mode="0644", owner="root", **extra):
    return dict(dest=dest, content=content, mode=mode, owner=owner, group=owner, **extra)


def sshd_dropin(s):
    """The sshd hardening drop-in."""
    return (HEADER + "# sshd keeps the first value it reads for an option: this file sorts first\n"
            "# in sshd_config.d so that later drop-ins (e.g. cloud-init's) cannot undo it.\n"
            "PermitRootLogin %s\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "PermitEmptyPasswords no\nPubkeyAuthentication yes\nX11Forwarding no\n"
            % s["bootstrap_sshd_permit_root_login"])


def host_files(s, home):
    """The files the role writes before sshd is hardened, in order: [{dest, content, mode, ...}]."""
    user, on = s["bootstrap_user"], "1" if s["bootstrap_unattended_upgrades"] else "0"
    files = [
        _file("%s/.ssh/authorized_keys" % home, "".join(k.strip() + "\n" for k in s["bootstrap_authorized_keys"]),
              "0600", user),
        _file("/etc/sudoers.d/90-appfleet-%s" % user, HEADER + "%s ALL=(ALL:ALL) %sALL\n"
              % (user, "NOPASSWD: " if s["bootstrap_sudo_nopasswd"] else ""), "0440", validate="/usr/sbin/visudo -cf %s"),
        _file("/etc/apt/apt.conf.d/20auto-upgrades", HEADER.replace("#", "//") +
              'APT::Periodic::Update-Package-Lists "%s";\nAPT::Periodic::Unattended-Upgrade "%s";\n'
              'APT::Periodic::AutocleanInterval "7";\n' % (on, on)),
    ]
    if s["bootstrap_unattended_upgrades"]:
        files.append(_file("/etc/apt/apt.conf.d/52appfleet-unattended-upgrades", HEADER.replace("#", "//") +
                           "// Security updates only: the origins of 50unattended-upgrades (the\n"
                           "// distribution's security archive) are kept as they are.\n"
                           'Unattended-Upgrade::Automatic-Reboot "%s";\n'
                           'Unattended-Upgrade::Automatic-Reboot-Time "%s";\n'
                           'Unattended-Upgrade::Remove-Unused-Kernel-Packages "true";\n'
                           'Unattended-Upgrade::Remove-Unused-Dependencies "false";\n'
                           % ("true" if s["bootstrap_unattended_reboot"] else "false",
                              s["bootstrap_unattended_reboot_time"])))
    if s["bootstrap_sshd_harden"]:
        files.append(dict(dest=SSHD_CHECK, src="appfleet-sshd-check", mode="0755", owner="root", group="root"))
    return files


def bootstrap_plan(s, facts=None, home=None):
    """What the role does on a host: {problems, packages, dirs, files, timesync, in_container}.

    ``facts``: the host's facts (the release, the virtualization); ``home``: the deploy
    user's home once known (else /home/<user>). With problems, only they are given.
    """
    release = release_problem(facts, "bootstrap")
    problems = ([release] if release else []) + bootstrap_problems(s)
    if problems:
        return {"problems": problems}
    facts = facts or {}
    home = home or "/home/%s" % s["bootstrap_user"]
    timesync = s["bootstrap_timesync"]
    dirs = [dict(path="%s/.ssh" % home, mode="0700", owner=s["bootstrap_user"], group=s["bootstrap_user"])]
    if timesync:
        dirs.append(dict(path="/etc/systemd/timesyncd.conf.d", mode="0755", owner="root", group="root"))
    servers = s["bootstrap_ntp_servers"]
    return {
        "problems": [],
        "packages": (s["bootstrap_base_packages"] + s["bootstrap_extra_packages"]
                     + (["systemd-timesyncd"] if timesync else [])
                     + (["unattended-upgrades"] if s["bootstrap_unattended_upgrades"] else [])),
        "dirs": dirs,
        "files": host_files(s, home),
        # Without servers the drop-in sets nothing: timesyncd keeps the distribution's pool.
        "timesync": _file(TIMESYNC_DROPIN, HEADER + "[Time]\n" + ("NTP=%s\n" % " ".join(servers) if servers else ""))
        if timesync else None,
        "in_container": (facts.get("virtualization_role") == "guest"
                         and facts.get("virtualization_type") in CONTAINER_TYPES),
        "sshd_dropin": sshd_dropin(s),
    }
