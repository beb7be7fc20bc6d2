# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""app_container's input, checked and normalised: pure functions only.

Private to this collection (leading underscore): not a public API.

No Docker client and no file I/O here (unit tested): the input validation, the
desired config, the diff and the pure arguments of a new container. Its hash is
in _config_hash.py.
"""

from __future__ import annotations

import json
import os
import ipaddress
import posixpath
import re

from ansible_collections.appfleet.docker.plugins.module_utils._docker import (
    APP_NAME_RE,
    APP_NAME_RULE,
    LABEL_APP,
    LABEL_CONFIG,
    LABEL_CONFIG_HASH,
    LABEL_PREVIOUS_IMAGE,
    LABEL_SOURCE_ID,
    AppfleetError,
)
from ansible_collections.appfleet.docker.plugins.module_utils._config_hash import config_hash
from ansible_collections.appfleet.docker.plugins.module_utils._image_ref import image_error
from ansible_collections.appfleet.docker.plugins.module_utils._resources import cpu_shares_problem, memory_problem

# The collection's app-name rule (module_utils/_docker.py).
NAME_RE = APP_NAME_RE
# An explicit container_name: Docker's own rule (upper case and '.' allowed), at most 63 characters.
CONTAINER_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}\Z")
ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}\Z")
TEMP_SUFFIX = "--next"
# The old container of a start-first swap while it drains: <name>--draining-<unix time it is removed at>.
DRAIN_INFIX = "--draining-"
DRAIN_NAME_RE = re.compile(r"^(?P<name>.+)--draining-(?P<until>[0-9]{1,12})\Z")
RESTART_POLICIES = ("no", "on-failure", "always", "unless-stopped")
SECRET_MASK = "********"

# Secrets as files: one file per key, mounted read-only at /run/secrets/<KEY>,
# with <KEY>_FILE in the environment pointing at it.
SECRET_DELIVERIES = ("file", "env")
SECRET_MOUNT_DIR = "/run/secrets"

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


# ---------------------------------------------------------------- pure logic

def temp_name(name):
    """The name a new container has while it runs beside the serving one."""
    return name + TEMP_SUFFIX


def draining_name(name, until):
    """The name of the old container while it drains: the deadline (unix time, whole seconds) in it.

    A container's labels are fixed when it is made; its name is not, and every listing of
    the engine shows it: the deadline survives the run, a killed remover and a reboot.
    """
    return "%s%s%d" % (name, DRAIN_INFIX, until)


def drain_deadline(container_name, name=None):
    """The deadline (unix time) in a draining container's name (of ``name``'s, when given), else None."""
    found = DRAIN_NAME_RE.match(container_name or "")
    if not found or (name is not None and found.group("name") != name):
        return None
    return int(found.group("until"))


def drain_owner(container_name):
    """The serving container's name a draining container belongs to, else None."""
    found = DRAIN_NAME_RE.match(container_name or "")
    return found.group("name") if found else None


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


def secret_path(key):
    """Where a secret file is mounted in the container."""
    return "%s/%s" % (SECRET_MOUNT_DIR, key)


def uses_secret_files(params):
    """True when the secret variables are delivered as files (the default)."""
    return bool(params.get("secret_env")) and params["secret_delivery"] == "file"


def validate(params):
    """Check the module input; raise AppfleetError naming the option."""
    name = params.get("name")
    if not name or not NAME_RE.match(name):
        raise AppfleetError("name: %r is not a valid app name (%s)" % (name, APP_NAME_RULE))
    if name.endswith(TEMP_SUFFIX):
        raise AppfleetError("name: %r must not end with %r (reserved for rollouts)" % (name, TEMP_SUFFIX))
    cname = params.get("container_name")
    for option, value in (("name", name), ("container_name", cname)):
        if drain_owner(value):
            raise AppfleetError("%s: %r must not end with %r and digits (reserved for draining containers)"
                                % (option, value, DRAIN_INFIX))
    if cname is not None and not CONTAINER_NAME_RE.match(cname):
        raise AppfleetError("container_name: %r is not a valid container name (letters, digits, _ . -, "
                            "starting with a letter or digit, at most 63 characters)" % (cname,))
    if params.get("state", "present") == "present" and not params.get("rollback") and not params.get("image"):
        raise AppfleetError("image: required unless rollback is true or state is absent")
    if params.get("image"):
        err = image_error("image", params["image"])
        if err:
            raise AppfleetError(err)
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
    if memory is not None and memory_problem(memory):
        raise AppfleetError("memory: %r %s" % (memory, memory_problem(memory)))
    shares = params.get("cpu_shares")
    if shares is not None and cpu_shares_problem(shares):
        raise AppfleetError("cpu_shares: %r %s" % (shares, cpu_shares_problem(shares)))
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
    (AppContainer.secret_changes in _app_container.py).
    """
    env = params.get("env") or {}
    log_options = params.get("log_options") or {}
    delivery = params.get("secret_delivery") or "file"
    tmpfs = dict(parse_tmpfs_spec(t) for t in (params.get("tmpfs") or []))
    memory = str(params["memory"]).strip().lower() if params.get("memory") else None
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
        "memory": memory,
        # Memory and swap limited alike: the app never swaps; past its limit it is killed and restarted.
        "memory_swap": memory,
        "cpu_shares": params.get("cpu_shares") or None,
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


def create_arguments(params, cfg, app, image_id, name, host_port, secret_release=None, previous_image=None,
                     source_id=None):
    """The arguments of a new container: (create_container kwargs, create_host_config kwargs).

    ``secret_release`` holds its secret files; ``log_config``, when set, is the
    keyword arguments of docker.types.LogConfig. The caller adds the host and
    networking configs (engine objects) and connects the other networks.
    """
    labels = dict(cfg["labels"])
    labels[LABEL_APP] = app
    labels[LABEL_CONFIG_HASH] = config_hash(cfg)
    labels[LABEL_CONFIG] = json.dumps(cfg, sort_keys=True, separators=(",", ":"))
    if previous_image:
        labels[LABEL_PREVIOUS_IMAGE] = previous_image
    if source_id:
        labels[LABEL_SOURCE_ID] = source_id

    env = dict(cfg["env"])
    binds = list(cfg["volumes"])
    secret = params.get("secret_env") or {}
    if cfg["secret_delivery"] == "env":
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
    for spec in cfg["published_ports"]:
        ip, hport, cport, proto = parse_port_spec(spec)
        if (cport, proto) not in exposed:
            exposed.append((cport, proto))
        port_bindings.setdefault("%d/%s" % (cport, proto), []).append((ip, hport))

    policy = cfg["restart_policy"]
    host_kwargs = dict(
        binds=binds or None,
        port_bindings=port_bindings or None,
        restart_policy={"Name": policy} if policy != "no" else None,
        read_only=cfg["read_only"] or None,
        tmpfs=dict(parse_tmpfs_spec(t) for t in cfg["tmpfs"]) or None,
        cap_drop=cfg["cap_drop"] or None,
        cap_add=cfg["cap_add"] or None,
        security_opt=cfg["security_opts"] or None,
    )
    if cfg["pids_limit"] is not None:
        host_kwargs["pids_limit"] = cfg["pids_limit"]
    if cfg["log_driver"] or cfg["log_options"]:
        host_kwargs["log_config"] = dict(type=cfg["log_driver"] or "json-file", config=cfg["log_options"])
    if cfg["memory"]:
        host_kwargs["mem_limit"] = cfg["memory"]
    if cfg.get("memory_swap"):
        host_kwargs["memswap_limit"] = cfg["memory_swap"]
    if cfg.get("cpu_shares"):
        host_kwargs["cpu_shares"] = cfg["cpu_shares"]
    if cfg["cpus"]:
        host_kwargs["nano_cpus"] = int(cfg["cpus"] * 1e9)

    healthcheck = None
    hc = cfg["healthcheck"]
    if hc:
        healthcheck = {"test": hc["test"]}
        for key in ("interval", "timeout", "start_period"):
            if key in hc:
                healthcheck[key] = int(hc[key] * 1e9)
        if "retries" in hc:
            healthcheck["retries"] = hc["retries"]

    kwargs = dict(
        image=image_id,
        command=cfg["command"],
        name=name,
        environment=env,
        labels=labels,
        ports=[p if p[1] != "tcp" else p[0] for p in exposed] or None,
        healthcheck=healthcheck,
    )
    if cfg["stop_timeout"] is not None:
        kwargs["stop_timeout"] = cfg["stop_timeout"]
    if cfg["user"]:
        kwargs["user"] = cfg["user"]
    return kwargs, host_kwargs
