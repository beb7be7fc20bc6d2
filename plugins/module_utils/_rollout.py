# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Desired-config logic and the health-gated container swap of app_container.

Private to this collection (leading underscore): not a public API.

The pure functions at the top (validation, normalisation, hashing, diff,
reconciliation) have no Docker dependency and are unit tested; the Rollout
class below drives the Docker Engine through the SDK's low-level API only
(``client.api``), which exists unchanged in docker SDK 5.0.3.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import tempfile
import time

try:
    from http.client import HTTPConnection
except ImportError:  # pragma: no cover - Python 2 is not supported
    HTTPConnection = None

from ansible_collections.appfleet.docker.plugins.module_utils._docker import (
    LABEL_APP,
    LABEL_CONFIG_HASH,
    LABEL_PREVIOUS_IMAGE,
    LABEL_SOURCE_ID,
)

# Private label: the non-secret desired config as JSON, for diff output.
LABEL_CONFIG = "io.appfleet.config"

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$")
ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MEMORY_RE = re.compile(r"^[0-9]+[bkmgBKMG]?$")
TEMP_SUFFIX = "--next"
RESTART_POLICIES = ("no", "on-failure", "always", "unless-stopped")
SECRET_MASK = "********"


class RolloutError(Exception):
    """A rollout step failed; the message is ready for fail_json."""


class ValidationError(ValueError):
    """Bad module input, found before anything changed."""


# ---------------------------------------------------------------- pure logic

def temp_name(name):
    """The name a new container has while it runs beside the serving one."""
    return name + TEMP_SUFFIX


def parse_port_spec(spec):
    """Parse ``[ip:]host:container[/proto]`` or ``container[/proto]``.

    Returns (host_ip, host_port, container_port, proto) with host_port None
    when Docker may choose it.
    """
    text = str(spec).strip()
    proto = "tcp"
    if "/" in text:
        text, proto = text.rsplit("/", 1)
        if proto not in ("tcp", "udp", "sctp"):
            raise ValidationError("published_ports: %r has an unknown protocol %r" % (spec, proto))
    parts = text.split(":")
    if len(parts) == 1:
        ip, host, cont = "", None, parts[0]
    elif len(parts) == 2:
        ip, host, cont = "", parts[0], parts[1]
    elif len(parts) == 3:
        ip, host, cont = parts
    else:
        raise ValidationError("published_ports: %r is not [ip:]host:container[/proto]" % (spec,))
    if ip and not re.match(r"^[0-9.]+$", ip):
        raise ValidationError("published_ports: %r has an invalid address %r" % (spec, ip))
    cont_port = _port_number(cont, "published_ports", spec)
    host_port = _port_number(host, "published_ports", spec) if host not in (None, "") else None
    return ip, host_port, cont_port, proto


def _port_number(value, option, spec=None):
    try:
        number = int(str(value))
    except (TypeError, ValueError):
        number = -1
    if number < 1 or number > 65535:
        shown = spec if spec is not None else value
        raise ValidationError("%s: port %r is out of range 1-65535" % (option, shown))
    return number


def validate(params):
    """Check the module input; raise ValidationError naming the option."""
    name = params.get("name")
    if not name or not NAME_RE.match(name):
        raise ValidationError(
            "name: %r is not a valid app name (letters, digits, '_', '.', '-', starting "
            "with a letter or digit, at most 63 characters)" % (name,))
    if name.endswith(TEMP_SUFFIX):
        raise ValidationError("name: %r must not end with %r (reserved for rollouts)" % (name, TEMP_SUFFIX))
    cname = params.get("container_name")
    if cname is not None and not NAME_RE.match(cname):
        raise ValidationError("container_name: %r is not a valid container name" % (cname,))
    if params.get("state", "present") == "present" and not params.get("rollback") and not params.get("image"):
        raise ValidationError("image: required unless rollback is true or state is absent")
    if params.get("port") is not None:
        _port_number(params["port"], "port")
    fixed_host_port = False
    for spec in params.get("published_ports") or []:
        ip, host_port, dummy, dummy2 = parse_port_spec(spec)
        if host_port is not None:
            fixed_host_port = True
    if fixed_host_port and params.get("strategy") == "start-first":
        raise ValidationError(
            "published_ports: a fixed host port cannot be bound by two containers at once; "
            "use strategy stop-first, or publish only the app port through the proxy")
    policy = params.get("restart_policy")
    if policy is not None and policy not in RESTART_POLICIES:
        raise ValidationError("restart_policy: %r is not one of %s" % (policy, ", ".join(RESTART_POLICIES)))
    env = params.get("env") or {}
    secret = params.get("secret_env") or {}
    for option, mapping in (("env", env), ("secret_env", secret)):
        for key in mapping:
            if not ENV_KEY_RE.match(str(key)):
                raise ValidationError("%s: %r is not a valid variable name" % (option, key))
    both = sorted(set(env) & set(secret))
    if both:
        raise ValidationError("secret_env: %s also set in env; set each variable in one place" % ", ".join(both))
    for spec in params.get("volumes") or []:
        parts = str(spec).split(":")
        if len(parts) not in (2, 3) or not parts[0] or not parts[1].startswith("/"):
            raise ValidationError("volumes: %r is not source:/container/path[:mode]" % (spec,))
    for net in params.get("networks") or []:
        if not NAME_RE.match(str(net)) and not re.match(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$", str(net)):
            raise ValidationError("networks: %r is not a valid network name" % (net,))
    memory = params.get("memory")
    if memory is not None and not MEMORY_RE.match(str(memory)):
        raise ValidationError("memory: %r is not a size like 256m or 1g" % (memory,))
    cpus = params.get("cpus")
    if cpus is not None and cpus <= 0:
        raise ValidationError("cpus: must be greater than 0")
    health = params.get("health") or {}
    if health.get("path"):
        if params.get("port") is None:
            raise ValidationError("health.path: needs port (the container port to poll)")
        if not str(health["path"]).startswith("/"):
            raise ValidationError("health.path: %r must start with /" % (health["path"],))
    for key in ("timeout", "interval"):
        if health.get(key) is not None and health[key] <= 0:
            raise ValidationError("health.%s: must be greater than 0" % key)
    for key in ("drain_seconds", "stop_timeout", "lock_timeout"):
        if params.get(key) is not None and params[key] < 0:
            raise ValidationError("%s: must not be negative" % key)
    hc = params.get("healthcheck") or {}
    if hc and not hc.get("disable") and not hc.get("test"):
        raise ValidationError("healthcheck.test: required unless healthcheck.disable is true")
    for key in ("log_options",):
        for okey, oval in (params.get(key) or {}).items():
            if not isinstance(oval, str):
                raise ValidationError("%s.%s: values must be strings" % (key, okey))
    proxy = params.get("proxy") or {}
    for key in ("test_command", "reload_command"):
        if proxy.get(key) is not None and not proxy[key]:
            raise ValidationError("proxy.%s: must not be empty" % key)


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
    """The non-secret desired container config, normalised (image excluded)."""
    env = params.get("env") or {}
    log_options = params.get("log_options") or {}
    cfg = {
        "command": list(params["command"]) if params.get("command") else None,
        "env": dict((str(k), str(v)) for k, v in env.items()),
        "secret_env_keys": sorted(str(k) for k in (params.get("secret_env") or {})),
        "port": params.get("port"),
        "published_ports": sorted(str(p) for p in (params.get("published_ports") or [])),
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
    }
    return cfg


def config_hash(cfg):
    text = json.dumps(cfg, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


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


def render_env_file(app, secret_env):
    lines = ["# secret environment of app %s, written by appfleet.docker.app_container" % app]
    for key in sorted(secret_env):
        value = str(secret_env[key]).replace("\n", "\\n")
        lines.append("%s=%s" % (key, value))
    return "\n".join(lines) + "\n"


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
    raise RolloutError("found no free port on 127.0.0.1 after %d attempts" % attempts)


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

    def __init__(self, module, client, params, image_id, image_labels, proxy=None):
        self.module = module
        self.api = client.api
        self.params = params
        self.app = params["name"]
        self.stable_name = params.get("container_name") or params["name"]
        self.image_id = image_id
        self.image_labels = image_labels or {}
        self.proxy = proxy
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
            if exc.__class__.__name__ == "NotFound":
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
    def matches(self, current):
        if current is None:
            return False
        if current["image"] != self.image_id:
            return False
        if current["labels"].get(LABEL_CONFIG_HASH) != self.hash:
            return False
        stored = stored_config(current["labels"]).get("secret_env_keys")
        return not changed_secret_keys(self.params.get("secret_env"), current["env"], stored)

    def diff(self, current):
        if current is None:
            before_cfg, before_image, secret = {}, None, sorted(self.params.get("secret_env") or {})
        else:
            before_cfg = stored_config(current["labels"])
            before_image = current["image"]
            secret = changed_secret_keys(self.params.get("secret_env"), current["env"],
                                         before_cfg.get("secret_env_keys"))
        return config_diff(before_cfg, self.cfg, before_image, self.image_id, secret)

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
            if exc.__class__.__name__ == "NotFound":
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

    def create(self, name, current, host_port):
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
        for key, value in (params.get("secret_env") or {}).items():
            env[str(key)] = str(value)

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
            binding = (ip, hport) if ip else hport
            port_bindings.setdefault("%d/%s" % (cport, proto), []).append(binding)

        policy = self.cfg["restart_policy"]
        host_kwargs = dict(
            binds=self.cfg["volumes"] or None,
            port_bindings=port_bindings or None,
            restart_policy={"Name": policy} if policy != "no" else None,
        )
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
        created = self.api.create_container(**kwargs)
        cid = created["Id"]
        for net in networks[1:]:
            self.api.connect_container_to_network(cid, net)
        return cid

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


def _fmt(seconds):
    return ("%d" % seconds) if float(seconds).is_integer() else ("%s" % seconds)


def write_secret_file(path, content):
    """Write a root-owned 0600 file atomically; return True when it changed."""
    try:
        with open(path, "r") as handle:
            if handle.read() == content:
                st = os.stat(path)
                if (st.st_mode & 0o777) == 0o600 and st.st_uid == os.geteuid():
                    return False
    except (IOError, OSError):
        pass
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o700)
    old_umask = os.umask(0o077)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".env.", dir=directory)
    finally:
        os.umask(old_umask)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.rename(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return True
