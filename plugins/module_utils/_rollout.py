# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Desired-config logic and the health-gated container swap of app_container.

Private to this collection (leading underscore): not a public API.

The pure functions at the top (validation, normalisation, hashing, diff,
reconciliation) have no Docker dependency and are unit tested; SecretStore
keeps the secret files on the host; the Rollout class below drives the Docker
Engine through the SDK's low-level API only (``client.api``), which exists
unchanged in docker SDK 5.0.3.
"""

from __future__ import annotations

import binascii
import hashlib
import io
import ipaddress
import json
import os
import posixpath
import re
import shutil
import socket
import stat
import tarfile
import time

from http.client import HTTPConnection

from ansible_collections.appfleet.docker.plugins.module_utils._docker import (
    APP_NAME_RE,
    LABEL_APP,
    LABEL_CONFIG,
    LABEL_CONFIG_HASH,
    LABEL_PREVIOUS_IMAGE,
    LABEL_SOURCE_ID,
    AppfleetError,
    is_not_found,
)

# The collection's app-name rule (module_utils/_docker.py); container names follow it too.
NAME_RE = APP_NAME_RE
ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}\Z")
MEMORY_RE = re.compile(r"^[0-9]+[bkmgBKMG]?\Z")
TEMP_SUFFIX = "--next"
RESTART_POLICIES = ("no", "on-failure", "always", "unless-stopped")
SECRET_MASK = "********"

# Secrets as files: one file per key, mounted read-only at /run/secrets/<KEY>,
# with <KEY>_FILE in the environment pointing at it.
SECRET_DELIVERIES = ("file", "env")
SECRET_MOUNT_DIR = "/run/secrets"
DEFAULT_SECRET_DIR = "/etc/appfleet/secrets"
SECRET_FILE_MODE = 0o400
# A release directory of secret files: <UTC time>-<random>, made by new_release_id().
RELEASE_RE = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}\Z")
TMP_RELEASE_RE = re.compile(r"^\.tmp-[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}\Z")

DEFAULT_BIND_ADDRESS = "127.0.0.1"
PORT_NUMBER_RE = re.compile(r"^[0-9]{1,5}\Z")
# user: name or uid, optionally :group or :gid (as docker run --user takes it).
USER_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,31})?\Z")
CONTAINER_PATH_RE = re.compile(r"^/[A-Za-z0-9._@+/-]{1,254}\Z")
TMPFS_OPTION_RE = re.compile(r"^[a-z_]{1,20}(?:=[A-Za-z0-9_.]{1,20})?\Z")
# Linux capabilities as docker --cap-add/--cap-drop take them (without CAP_), and ALL.
CAPABILITIES = frozenset((
    "AUDIT_CONTROL", "AUDIT_READ", "AUDIT_WRITE", "BLOCK_SUSPEND", "BPF", "CHECKPOINT_RESTORE",
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "IPC_LOCK", "IPC_OWNER", "KILL",
    "LEASE", "LINUX_IMMUTABLE", "MAC_ADMIN", "MAC_OVERRIDE", "MKNOD", "NET_ADMIN", "NET_BIND_SERVICE",
    "NET_BROADCAST", "NET_RAW", "PERFMON", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_ADMIN",
    "SYS_BOOT", "SYS_CHROOT", "SYS_MODULE", "SYS_NICE", "SYS_PACCT", "SYS_PTRACE", "SYS_RAWIO",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "SYSLOG", "WAKE_ALARM", "ALL",
))
SECURITY_OPT_RE = re.compile(
    r"^(?:no-new-privileges(?:[=:](?:true|false))?"
    r"|apparmor[=:][A-Za-z0-9_.-]{1,128}"
    r"|label[=:](?:disable|nested|(?:user|role|type|level|filetype):[A-Za-z0-9_.:,-]{1,128})"
    r"|seccomp[=:]unconfined"
    r"|seccomp[=:]\{.*\}"
    r"|systempaths[=:]unconfined)\Z", re.S)
DEFAULT_SECURITY_OPTS = ("no-new-privileges:true",)
DEFAULT_PIDS_LIMIT = 1024


# ---------------------------------------------------------------- pure logic

def temp_name(name):
    """The name a new container has while it runs beside the serving one."""
    return name + TEMP_SUFFIX


def parse_port_spec(spec):
    """Parse ``[ip:]host:container[/proto]`` or ``container[/proto]``.

    An IPv6 address is written in brackets: ``[::]:9000:9000``. Without an
    address the port is bound to 127.0.0.1 only, never to every address.
    Returns (host_ip, host_port, container_port, proto) with host_port None
    when Docker may choose it.
    """
    text = str(spec)
    if not text or len(text) > 100 or any(ch.isspace() or ord(ch) < 32 for ch in text):
        raise AppfleetError("published_ports: %r is not [ip:]host:container[/proto]" % (spec,))
    proto = "tcp"
    if "/" in text:
        text, proto = text.rsplit("/", 1)
        if proto not in ("tcp", "udp", "sctp"):
            raise AppfleetError("published_ports: %r has an unknown protocol %r" % (spec, proto))
    if text.startswith("["):
        addr, sep, rest = text[1:].partition("]")
        parts = rest.split(":")
        if not sep or len(parts) != 3 or parts[0] != "":
            raise AppfleetError("published_ports: %r is not [ipv6]:host:container[/proto]" % (spec,))
        ip, host, cont = _bind_address(addr, 6, spec), parts[1], parts[2]
    else:
        parts = text.split(":")
        if len(parts) == 1:
            ip, host, cont = DEFAULT_BIND_ADDRESS, None, parts[0]
        elif len(parts) == 2:
            ip, host, cont = DEFAULT_BIND_ADDRESS, parts[0], parts[1]
        elif len(parts) == 3:
            ip, host, cont = _bind_address(parts[0], 4, spec), parts[1], parts[2]
        else:
            raise AppfleetError(
                "published_ports: %r is not [ip:]host:container[/proto] (an IPv6 address goes in "
                "brackets, e.g. [::1]:9000:9000)" % (spec,))
    cont_port = _port_number(cont, "published_ports", spec)
    host_port = _port_number(host, "published_ports", spec) if host not in (None, "") else None
    return ip, host_port, cont_port, proto


def _bind_address(text, version, spec):
    try:
        addr = ipaddress.ip_address(str(text))
    except ValueError:
        addr = None
    if addr is None or addr.version != version:
        kind = "an IPv4 address" if version == 4 else "an IPv6 address in brackets"
        raise AppfleetError("published_ports: %r: %r is not %s" % (spec, text, kind))
    return str(addr)


def canonical_port_spec(spec):
    """The spec with its address spelled out: ``127.0.0.1:9000:9000/tcp``, ``[::]::9000/udp``."""
    ip, host_port, cont_port, proto = parse_port_spec(spec)
    addr = "[%s]" % ip if ":" in ip else ip
    return "%s:%s:%d/%s" % (addr, host_port if host_port is not None else "", cont_port, proto)


def _port_number(value, option, spec=None):
    text = str(value)
    number = int(text) if PORT_NUMBER_RE.match(text) else -1
    if number < 1 or number > 65535:
        shown = spec if spec is not None else value
        raise AppfleetError("%s: port %r is out of range 1-65535" % (option, shown))
    return number


def normalize_capability(value, option):
    """``net_raw``, ``CAP_NET_RAW`` -> ``NET_RAW``; an unknown name raises AppfleetError."""
    text = str(value).upper()
    if text.startswith("CAP_"):
        text = text[4:]
    if text not in CAPABILITIES:
        raise AppfleetError("%s: %r is not a Linux capability (for example NET_RAW, SYS_ADMIN, or ALL)"
                            % (option, value))
    return text


def parse_tmpfs_spec(spec):
    """``/path[:opt,opt=value]`` -> (path, options); raises AppfleetError naming tmpfs."""
    text = str(spec)
    path, sep, options = text.partition(":")
    if not _container_path_ok(path):
        raise AppfleetError("tmpfs: %r: %r is not an absolute, normalised path in the container "
                            "(like /tmp or /var/cache/app)" % (spec, path))
    opts = options.split(",") if sep else []
    for opt in opts:
        if not TMPFS_OPTION_RE.match(opt):
            raise AppfleetError("tmpfs: %r: %r is not a mount option (like rw, noexec, nosuid, "
                                "size=64m, mode=1777)" % (spec, opt))
    return path, ",".join(opts)


def _container_path_ok(path):
    return bool(CONTAINER_PATH_RE.match(path)) and path != "/" and posixpath.normpath(path) == path


def volume_destination(spec):
    parts = str(spec).split(":")
    return parts[1] if len(parts) in (2, 3) else None


def secret_path(key):
    """Where a secret file is mounted in the container."""
    return "%s/%s" % (SECRET_MOUNT_DIR, key)


def validate(params):
    """Check the module input; raise AppfleetError naming the option."""
    name = params.get("name")
    if not name or not NAME_RE.match(name):
        raise AppfleetError(
            "name: %r is not a valid app name (letters, digits, '_', '.', '-', starting "
            "with a letter or digit, at most 63 characters)" % (name,))
    if name.endswith(TEMP_SUFFIX):
        raise AppfleetError("name: %r must not end with %r (reserved for rollouts)" % (name, TEMP_SUFFIX))
    cname = params.get("container_name")
    if cname is not None and not NAME_RE.match(cname):
        raise AppfleetError("container_name: %r is not a valid container name" % (cname,))
    if params.get("state", "present") == "present" and not params.get("rollback") and not params.get("image"):
        raise AppfleetError("image: required unless rollback is true or state is absent")
    if params.get("port") is not None:
        _port_number(params["port"], "port")
    fixed_host_port = False
    for spec in params.get("published_ports") or []:
        ip, host_port, dummy, dummy2 = parse_port_spec(spec)
        if host_port is not None:
            fixed_host_port = True
    if fixed_host_port and params.get("strategy") == "start-first":
        raise AppfleetError(
            "published_ports: a fixed host port cannot be bound by two containers at once; "
            "use strategy stop-first, or publish only the app port through the proxy")
    policy = params.get("restart_policy")
    if policy is not None and policy not in RESTART_POLICIES:
        raise AppfleetError("restart_policy: %r is not one of %s" % (policy, ", ".join(RESTART_POLICIES)))
    env = params.get("env") or {}
    secret = params.get("secret_env") or {}
    for option, mapping in (("env", env), ("secret_env", secret)):
        for key in mapping:
            if not ENV_KEY_RE.match(str(key)):
                raise AppfleetError(
                    "%s: %r is not a valid variable name (letters, digits and _, not starting with a "
                    "digit; it also names the secret's file)" % (option, key))
    both = sorted(set(env) & set(secret))
    if both:
        raise AppfleetError("secret_env: %s also set in env; set each variable in one place" % ", ".join(both))
    delivery = params.get("secret_delivery") or "file"
    if delivery not in SECRET_DELIVERIES:
        raise AppfleetError("secret_delivery: %r is not one of %s" % (delivery, ", ".join(SECRET_DELIVERIES)))
    if delivery == "file":
        clash = sorted(k + "_FILE" for k in secret if k + "_FILE" in env or k + "_FILE" in secret)
        if clash:
            raise AppfleetError("secret_env: %s is set by the module (it points at the secret's file); "
                                "remove it from env and secret_env" % ", ".join(clash))
    secret_dir = params.get("secret_dir")
    if secret_dir is not None and (not str(secret_dir).startswith("/") or str(secret_dir) == "/"
                                   or posixpath.normpath(str(secret_dir)) != str(secret_dir)):
        raise AppfleetError("secret_dir: %r must be an absolute, normalised directory path" % (secret_dir,))
    secret_uid = params.get("secret_uid")
    if secret_uid is not None and not 0 <= secret_uid < 2 ** 31:
        raise AppfleetError("secret_uid: %r is not a uid (0 to 2147483647)" % (secret_uid,))
    reserved = dict((secret_path(k), "secret_env") for k in secret) if delivery == "file" else {}
    destinations = {}
    for spec in params.get("volumes") or []:
        parts = str(spec).split(":")
        if len(parts) not in (2, 3) or not parts[0] or not parts[1].startswith("/") or "\n" in str(spec):
            raise AppfleetError("volumes: %r is not source:/container/path[:mode]" % (spec,))
        if parts[1] in reserved:
            raise AppfleetError("volumes: %r mounts over the secret file %s" % (spec, parts[1]))
        destinations[parts[1]] = "volumes"
    for spec in params.get("tmpfs") or []:
        path, dummy = parse_tmpfs_spec(spec)
        if path in reserved or path in destinations:
            raise AppfleetError("tmpfs: %r: %s is already mounted by %s"
                                % (spec, path, reserved.get(path) or destinations[path]))
        destinations[path] = "tmpfs"
    user = params.get("user")
    if user is not None and not USER_RE.match(str(user)):
        raise AppfleetError("user: %r is not user[:group] (a name or a numeric uid, e.g. 1000:1000 or app)"
                            % (user,))
    caps = {}
    for option in ("cap_drop", "cap_add"):
        caps[option] = set(normalize_capability(c, option) for c in params.get(option) or [])
    both_caps = sorted((caps["cap_add"] & caps["cap_drop"]) - set(["ALL"]))
    if both_caps:
        raise AppfleetError("cap_add: %s also in cap_drop; list each capability in one of them"
                            % ", ".join(both_caps))
    pids = params.get("pids_limit")
    if pids is not None and pids != -1 and pids < 1:
        raise AppfleetError("pids_limit: %r must be at least 1, or -1 for no limit" % (pids,))
    for opt in params.get("security_opts") or []:
        if not SECURITY_OPT_RE.match(str(opt)):
            raise AppfleetError(
                "security_opts: %r is not a security option this module passes on (no-new-privileges[:true], "
                "apparmor=PROFILE, label=..., seccomp=unconfined or a seccomp profile's JSON, "
                "systempaths=unconfined)" % (opt,))
    for net in params.get("networks") or []:
        if not NAME_RE.match(str(net)) and not re.match(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*\Z", str(net)):
            raise AppfleetError("networks: %r is not a valid network name" % (net,))
    memory = params.get("memory")
    if memory is not None and not MEMORY_RE.match(str(memory)):
        raise AppfleetError("memory: %r is not a size like 256m or 1g" % (memory,))
    cpus = params.get("cpus")
    if cpus is not None and cpus <= 0:
        raise AppfleetError("cpus: must be greater than 0")
    health = params.get("health") or {}
    if health.get("path"):
        if params.get("port") is None:
            raise AppfleetError("health.path: needs port (the container port to poll)")
        if not str(health["path"]).startswith("/"):
            raise AppfleetError("health.path: %r must start with /" % (health["path"],))
    for key in ("timeout", "interval"):
        if health.get(key) is not None and health[key] <= 0:
            raise AppfleetError("health.%s: must be greater than 0" % key)
    for key in ("drain_seconds", "stop_timeout", "lock_timeout"):
        if params.get(key) is not None and params[key] < 0:
            raise AppfleetError("%s: must not be negative" % key)
    hc = params.get("healthcheck") or {}
    if hc and not hc.get("disable") and not hc.get("test"):
        raise AppfleetError("healthcheck.test: required unless healthcheck.disable is true")
    for key in ("log_options",):
        for okey, oval in (params.get(key) or {}).items():
            if not isinstance(oval, str):
                raise AppfleetError("%s.%s: values must be strings" % (key, okey))
    proxy = params.get("proxy") or {}
    for key in ("test_command", "reload_command"):
        if proxy.get(key) is not None and not proxy[key]:
            raise AppfleetError("proxy.%s: must not be empty" % key)


def normalize_healthcheck(hc):
    if not hc:
        return None
    if hc.get("disable"):
        return {"test": ["NONE"]}
    test = hc.get("test")
    if isinstance(test, str):
        test = ["CMD-SHELL", test]
    else:
        test = [str(x) for x in test]
        if test and test[0] not in ("CMD", "CMD-SHELL", "NONE"):
            test = ["CMD"] + test
    out = {"test": test}
    for key in ("interval", "timeout", "start_period"):
        if hc.get(key) is not None:
            out[key] = int(hc[key])
    if hc.get("retries") is not None:
        out["retries"] = int(hc["retries"])
    return out


def desired_config(params):
    """The non-secret desired container config, normalised (image excluded).

    It never holds a secret value, only the names of the secret variables and
    how they are delivered; the secret values are compared separately
    (Rollout.secret_changes).
    """
    env = params.get("env") or {}
    log_options = params.get("log_options") or {}
    delivery = params.get("secret_delivery") or "file"
    tmpfs = dict(parse_tmpfs_spec(t) for t in (params.get("tmpfs") or []))
    cfg = {
        "command": list(params["command"]) if params.get("command") else None,
        "env": dict((str(k), str(v)) for k, v in env.items()),
        "secret_env_keys": sorted(str(k) for k in (params.get("secret_env") or {})),
        "secret_delivery": delivery,
        "secret_uid": params.get("secret_uid") if delivery == "file" else None,
        "port": params.get("port"),
        "published_ports": sorted(canonical_port_spec(p) for p in (params.get("published_ports") or [])),
        "volumes": sorted(str(v) for v in (params.get("volumes") or [])),
        "networks": sorted(str(n) for n in (params.get("networks") or [])),
        "restart_policy": params.get("restart_policy") or "unless-stopped",
        "labels": dict((str(k), str(v)) for k, v in (params.get("labels") or {}).items()),
        "healthcheck": normalize_healthcheck(params.get("healthcheck")),
        "log_driver": params.get("log_driver"),
        "log_options": dict((str(k), str(v)) for k, v in log_options.items()),
        "memory": str(params["memory"]).lower() if params.get("memory") else None,
        "cpus": float(params["cpus"]) if params.get("cpus") else None,
        "stop_timeout": params.get("stop_timeout"),
        "user": str(params["user"]) if params.get("user") else None,
        "read_only": bool(params.get("read_only")),
        "tmpfs": sorted(("%s:%s" % (k, v)) if v else k for k, v in tmpfs.items()),
        "cap_drop": sorted(set(normalize_capability(c, "cap_drop") for c in params.get("cap_drop") or [])),
        "cap_add": sorted(set(normalize_capability(c, "cap_add") for c in params.get("cap_add") or [])),
        "pids_limit": params.get("pids_limit"),
        "security_opts": sorted(set(str(o) for o in params.get("security_opts") or [])),
    }
    return cfg


# Schema version of the config hash, the prefix of the label value (``v2:<hex>``).
CONFIG_HASH_VERSION = "v2"
# The value each desired_config() key has when its option is not set (the module's defaults
# as of schema v2). A key holding it is left out of the v2 hash, so an option added in a later
# release, left at its default, changes no hash and swaps no container. Frozen here on purpose:
# a changed module default that changes the container does change the hash.
CONFIG_DEFAULTS_V2 = {
    "command": None, "env": {}, "secret_env_keys": [], "secret_delivery": "file", "secret_uid": None,
    "port": None, "published_ports": [], "volumes": [], "networks": [], "restart_policy": "unless-stopped",
    "labels": {}, "healthcheck": None, "log_driver": None, "log_options": {}, "memory": None, "cpus": None,
    "stop_timeout": 10, "user": None, "read_only": False, "tmpfs": [], "cap_drop": [], "cap_add": [],
    "pids_limit": 1024, "security_opts": ["no-new-privileges:true"],
}
# desired_config() keys that do not shape the container: none today. A setting of the rollout
# alone (strategy, health, proxy, drain_seconds, lock_*) never enters desired_config().
CONFIG_NOT_HASHED = frozenset()


def config_hash(cfg):
    """The label value of the desired config: ``v2:<sha256>`` of its non-default settings."""
    # A key unknown to v2 (a later option) counts as default when None; a None where v2's default
    # is not None (pids_limit unset: no limit) is a setting of its own and stays.
    kept = dict((k, v) for k, v in cfg.items()
                if k not in CONFIG_NOT_HASHED and CONFIG_DEFAULTS_V2.get(k) != v)
    text = json.dumps(kept, sort_keys=True, separators=(",", ":"))
    return "%s:%s" % (CONFIG_HASH_VERSION, hashlib.sha256(text.encode("utf-8")).hexdigest())


def config_hash_v1(cfg):
    """The hash of releases before schema v2 (a bare sha256 over every key, None included).

    Kept only to recognise containers made by those releases: one whose label
    equals this hash of the desired config is unchanged and is not swapped.
    """
    text = json.dumps(cfg, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def hash_matches(label, cfg):
    """True when a container's config-hash label is the hash of ``cfg`` (any schema version)."""
    if not label:
        return False
    if label.startswith(CONFIG_HASH_VERSION + ":"):
        return label == config_hash(cfg)
    if re.match(r"^[0-9a-f]{64}\Z", label):
        return label == config_hash_v1(cfg)
    return False  # an unknown (later) schema: swap once to this release's


def stored_config(labels):
    """The desired config a container was created with (from its label), or {}."""
    try:
        data = json.loads((labels or {}).get(LABEL_CONFIG) or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def env_list_to_dict(env_list):
    out = {}
    for item in env_list or []:
        key, sep, value = item.partition("=")
        out[key] = value if sep else ""
    return out


def changed_secret_keys(desired_secret, container_env, stored_keys):
    """Names of secret variables whose value differs from the container's (never values)."""
    changed = set()
    for key, value in (desired_secret or {}).items():
        if container_env.get(key) != str(value):
            changed.add(key)
    for key in stored_keys or []:
        if key not in (desired_secret or {}):
            changed.add(key)
    return sorted(changed)


def config_diff(before_cfg, after_cfg, before_image, after_image, secret_changed):
    """before/after dicts holding only the settings that change; secrets masked."""
    before, after = {}, {}
    if before_image != after_image:
        before["image"], after["image"] = before_image, after_image
    keys = sorted(set(before_cfg or {}) | set(after_cfg or {}))
    for key in keys:
        if key == "secret_env_keys":
            continue
        old, new = (before_cfg or {}).get(key), (after_cfg or {}).get(key)
        if old != new:
            before[key], after[key] = old, new
    if secret_changed:
        old_keys = set((before_cfg or {}).get("secret_env_keys") or [])
        new_keys = set((after_cfg or {}).get("secret_env_keys") or [])
        before["secret_env"] = dict((k, SECRET_MASK) for k in sorted(old_keys) if k in secret_changed)
        after["secret_env"] = dict((k, SECRET_MASK + " (changed)") for k in sorted(new_keys) if k in secret_changed)
    return before, after


def choose_serving(containers, stable_name, upstream_port):
    """Decide which of an app's containers serves and which are strays.

    ``containers``: dicts with id, name, running, created, host_port.
    A container with the temporary name counts as serving only when the proxy
    already points at it (it passed its health check before the switch).
    Returns (serving_or_None, [strays]).
    """
    def by_age(c):
        return c.get("created") or ""

    items = sorted(containers, key=by_age, reverse=True)
    running = [c for c in items if c.get("running")]
    proxied = [c for c in running if upstream_port and c.get("host_port") == upstream_port]
    stable_running = [c for c in running if c.get("name") == stable_name]
    stable_any = [c for c in items if c.get("name") == stable_name]
    if proxied:
        serving = proxied[0]
    elif stable_running:
        serving = stable_running[0]
    elif stable_any:
        serving = stable_any[0]
    else:
        untrusted = [c for c in items if c.get("name") != temp_name(stable_name)]
        serving = untrusted[0] if untrusted else None
    strays = [c for c in items if serving is None or c["id"] != serving["id"]]
    return serving, strays


def new_release_id():
    """A name for a new directory of secret files: sortable by time, unique."""
    return "%s-%s" % (time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
                      binascii.hexlify(os.urandom(4)).decode("ascii"))


def passwd_uid(passwd_text, name):
    """The uid of user ``name`` in the text of an /etc/passwd, or None."""
    for line in (passwd_text or "").splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[0] == name and fields[2].isdigit():
            return int(fields[2])
    return None


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SecretStore(object):
    """The secret files of one app on the host.

    ``<base>/<app>/<release>/<KEY>``: the base and app directories are made
    root-only (0700), each release directory is written under a temporary name
    and renamed into place (atomic), its files are mode 0400, owned by the uid
    the container runs as (root until chown() is called). A release is never
    changed once written: a changed value makes a new release for a new
    container, and prune() removes the releases no container mounts any more.
    """

    def __init__(self, base, app):
        self.base = base or DEFAULT_SECRET_DIR
        self.app = app
        self.app_dir = os.path.join(self.base, app)

    def release_of(self, source):
        """The release name of a mount source of this app, or None for anything else."""
        parent, key = os.path.split(source or "")
        app_dir, release = os.path.split(parent)
        if app_dir != self.app_dir or not RELEASE_RE.match(release) or not ENV_KEY_RE.match(key):
            return None
        return release

    def releases(self):
        """Names of the release (and left-over temporary) directories present."""
        try:
            names = os.listdir(self.app_dir)
        except OSError:
            return []
        return sorted(n for n in names if RELEASE_RE.match(n) or TMP_RELEASE_RE.match(n))

    def exists(self):
        return os.path.lexists(self.app_dir)

    def changed_keys(self, values, mounts):
        """Names (never values) of the secrets whose mounted file is not the wanted value.

        ``mounts``: {KEY: host source} of a container's /run/secrets/* binds.
        A file that is missing, not a regular file, not mode 0400, outside this
        app's releases or with other content counts as changed.
        """
        changed = set(k for k in mounts if k not in values)
        for key, value in values.items():
            source = mounts.get(key)
            if not source or self.release_of(source) is None or os.path.basename(source) != key:
                changed.add(key)
                continue
            try:
                fd = os.open(source, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            except OSError:
                changed.add(key)
                continue
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode) or (st.st_mode & 0o7777) != SECRET_FILE_MODE:
                    changed.add(key)
                    continue
                want = str(value).encode("utf-8")
                have = os.read(fd, len(want) + 1)
                if have != want:
                    changed.add(key)
            finally:
                os.close(fd)
        return sorted(changed)

    def _ensure_dir(self, path):
        os.makedirs(path, 0o700, exist_ok=True)
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode):
            raise OSError("%s is not a directory" % path)
        if st.st_uid != 0 or st.st_gid != 0:
            os.chown(path, 0, 0)
        if (st.st_mode & 0o7777) != 0o700:
            os.chmod(path, 0o700)

    def write(self, values):
        """Write a new release of ``values``; return its directory."""
        os.makedirs(self.base, 0o700, exist_ok=True)
        self._ensure_dir(self.app_dir)
        name = new_release_id()
        tmp = os.path.join(self.app_dir, ".tmp-" + name)
        os.mkdir(tmp, 0o700)
        try:
            for key in sorted(values):
                path = os.path.join(tmp, key)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0),
                             SECRET_FILE_MODE)
                with os.fdopen(fd, "wb") as handle:
                    handle.write(str(values[key]).encode("utf-8"))
                    handle.flush()
                    os.fsync(handle.fileno())
                os.chmod(path, SECRET_FILE_MODE)
            _fsync_dir(tmp)
            final = os.path.join(self.app_dir, name)
            os.rename(tmp, final)
            _fsync_dir(self.app_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final

    def chown(self, release_dir, uid):
        """Give the files of a release to the container's uid (group root, mode 0400)."""
        for key in os.listdir(release_dir):
            path = os.path.join(release_dir, key)
            os.chown(path, uid, 0, follow_symlinks=False)
            os.chmod(path, SECRET_FILE_MODE)

    def remove_release(self, release_dir):
        """Remove a release no container uses (a failed rollout's); the app directory too once empty."""
        if release_dir and os.path.dirname(release_dir) == self.app_dir:
            shutil.rmtree(release_dir, ignore_errors=True)
            try:
                os.rmdir(self.app_dir)
            except OSError:
                pass  # not empty: other releases are in use

    def unused(self, keep):
        return [n for n in self.releases() if n not in keep]

    def prune(self, keep):
        """Remove the releases not in ``keep`` (and the app directory once empty); return their names."""
        removed = self.unused(keep)
        for name in removed:
            shutil.rmtree(os.path.join(self.app_dir, name), ignore_errors=True)
        try:
            if os.path.isdir(self.app_dir) and not os.listdir(self.app_dir):
                os.rmdir(self.app_dir)
        except OSError:
            pass
        return removed

    def remove_all(self):
        if os.path.isdir(self.app_dir) and not os.path.islink(self.app_dir):
            shutil.rmtree(self.app_dir, ignore_errors=True)


# ------------------------------------------------------------- docker helpers

def _short(cid):
    return (cid or "")[:12]


def free_loopback_port(used, attempts=50):
    """A TCP port free on 127.0.0.1 and not claimed by any container."""
    for dummy in range(attempts):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        finally:
            sock.close()
        if port not in used:
            return port
    raise AppfleetError("found no free port on 127.0.0.1 after %d attempts" % attempts)


def port_taken(exc, host_port):
    """True when starting a container failed because ``host_port`` is bound by something else."""
    text = str(exc)
    taken = "port is already allocated" in text or "address already in use" in text
    return bool(taken and host_port and ":%d" % host_port in text)


def http_ok(port, path, timeout=2.0):
    """True when GET http://127.0.0.1:port/path answers 2xx or 3xx."""
    conn = HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"User-Agent": "appfleet-health"})
        resp = conn.getresponse()
        resp.read()
        return 200 <= resp.status < 400, "HTTP %s" % resp.status
    except (socket.error, socket.timeout, IOError, OSError) as exc:
        return False, str(exc) or exc.__class__.__name__
    except Exception as exc:  # http.client raises its own exceptions (BadStatusLine ...)
        return False, str(exc) or exc.__class__.__name__
    finally:
        conn.close()


class Rollout(object):
    """Everything app_container does against the engine for one app."""

    def __init__(self, module, client, params, image_id, image_labels, proxy=None, secrets=None):
        self.module = module
        self.api = client.api
        self.params = params
        self.app = params["name"]
        self.stable_name = params.get("container_name") or params["name"]
        self.image_id = image_id
        self.image_labels = image_labels or {}
        self.proxy = proxy
        self.secrets = secrets or SecretStore(params.get("secret_dir"), params["name"])
        self.cfg = desired_config(params)
        self.hash = config_hash(self.cfg)
        self.health = params.get("health") or {}
        self.removed = []

    # -- discovery
    def app_containers(self):
        found = self.api.containers(all=True, filters={"label": "%s=%s" % (LABEL_APP, self.app)})
        out = []
        for summary in found:
            labels = summary.get("Labels") or {}
            if LABEL_CONFIG_HASH not in labels:
                continue  # inherits the app label from its image, not ours
            out.append(self.describe(summary["Id"]))
        return [c for c in out if c]

    def describe(self, cid):
        try:
            info = self.api.inspect_container(cid)
        except Exception as exc:  # vanished meanwhile
            if is_not_found(exc):
                return None
            raise
        state = info.get("State") or {}
        labels = (info.get("Config") or {}).get("Labels") or {}
        ports = (info.get("NetworkSettings") or {}).get("Ports") or {}
        host_port = None
        app_port = self.params.get("port")
        bindings = ports.get("%s/tcp" % app_port) if app_port else None
        if not bindings and app_port:
            bindings = ((info.get("HostConfig") or {}).get("PortBindings") or {}).get("%s/tcp" % app_port)
        for binding in bindings or []:
            if binding.get("HostIp") in ("127.0.0.1",) and binding.get("HostPort"):
                host_port = int(binding["HostPort"])
                break
        health = (state.get("Health") or {}).get("Status")
        return {
            "id": info["Id"],
            "name": info["Name"].lstrip("/"),
            "running": bool(state.get("Running")) and not state.get("Restarting"),
            "status": state.get("Status"),
            "started_at": state.get("StartedAt"),
            "created": info.get("Created"),
            "image": info.get("Image"),
            "labels": labels,
            "env": env_list_to_dict((info.get("Config") or {}).get("Env")),
            "secret_mounts": secret_mounts(info),
            "host_port": host_port,
            "ports": ports,
            "health": health or ("none" if state.get("Running") else state.get("Status")),
        }

    def used_host_ports(self):
        used = set()
        for summary in self.api.containers(all=True):
            for port in summary.get("Ports") or []:
                if port.get("PublicPort"):
                    used.add(int(port["PublicPort"]))
            try:
                hostcfg = self.api.inspect_container(summary["Id"]).get("HostConfig") or {}
            except Exception:
                continue
            for bindings in (hostcfg.get("PortBindings") or {}).values():
                for binding in bindings or []:
                    if binding.get("HostPort"):
                        try:
                            used.add(int(binding["HostPort"]))
                        except ValueError:
                            pass
        return used

    # -- comparisons
    def secret_changes(self, current):
        """Names of the secrets whose value the container does not have (never the values).

        A container made with file delivery is compared through the files it
        mounts; one made with env delivery (or before files existed) through
        its environment.
        """
        desired = dict((str(k), v) for k, v in (self.params.get("secret_env") or {}).items())
        if current is None:
            return sorted(desired)
        stored = stored_config(current["labels"])
        if stored.get("secret_delivery", "env") == "file":
            return self.secrets.changed_keys(desired, current.get("secret_mounts") or {})
        return changed_secret_keys(desired, current["env"], stored.get("secret_env_keys"))

    def secret_releases(self, current):
        """The releases of secret files a container mounts."""
        if current is None:
            return set()
        found = (self.secrets.release_of(src) for src in (current.get("secret_mounts") or {}).values())
        return set(r for r in found if r)

    def matches(self, current, secret_changes=None):
        if current is None:
            return False
        if current["image"] != self.image_id:
            return False
        if not hash_matches(current["labels"].get(LABEL_CONFIG_HASH), self.cfg):
            return False
        if secret_changes is None:
            secret_changes = self.secret_changes(current)
        return not secret_changes

    def diff(self, current, secret_changes=None):
        if secret_changes is None:
            secret_changes = self.secret_changes(current)
        if current is None:
            before_cfg, before_image = {}, None
        else:
            before_cfg = stored_config(current["labels"])
            before_image = current["image"]
        return config_diff(before_cfg, self.cfg, before_image, self.image_id, secret_changes)

    # -- container lifecycle
    def remove(self, cid, stop_timeout=None, record=True):
        """Stop (bounded by stop_timeout) and remove a container; gone already is fine."""
        timeout = self.params.get("stop_timeout") if stop_timeout is None else stop_timeout
        try:
            self.api.stop(cid, timeout=timeout)
        except Exception:  # gone, or not stoppable: the forced removal below settles it
            pass
        try:
            self.api.remove_container(cid, v=False, force=True)
        except Exception as exc:
            if is_not_found(exc):
                return
            raise
        if record:
            self.removed.append(_short(cid))

    def logs_tail(self, cid, lines=20):
        try:
            data = self.api.logs(cid, stdout=True, stderr=True, tail=lines)
        except Exception as exc:
            return "(no logs: %s)" % exc
        if isinstance(data, bytes):
            data = data.decode("utf-8", "replace")
        data = data.strip()
        return data if data else "(none)"

    def previous_image_for(self, current):
        """The rollback target to record on the new container."""
        if current is None:
            return None
        if current["image"] != self.image_id:
            return current["image"]
        return current["labels"].get(LABEL_PREVIOUS_IMAGE)

    def create(self, name, current, host_port, secret_release=None):
        """Create (not start) the new container; ``secret_release`` holds its secret files."""
        import docker.types  # the SDK is present: AppfleetModule checked it

        params = self.params
        labels = dict(self.cfg["labels"])
        labels[LABEL_APP] = self.app
        labels[LABEL_CONFIG_HASH] = self.hash
        labels[LABEL_CONFIG] = json.dumps(self.cfg, sort_keys=True, separators=(",", ":"))
        previous = self.previous_image_for(current)
        if previous:
            labels[LABEL_PREVIOUS_IMAGE] = previous
        if self.image_labels.get(LABEL_SOURCE_ID):
            labels[LABEL_SOURCE_ID] = self.image_labels[LABEL_SOURCE_ID]

        env = dict(self.cfg["env"])
        binds = list(self.cfg["volumes"])
        secret = params.get("secret_env") or {}
        if self.cfg["secret_delivery"] == "env":
            # Explicitly chosen: the values are in the container's config (docker inspect).
            for key, value in secret.items():
                env[str(key)] = str(value)
        elif secret:
            for key in sorted(str(k) for k in secret):
                binds.append("%s:%s:ro" % (os.path.join(secret_release, key), secret_path(key)))
                env[key + "_FILE"] = secret_path(key)

        port_bindings = {}
        exposed = []
        if params.get("port") and host_port:
            key = (int(params["port"]), "tcp")
            exposed.append(key)
            port_bindings.setdefault("%d/tcp" % params["port"], []).append(("127.0.0.1", host_port))
        for spec in self.cfg["published_ports"]:
            ip, hport, cport, proto = parse_port_spec(spec)
            if (cport, proto) not in exposed:
                exposed.append((cport, proto))
            port_bindings.setdefault("%d/%s" % (cport, proto), []).append((ip, hport))

        policy = self.cfg["restart_policy"]
        host_kwargs = dict(
            binds=binds or None,
            port_bindings=port_bindings or None,
            restart_policy={"Name": policy} if policy != "no" else None,
            read_only=self.cfg["read_only"] or None,
            tmpfs=dict(parse_tmpfs_spec(t) for t in self.cfg["tmpfs"]) or None,
            cap_drop=self.cfg["cap_drop"] or None,
            cap_add=self.cfg["cap_add"] or None,
            security_opt=self.cfg["security_opts"] or None,
        )
        if self.cfg["pids_limit"] is not None:
            host_kwargs["pids_limit"] = self.cfg["pids_limit"]
        if self.cfg["log_driver"] or self.cfg["log_options"]:
            host_kwargs["log_config"] = docker.types.LogConfig(
                type=self.cfg["log_driver"] or "json-file", config=self.cfg["log_options"])
        if self.cfg["memory"]:
            host_kwargs["mem_limit"] = self.cfg["memory"]
        if self.cfg["cpus"]:
            host_kwargs["nano_cpus"] = int(self.cfg["cpus"] * 1e9)
        host_config = self.api.create_host_config(**host_kwargs)

        networking = None
        networks = self.cfg["networks"]
        if networks:
            networking = self.api.create_networking_config({networks[0]: self.api.create_endpoint_config()})

        healthcheck = None
        hc = self.cfg["healthcheck"]
        if hc:
            healthcheck = {"test": hc["test"]}
            for key in ("interval", "timeout", "start_period"):
                if key in hc:
                    healthcheck[key] = int(hc[key] * 1e9)
            if "retries" in hc:
                healthcheck["retries"] = hc["retries"]

        kwargs = dict(
            image=self.image_id,
            command=self.cfg["command"],
            name=name,
            environment=env,
            labels=labels,
            ports=[p if p[1] != "tcp" else p[0] for p in exposed] or None,
            host_config=host_config,
            networking_config=networking,
            healthcheck=healthcheck,
        )
        if self.cfg["stop_timeout"] is not None:
            kwargs["stop_timeout"] = self.cfg["stop_timeout"]
        if self.cfg["user"]:
            kwargs["user"] = self.cfg["user"]
        created = self.api.create_container(**kwargs)
        cid = created["Id"]
        for net in networks[1:]:
            self.api.connect_container_to_network(cid, net)
        return cid

    def userns_remapped(self):
        """True when the engine runs containers in a remapped user namespace (userns-remap)."""
        options = self.api.info().get("SecurityOptions") or []
        return any("name=userns" in str(o) for o in options)

    def read_container_file(self, cid, path, limit=1024 * 1024):
        """The text of a file in a created container (docker cp, nothing runs), or None."""
        for dummy in range(3):
            try:
                chunks, info = self.api.get_archive(cid, path)
            except Exception as exc:
                if is_not_found(exc):
                    return None
                raise
            data = b"".join(chunks)
            target = (info or {}).get("linkTarget")
            if target:
                path = target if target.startswith("/") else posixpath.join(posixpath.dirname(path), target)
                continue
            with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                for member in tar.getmembers():
                    if member.isfile() and member.size <= limit:
                        return tar.extractfile(member).read().decode("utf-8", "replace")
            return None
        return None

    def secret_owner(self, cid):
        """The uid that is to own the secret files of container ``cid``.

        ``secret_uid`` when given; else the uid the container runs as: its
        user (the ``user`` option, else the image's USER), a number as it is, a
        name looked up in the image's /etc/passwd, root when there is none.
        """
        if self.params.get("secret_uid") is not None:
            return int(self.params["secret_uid"])
        info = self.api.inspect_container(cid)
        spec = ((info.get("Config") or {}).get("User") or "").strip()
        name = spec.split(":", 1)[0]
        source = "user" if self.cfg["user"] else "the image's USER"
        if name in ("", "root"):
            return 0
        if name.isdigit():
            return int(name)
        uid = passwd_uid(self.read_container_file(cid, "/etc/passwd"), name)
        if uid is None:
            raise AppfleetError("user: the container's user %r (from %s) is not in the image's /etc/passwd, so "
                                "the owner of its secret files is unknown; set user to a numeric uid[:gid] or "
                                "secret_uid" % (name, source))
        return uid

    def wait_healthy(self, cid, host_port):
        """Return None when healthy, else the reason it is not (after the timeout at most)."""
        timeout = float(self.health.get("timeout") or 60)
        interval = float(self.health.get("interval") or 1)
        settle = float(self.health.get("settle") if self.health.get("settle") is not None else 2)
        path = self.health.get("path")
        deadline = time.time() + timeout
        up_since = None
        last = "it did not become healthy"
        while True:
            info = self.api.inspect_container(cid)
            state = info.get("State") or {}
            if state.get("Status") in ("exited", "dead") or state.get("Restarting"):
                return "new container exited with code %s" % state.get("ExitCode")
            docker_health = (state.get("Health") or {}).get("Status")
            ok = bool(state.get("Running"))
            if docker_health == "unhealthy":
                return "new container became unhealthy (docker health check)"
            if docker_health and docker_health != "healthy":
                ok = False
                last = "docker health status %s" % docker_health
            if ok and path:
                ok, what = http_ok(host_port, path)
                if not ok:
                    last = "GET %s: %s" % (path, what)
            if ok and not path and not docker_health:
                up_since = up_since or time.time()
                ok = time.time() - up_since >= settle
                last = "it did not stay up %s s" % settle
            if ok:
                return None
            now = time.time()
            if now >= deadline:
                return "new container failed its health check after %s s (%s)" % (_fmt(timeout), last)
            time.sleep(max(0.05, min(interval, deadline - now)))

    def fail_message(self, reason, cid, old_state):
        return "app %s: %s; %s. Last log lines: %s" % (
            self.app, reason, old_state, self.logs_tail(cid) if cid else "(none)")


def secret_mounts(info):
    """{KEY: host source} of a container's read-only binds at /run/secrets/<KEY>."""
    out = {}
    prefix = SECRET_MOUNT_DIR + "/"
    for mount in info.get("Mounts") or []:
        dest = mount.get("Destination") or ""
        if mount.get("Type") == "bind" and dest.startswith(prefix) and "/" not in dest[len(prefix):]:
            out[dest[len(prefix):]] = mount.get("Source")
    return out


def _fmt(seconds):
    return ("%d" % seconds) if float(seconds).is_integer() else ("%s" % seconds)
