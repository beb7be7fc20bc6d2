# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine role's variables, checked once (private to this collection).

Pure: no Ansible, no file system. :func:`engine_problems` returns one line per
problem, each naming the variable as the user wrote it and what to write instead.
The role's knowledge of dockerd (its options and their JSON types, the flag that
sets its listeners) stays in roles/engine/vars/main.yml, which also hands it to the
daemon.json checker on the host; it is passed in here as data.
"""

from __future__ import annotations

import re

from ansible_collections.appfleet.docker.plugins.module_utils._input_types import KINDS, is_kind, shown, type_problems

SOURCES = ("docker", "distro")
PLUGINS = ("compose", "buildx")
# Each shape: kind, or (kind, what a message asks for, an example).
SHAPES = {
    "engine_source": "str",
    "engine_docker_repo_url": "str",
    "engine_docker_repo_channel": "str",
    "engine_docker_gpg_key_url": "str",
    "engine_docker_gpg_key": "str",
    "engine_version": "str",
    "engine_upgrade": "bool",
    "engine_plugins": ("strlist", "a list of plugin names", "[compose, buildx]"),
    "engine_daemon_defaults": ("dict", "a mapping of dockerd options", "{live-restore: true}"),
    "engine_daemon_options": ("dict", "a mapping of dockerd options", "{debug: true}"),
    "engine_allow_tcp": "bool",
    "engine_docker_users": ("strlist", "a list of user names", "[deploy]"),
    "engine_python_sdk": "bool",
    "engine_firewall": "bool",
    "engine_allowed_networks": ("strlist", "a list of networks in CIDR form", '[127.0.0.0/8, "::1/128", 10.0.0.0/8]'),
    "engine_preload_images": ("list", "a list of {image, archive} entries", "[{image: 'app:1', archive: files/app-1.tar}]"),
    "engine_preload_dir": "str",
    "engine_registry_cas": ("list", "a list of {registry, ca, state} entries",
                            "[{registry: 'reg.example.com:5000', ca: '-----BEGIN CERTIFICATE-----...'}]"),
}

# Every pattern ends in \Z: `$` would also accept a trailing newline.
VERSION_RE = re.compile(r"^([0-9]+:)?[A-Za-z0-9.+~*-]*\Z")
URL_RE = re.compile(r"^https?://[A-Za-z0-9._~:/%@+-]+\Z")
CHANNEL_RE = re.compile(r"^[a-z0-9-]+\Z")
USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}\Z")
# An IPv4 network, or an IPv6 network in hexadecimal notation (no embedded
# dotted quad: the DOCKER-USER rules take it as written), each with an optional prefix length.
_OCTET = r"(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])"
CIDR4_RE = re.compile(r"^(%s\.){3}%s(/([0-9]|[12][0-9]|3[0-2]))?\Z" % (_OCTET, _OCTET))
_H = "[0-9A-Fa-f]{1,4}"
CIDR6_RE = re.compile(
    r"^((H:){7}H|(H:){1,7}:|(H:){1,6}:H|(H:){1,5}(:H){1,2}|(H:){1,4}(:H){1,3}|(H:){1,3}(:H){1,4}"
    r"|(H:){1,2}(:H){1,5}|H:(:H){1,6}|:((:H){1,7}|:))(/(12[0-8]|1[01][0-9]|[1-9]?[0-9]))?\Z".replace("H", _H))
IMAGE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*\Z")
ARCHIVE_RE = re.compile(r"^[A-Za-z0-9_./~+-][A-Za-z0-9_./~+:@=-]*\Z")
DIR_RE = re.compile(r"^/[A-Za-z0-9_./-]+\Z")
WORLD_WRITABLE_RE = re.compile(r"^/+(tmp|var/+tmp|dev/+shm)(/|\Z)")
REGISTRY_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(:[0-9]{1,5})?\Z")
# json-file's options, which every log driver but json-file and local refuses.
FILE_LOG_OPTS = ("compress", "max-file", "max-size")
PACKAGED_UNIT = ("-H fd:// (the unit of the engine package to install: Debian's docker.io and "
                 "Docker's docker-ce both pass it)")
DAEMON_DOCS = "https://docs.docker.com/reference/cli/dockerd/#daemon-configuration-file"
# The JSON types roles/engine/vars/main.yml gives dockerd's options, as _input_types kinds.
DAEMON_KINDS = {"string": "str", "boolean": "bool", "integer": "int", "mapping": "dict", "strmap": "strmap",
                "list": "list", "strlist": "strlist"}
# Where the role puts its programs (roles/engine/files/*.py) and the JSON settings each
# reads; the role reads them with the engine_path filter, deploy_state imports them.
# The programs' own defaults (their SETTINGS) are these settings paths.
PATHS = {
    "checker": "/usr/local/sbin/appfleet-dockerd-config-check",
    "checker_settings": "/etc/appfleet/engine/dockerd-config-check.json",
    "rules_program": "/usr/local/sbin/appfleet-docker-user",
    "rules_settings": "/etc/appfleet/engine/docker-user.json",
    "rules_dropin": "/etc/systemd/system/docker.service.d/appfleet-docker-user.conf",
}
RULES_PROGRAM = PATHS["rules_program"]


def merged(base, over):
    """``over`` merged recursively over ``base``, as the role's combine(recursive=True) does."""
    out = dict(base)
    for key, value in over.items():
        out[key] = merged(out[key], value) if isinstance(out.get(key), dict) and isinstance(value, dict) else value
    return out


def dockerd_host(entry, tls_on):
    """The listener dockerd makes of one "hosts" entry (opts.ParseHost): spaces trimmed,
    an empty entry its default socket, an entry without a scheme TCP."""
    host = entry.strip()
    if not host:
        return "tcp://localhost:2376" if tls_on else "unix:///var/run/docker.sock"
    return host if "://" in host else "tcp://" + host


def unit_start(show):
    """The command line docker.service starts dockerd with, from `systemctl show
    --property=LoadState --property=ExecStart`; None when the unit is not loaded."""
    if not isinstance(show, str) or "LoadState=loaded" not in show.splitlines():
        return None
    return " ".join(re.findall(r"argv\[\]=([^;]*)", show)).strip()


def _source_problems(s):
    out = []
    if s["engine_source"] not in SOURCES:
        out.append("engine_source must be docker (Docker's apt repository) or distro (the distribution's "
                   "docker.io); got %s" % shown(s["engine_source"]))
    if not VERSION_RE.match(s["engine_version"]):
        out.append('engine_version must be empty or an apt version (digits, letters, ".", "+", "~", "-", "*", '
                   'optional "epoch:"), e.g. 5:27.3.1*; got %s' % shown(s["engine_version"]))
    if s["engine_source"] == "docker":
        for name in ("engine_docker_repo_url", "engine_docker_gpg_key_url"):
            if (s[name] or name == "engine_docker_repo_url") and not URL_RE.match(s[name]):
                out.append("%s must be an http(s) URL without spaces or shell metacharacters; got %s"
                           % (name, shown(s[name])))
        if not CHANNEL_RE.match(s["engine_docker_repo_channel"]):
            out.append("engine_docker_repo_channel must be a plain word (lowercase letters, digits, '-'), "
                       "e.g. stable; got %s" % shown(s["engine_docker_repo_channel"]))
    if s["engine_docker_gpg_key"] and "-----BEGIN PGP PUBLIC KEY BLOCK-----" not in s["engine_docker_gpg_key"]:
        out.append("engine_docker_gpg_key must be empty or an ASCII-armoured PGP public key "
                   "(-----BEGIN PGP PUBLIC KEY BLOCK----- ...)")
    return out


def _list_problems(s, wrong):
    out = []
    if "engine_plugins" not in wrong:
        bad = [p for p in s["engine_plugins"] if p not in PLUGINS]
        if bad:
            out.append('engine_plugins may only contain "compose" and "buildx"; got %s' % shown(bad))
    if "engine_docker_users" not in wrong:
        bad = [u for u in s["engine_docker_users"] if not USER_RE.match(u)]
        if bad:
            out.append("engine_docker_users must hold user names (lowercase letters, digits, '_' and '-', at "
                       "most 32 characters); invalid: %s" % shown(bad))
    if "engine_allowed_networks" not in wrong:
        bad = [n for n in s["engine_allowed_networks"] if not (CIDR4_RE.match(n) or CIDR6_RE.match(n))]
        if bad:
            out.append("engine_allowed_networks must hold IPv4 or IPv6 networks in CIDR form (e.g. 10.0.0.0/8, "
                       "2001:db8::/32; IPv6 in hexadecimal, without an embedded dotted quad); invalid: %s"
                       % shown(bad, 200))
    return out


def _preload_problems(s, wrong):
    out = []
    if "engine_preload_images" not in wrong:
        for index, entry in enumerate(s["engine_preload_images"]):
            if not (isinstance(entry, dict) and isinstance(entry.get("image"), str) and IMAGE_RE.match(entry["image"])
                    and isinstance(entry.get("archive"), str) and ARCHIVE_RE.match(entry["archive"])):
                out.append('engine_preload_images[%d]: each entry needs "image" (name:tag) and "archive" (a path on '
                           "the controller), without spaces or shell metacharacters; got %s" % (index, shown(entry)))
    if "engine_preload_dir" not in wrong:
        path = s["engine_preload_dir"]
        if not DIR_RE.match(path) or ".." in path.split("/") or WORLD_WRITABLE_RE.match(path):
            out.append("engine_preload_dir must be an absolute path without '..', spaces or shell metacharacters, "
                       "and not below a world-writable /tmp, /var/tmp or /dev/shm (another user could make it "
                       "first); for example /var/lib/appfleet/preload; got %s" % shown(path))
    return out


def _registry_ca_problems(s, wrong):
    out = []
    if "engine_registry_cas" in wrong:
        return out
    for index, entry in enumerate(s["engine_registry_cas"]):
        if not isinstance(entry, dict):
            out.append("engine_registry_cas[%d]: give a mapping {registry, ca, state}; got %s" % (index, shown(entry)))
            continue
        where = "engine_registry_cas[%d]" % index
        registry = entry.get("registry")
        if isinstance(registry, str) and REGISTRY_RE.match(registry):
            where += " (%s)" % registry
        unknown = sorted(set(entry) - {"registry", "ca", "state"})
        if unknown:
            out.append("%s: unknown key(s) %s; known: registry, ca, state" % (where, ", ".join(map(str, unknown))))
        if not (isinstance(registry, str) and REGISTRY_RE.match(registry)):
            out.append("%s: registry must name the registry as images name it, host or host:port without "
                       "scheme, path or shell metacharacters (for example registry.example.com:5000); got %s"
                       % (where, shown(registry)))
        state = entry.get("state", "present")
        if state not in ("present", "absent"):
            out.append("%s: state must be present or absent; got %s" % (where, shown(state)))
        elif state == "present" and not (isinstance(entry.get("ca"), str)
                                         and "-----BEGIN CERTIFICATE-----" in entry["ca"]):
            out.append("%s: ca must be the PEM text of the CA certificate (-----BEGIN CERTIFICATE----- ...), "
                       "or set state: absent" % where)
    return out


def _hosts_problems(config, allow_tcp, unit_show, host_flag_re):
    """The daemon's "hosts", read as dockerd reads them."""
    out = []
    tls_on = config.get("tls") is True or "tlsverify" in config
    read = [(entry, dockerd_host(entry, tls_on)) for entry in config["hosts"]]
    tcp = [(entry, host) for entry, host in read if host.startswith("tcp://")]
    tcp_ok = (allow_tcp and config.get("tlsverify") is True
              and all(isinstance(config.get(k), str) and config[k] for k in ("tlscacert", "tlscert", "tlskey")))
    if tcp and not tcp_ok:
        out.append('engine_daemon_options: "hosts" gives dockerd a TCP listener: %s. An unprotected TCP socket '
                   "gives root on the host to anyone who reaches it. Remove the entry (this collection talks to "
                   "/run/docker.sock over SSH), or set engine_allow_tcp: true together with \"tlsverify\": true "
                   'and the files "tlscacert", "tlscert" and "tlskey" in engine_daemon_options%s'
                   % ("; ".join("%s (dockerd reads it as %s)" % (shown(e), shown(h)) for e, h in tcp),
                      " (engine_allow_tcp is true, but tlsverify and all three certificate options are needed)"
                      if allow_tcp else ""))
    other = [entry for entry, host in read if not re.match(r"(unix|fd|tcp)://", host)]
    if other:
        out.append('engine_daemon_options: "hosts" has entries dockerd cannot listen on: %s; dockerd listens on '
                   "unix://PATH and fd:// (and, with engine_allow_tcp and TLS, tcp://), with the scheme in lower "
                   "case (ssh:// is for clients only). Remove or correct them" % shown(other))
    argv = unit_start(unit_show)
    if argv is None or re.search(host_flag_re, argv):
        out.append('engine_daemon_options: "hosts" cannot be set here: docker.service starts dockerd with %s, '
                   "and dockerd does not start when a flag and daemon.json both set the listeners (\"specified "
                   'both as a flag and in the configuration file: hosts"), so the new file would stop the engine. '
                   'Remove "hosts" from engine_daemon_options: dockerd then listens on the systemd socket '
                   "/run/docker.sock (root:docker 0660). To listen elsewhere, first install a docker.service "
                   "drop-in whose ExecStart has no -H" % (argv or PACKAGED_UNIT))
    return out


def daemon_problems(s, daemon_keys, unit_show=None, host_flag_re=r"(^|\s)-H"):
    """Problems of the daemon.json the role would write (defaults and options merged).

    ``daemon_keys``: {option: JSON type} (the keys of DAEMON_KINDS, as roles/engine/vars/main.yml names them);
    ``unit_show``: the output of `systemctl show docker.service`, read when "hosts" is set."""
    config = merged(s["engine_daemon_defaults"], s["engine_daemon_options"])
    unknown = sorted(k for k in config if k not in daemon_keys)
    out = []
    if unknown:
        out.append("engine_daemon_options: unknown dockerd option(s) %s; see %s" % (shown(unknown, 200), DAEMON_DOCS))
    kinds = {k: DAEMON_KINDS[daemon_keys[k]] for k in config if k in daemon_keys}
    mistyped = sorted(k for k, kind in kinds.items() if not is_kind(kind, config[k]))
    for key in mistyped:
        out.append("engine_daemon_options: option %s must be %s; got %s"
                   % (shown(key), KINDS[kinds[key]], shown(config[key])))
    if unknown or mistyped:
        return out
    # The defaults' json-file max-size, max-file and compress stay merged in.
    driver = config.get("log-driver", "json-file")
    file_opts = sorted(set(config.get("log-opts", {})) & set(FILE_LOG_OPTS))
    if driver not in ("json-file", "local") and file_opts:
        out.append("engine_daemon_options: log-driver %s does not take the log-opts %s (json-file and local only), "
                   "which engine_daemon_defaults sets and engine_daemon_options, merged over it, cannot remove: "
                   "dockerd would refuse to create any container. For remote logging set engine_daemon_defaults "
                   "as a whole, with that driver's own log-opts (see the role's README)"
                   % (shown(driver), shown(file_opts)))
    if "hosts" in config:
        out.extend(_hosts_problems(config, s["engine_allow_tcp"], unit_show, host_flag_re))
    return out


def engine_problems(s, daemon_keys, unit_show=None, host_flag_re=r"(^|\s)-H"):
    """Every problem of the engine role's variables ``s`` ({name: value}), one line each."""
    missing = sorted(set(SHAPES) - set(s))
    if missing:
        raise KeyError("engine settings lack %s" % ", ".join(missing))
    out, wrong = type_problems(s, SHAPES)
    if not wrong & {"engine_source", "engine_version", "engine_docker_repo_url", "engine_docker_gpg_key_url",
                    "engine_docker_repo_channel", "engine_docker_gpg_key"}:
        out.extend(_source_problems(s))
    out.extend(_list_problems(s, wrong))
    if not wrong & {"engine_daemon_defaults", "engine_daemon_options", "engine_allow_tcp"}:
        out.extend(daemon_problems(s, daemon_keys, unit_show, host_flag_re))
    out.extend(_preload_problems(s, wrong))
    out.extend(_registry_ca_problems(s, wrong))
    return out
