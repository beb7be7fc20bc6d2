# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Refuse a daemon.json that dockerd would reject, before it replaces the live one.

Usage: appfleet-dockerd-config-check [--settings SETTINGS] FILE

Checks that FILE is a JSON object whose keys are known dockerd options of the
right type, log-opts that the log-driver takes; reads "hosts" as dockerd does
(spaces trimmed, an entry without a scheme is TCP, an empty one the default
socket) and refuses TCP listeners unless allowed and protected by tlsverify
with certificates, entries dockerd cannot listen on, and any "hosts" while
docker.service passes -H (dockerd does not start when a flag and the file both
set it); then runs `dockerd --validate --config-file FILE` where the installed
engine has it (Docker >= 23). Exit status 0 means the file is acceptable.

SETTINGS (written by the appfleet.docker.engine role) is a JSON object:
{"daemon_keys": {option: type, ...}, "allow_tcp": bool, "host_flag_re": regex}.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

SETTINGS = "/etc/appfleet/engine/dockerd-config-check.json"
TYPES = ("string", "boolean", "integer", "mapping", "strmap", "list", "strlist")
# json-file's options, which every log driver but json-file and local refuses.
FILE_LOG_OPTS = {"max-size", "max-file", "compress"}
PACKAGED_UNIT = "-H fd:// (the packaged unit)"


class SettingsError(Exception):
    """The settings file is missing or malformed."""


def load_settings(text):
    """The settings of a settings text: (daemon keys, allow_tcp, compiled host flag regex)."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise SettingsError("is not valid JSON: %s" % exc) from None
    if not isinstance(data, dict):
        raise SettingsError("must hold a JSON object")
    keys = data.get("daemon_keys")
    if not isinstance(keys, dict) or not all(kind in TYPES for kind in keys.values()):
        raise SettingsError('needs "daemon_keys", an object of option names to one of %s' % ", ".join(TYPES))
    if not isinstance(data.get("allow_tcp"), bool):
        raise SettingsError('needs "allow_tcp", true or false')
    try:
        host_flag = re.compile(data.get("host_flag_re"))
    except (TypeError, re.error) as exc:
        raise SettingsError('needs "host_flag_re", a regular expression: %s' % exc) from None
    return keys, data["allow_tcp"], host_flag


def type_ok(kind, value):
    """True when value is of the JSON type kind that dockerd expects."""
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "mapping":
        return isinstance(value, dict)
    if kind == "strmap":
        return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
    if kind == "list":
        return isinstance(value, list)
    if kind == "strlist":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return True


def key_errors(config, keys):
    """Unknown options and options of the wrong type."""
    errors = []
    for key, value in sorted(config.items()):
        if key not in keys:
            errors.append("unknown dockerd option %r" % key)
        elif not type_ok(keys[key], value):
            errors.append("option %r must be of type %s, got %r" % (key, keys[key], value))
    return errors


def log_opts_errors(config):
    """json-file's log-opts under a log driver that refuses them."""
    driver = config.get("log-driver", "json-file")
    file_opts = sorted(set(config.get("log-opts", {})) & FILE_LOG_OPTS)
    if driver not in ("json-file", "local") and file_opts:
        return ["option 'log-opts' has %s, which log-driver %r refuses (json-file and local only)"
                % (", ".join(file_opts), driver)]
    return []


def dockerd_host(entry, tls_on):
    """The listener dockerd makes of one "hosts" entry (opts.ParseHost)."""
    host = entry.strip()
    if not host:
        return "tcp://localhost:2376" if tls_on else "unix:///var/run/docker.sock"
    if "://" not in host:
        return "tcp://" + host
    return host


def listener_errors(config, allow_tcp):
    """The "hosts" entries dockerd would make TCP listeners without protection, or cannot listen on."""
    tls_on = config.get("tls") is True or "tlsverify" in config
    tcp_ok = (allow_tcp and config.get("tlsverify") is True
              and all(isinstance(config.get(k), str) and config.get(k)
                      for k in ("tlscacert", "tlscert", "tlskey")))
    errors = []
    for entry in config["hosts"]:
        host = dockerd_host(entry, tls_on)
        if host.startswith("tcp://"):
            if not tcp_ok:
                errors.append("option 'hosts' has %r, a TCP listener (dockerd reads it as %r); allowed only "
                              "with engine_allow_tcp and tlsverify, tlscacert, tlscert and tlskey" % (entry, host))
        elif not re.match(r"(unix|fd)://", host):
            errors.append("option 'hosts' has %r, which dockerd cannot listen on (unix:// and fd:// only)" % entry)
    return errors


def unit_start(show):
    """The command line docker.service starts dockerd with, from `systemctl show`
    output; None when the command failed or the unit is not loaded (before the
    engine is installed: the package's unit will pass -H fd://)."""
    if show is None or "LoadState=loaded" not in show.splitlines():
        return None
    return " ".join(re.findall(r"argv\[\]=([^;]*)", show)).strip()


def unit_conflict_errors(argv, host_flag):
    """A "hosts" key beside a unit that passes -H: dockerd would not start."""
    if argv is not None and host_flag.search(argv) is None:
        return []
    return ["option 'hosts' conflicts with docker.service, which starts dockerd with %s: "
            "dockerd would not start; remove 'hosts'" % (PACKAGED_UNIT if argv is None else argv)]


def config_errors(config, keys, allow_tcp, host_flag, unit_show=None):
    """Everything this program refuses in a parsed daemon.json, before dockerd is asked.

    unit_show is the output of `systemctl show docker.service` (None: not available),
    read only when the config has "hosts".
    """
    if not isinstance(config, dict):
        return ["the file must hold a JSON object"]
    errors = key_errors(config, keys)
    if errors:
        return errors
    errors = log_opts_errors(config)
    if "hosts" in config:
        errors += listener_errors(config, allow_tcp)
        errors += unit_conflict_errors(unit_start(unit_show), host_flag)
    return errors


def validate_argv(dockerd, path):
    """dockerd's own check of a configuration file (Docker >= 23)."""
    return [dockerd, "--validate", "--config-file", path]


def run(argv):
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def read_unit():
    try:
        proc = run(["systemctl", "show", "docker.service", "--property=LoadState", "--property=ExecStart"])
    except OSError:
        return None
    return proc.stdout if proc.returncode == 0 else None


def check(path, keys, allow_tcp, host_flag):
    """The reasons to refuse the file at path; none when dockerd would take it."""
    try:
        with open(path, encoding="utf-8") as handle:
            config = json.load(handle)
    except (OSError, ValueError) as exc:
        return ["%s is not valid JSON: %s" % (path, exc)]
    if not isinstance(config, dict):
        return ["%s must hold a JSON object" % path]
    errors = config_errors(config, keys, allow_tcp, host_flag,
                           read_unit() if "hosts" in config else None)
    if errors:
        return errors
    dockerd = shutil.which("dockerd")
    if dockerd and "--validate" in run([dockerd, "--help"]).stdout:
        proc = run(validate_argv(dockerd, path))
        if proc.returncode != 0:
            return ["dockerd --validate refused it: %s" % (proc.stderr or proc.stdout).strip()]
    return []


def main(argv):
    args = argv[1:]
    settings = SETTINGS
    if args[:1] == ["--settings"] and len(args) >= 2:
        settings, args = args[1], args[2:]
    if len(args) != 1:
        sys.stderr.write("usage: appfleet-dockerd-config-check [--settings SETTINGS] FILE\n")
        return 2
    try:
        with open(settings, encoding="utf-8") as handle:
            keys, allow_tcp, host_flag = load_settings(handle.read())
    except OSError as exc:
        sys.stderr.write("daemon.json refused: cannot read the checker's settings %s: %s; "
                         "run the appfleet.docker.engine role to write them\n" % (settings, exc.strerror))
        return 2
    except SettingsError as exc:
        sys.stderr.write("daemon.json refused: the checker's settings %s %s\n" % (settings, exc))
        return 2
    errors = check(args[0], keys, allow_tcp, host_flag)
    for error in errors:
        sys.stderr.write("daemon.json refused: %s\n" % error)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
