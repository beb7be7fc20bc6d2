# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Docker Engine driver: the one listing and description of apps' containers and images.

Private to this collection (leading underscore): not a public API.

app_container, app_info and image_prune list and describe an app's
containers and images here, and app_container creates, starts, stops, waits
for and removes them. Only low-level ``client.api`` calls that exist in
Docker SDK 5.0.3 are used.
"""

from __future__ import annotations

import errno
import io
import posixpath
import random
import socket
import tarfile
import time

from http.client import HTTPConnection

from ansible_collections.appfleet.docker.plugins.module_utils._docker import (
    LABEL_APP,
    LABEL_BUILT_AT,
    LABEL_CONFIG_HASH,
    LABEL_GIT_COMMIT,
    LABEL_PREVIOUS_IMAGE,
    LABEL_SOURCE_ID,
    APIError,
    AppfleetError,
    NotFound,
    built_at_epoch,
    is_not_found,
)
from ansible_collections.appfleet.docker.plugins.module_utils._files import passwd_uid
from ansible_collections.appfleet.docker.plugins.module_utils._container_spec import (
    SECRET_MOUNT_DIR,
    drain_deadline,
    env_list_to_dict,
    temp_name,
)

# Answers in a row from health.path that put a container in service while
# Docker's own health check has not run yet.
PATH_ANSWERS = 2
# How long a removal waits for another client's removal of the same container to end.
REMOVAL_WAIT = 30


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


def _short(cid):
    return (cid or "")[:12]


def loopback_port_free(port):
    """False when something holds 127.0.0.1:port (or the wildcard address) now.

    A port the module may not bind itself (not root, a privileged port) counts
    as free: Docker, which binds it, answers at the container's start.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        # As Docker binds (Go sets SO_REUSEADDR): closed connections in TIME_WAIT do not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        return True
    except OSError as exc:
        return exc.errno == errno.EACCES
    finally:
        sock.close()


def free_loopback_port(used, port_range=None, attempts=50):
    """A TCP port free on 127.0.0.1 and not in ``used`` (claimed by containers, reserved by upstream files).

    ``port_range``: the list of ports to take it from, tried in random order (two
    apps choosing at once rarely pick the same one); else an ephemeral port the
    kernel hands out (ip_local_port_range), never one below 1025.
    """
    if port_range is not None:
        candidates = [port for port in port_range if port not in used]
        random.shuffle(candidates)
        for port in candidates:
            if loopback_port_free(port):
                return port
        raise AppfleetError("found no free port on 127.0.0.1 among the %d slot ports %d-%d: containers, the "
                            "upstream files of apps and other programs hold them all; widen proxy.slot_ports"
                            % (len(port_range), min(port_range or [0]), max(port_range or [0])))
    for dummy in range(attempts):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        finally:
            sock.close()
        if port not in used and port > 1024:
            return port
    raise AppfleetError("found no free port on 127.0.0.1 after %d attempts" % attempts)


def unprivileged_port_start(path="/proc/sys/net/ipv4/ip_unprivileged_port_start"):
    """The lowest port any local user may bind (the kernel's default, 1024, when unreadable)."""
    try:
        with open(path) as handle:
            return int(handle.read().strip())
    except (IOError, OSError, ValueError):
        return 1024


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
    except Exception as exc:  # OSError, and http.client's own exceptions (BadStatusLine ...)
        return False, str(exc) or exc.__class__.__name__
    finally:
        conn.close()


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


# ------------------------------------------------------------- containers

def published_ports(ports):
    """The port bindings of a container (its NetworkSettings.Ports) as a list of dicts."""
    out = []
    for key, bindings in sorted((ports or {}).items()):
        port, _sep, proto = key.partition("/")
        for b in bindings or []:
            out.append(dict(container_port=int(port), protocol=proto or "tcp",
                            host_ip=b.get("HostIp") or "", host_port=int(b.get("HostPort") or 0)))
    return out


def describe_container(info, app_port=None):
    """The one description of a container, from its inspect data.

    ``running``: running and not restarting; ``host_port``: the 127.0.0.1 port
    bound to the container port ``app_port`` (tcp), else None.
    """
    state = info.get("State") or {}
    config = info.get("Config") or {}
    labels = config.get("Labels") or {}
    ports = (info.get("NetworkSettings") or {}).get("Ports") or {}
    host_port = None
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
        "name": (info.get("Name") or "").lstrip("/"),
        "app": labels.get(LABEL_APP),
        "running": bool(state.get("Running")) and not state.get("Restarting"),
        "state_running": bool(state.get("Running")),
        "status": state.get("Status"),
        "exit_code": state.get("ExitCode"),
        "started_at": state.get("StartedAt"),
        "created": info.get("Created"),
        "restart_count": info.get("RestartCount", 0),
        "image": info.get("Image"),
        "image_ref": config.get("Image"),
        "labels": labels,
        "env": env_list_to_dict(config.get("Env")),
        "secret_mounts": secret_mounts(info),
        "host_port": host_port,
        "ports": ports,
        "health_status": health,
        "health": health or ("none" if state.get("Running") else state.get("Status")),
    }


def inspect_container(client, cid, app_port=None):
    """describe_container() of container ``cid``, or None when it is gone."""
    try:
        info = client.api.inspect_container(cid)
    except Exception as exc:  # vanished meanwhile
        if is_not_found(exc):
            return None
        raise
    return describe_container(info, app_port)


def app_containers(client, app=None, app_port=None):
    """Containers (any state) of the apps (``app`` when given), described, in the engine's order.

    An app's containers are those app_container made: LABEL_APP and LABEL_CONFIG_HASH.
    LABEL_APP alone is not enough: Docker copies image labels onto containers, so a
    plain ``docker run`` of an app image carries it too. A container removed between
    list and inspect (a rollout finishing) is left out.
    """
    label = LABEL_APP if app is None else "%s=%s" % (LABEL_APP, app)
    found = (inspect_container(client, raw["Id"], app_port)
             for raw in client.api.containers(all=True, filters={"label": [label, LABEL_CONFIG_HASH]}))
    return [c for c in found if c]


def listed_drain_deadline(raw):
    """The drain deadline of a container as the engine lists it (its Names), None when it does not drain."""
    for name in raw.get("Names") or []:
        until = drain_deadline(name.lstrip("/"))
        if until is not None:
            return until
    return None


def rollback_targets(client):
    """Image ids recorded as rollback targets on any app container but a draining one.

    A draining container is on its way out: the image it would roll back to is not kept
    for it (else the first prune after its drain would remove it, a change in a run that
    deploys nothing); its own image is the rollback target of the container that replaced it.
    """
    targets = set()
    for c in client.api.containers(all=True, filters={"label": LABEL_PREVIOUS_IMAGE}):
        value = (c.get("Labels") or {}).get(LABEL_PREVIOUS_IMAGE)
        if not value or listed_drain_deadline(c) is not None:
            continue
        resolved = image_id(client, value)
        targets.add(resolved or value)
    return targets


# ------------------------------------------------------------- images

def image_id(client, ref):
    """Id of the local image ``ref`` (name:tag or id), or None when absent."""
    try:
        return client.api.inspect_image(ref)["Id"]
    except NotFound:
        return None


def image_label(client, ref, label):
    """Value of ``label`` on the local image ``ref``, None when absent (image or label)."""
    if not ref:
        return None
    try:
        info = client.api.inspect_image(ref)
    except NotFound:
        return None
    return ((info.get("Config") or {}).get("Labels") or {}).get(label)


def _image_entry(raw):
    labels = raw.get("Labels") or {}
    tags = [t for t in (raw.get("RepoTags") or []) if t and t != "<none>:<none>"]
    built_at = labels.get(LABEL_BUILT_AT)
    return dict(
        id=raw["Id"],
        tags=sorted(tags),
        app=labels.get(LABEL_APP),
        source_id=labels.get(LABEL_SOURCE_ID),
        git_commit=labels.get(LABEL_GIT_COMMIT),
        built_at=built_at,
        created=raw.get("Created"),
        size=raw.get("Size"),
        _sort=built_at_epoch(built_at, raw.get("Created")),
    )


def app_images(client, app=None):
    """Images carrying LABEL_APP (``=app`` when given), newest first.

    Newest means latest LABEL_BUILT_AT, falling back to the creation time.
    """
    label = LABEL_APP if app is None else "%s=%s" % (LABEL_APP, app)
    images = [_image_entry(raw) for raw in client.api.images(filters={"label": label})]
    images.sort(key=lambda i: (i["_sort"], i["id"]), reverse=True)
    for img in images:
        img.pop("_sort")
    return images


def newest_app_image(client, app):
    images = app_images(client, app)
    return images[0] if images else None


def images_in_use(client):
    """Image ids used by any container on the host, running or not."""
    return set(c.get("ImageID") for c in client.api.containers(all=True) if c.get("ImageID"))


def remove_image(client, image):
    """Remove one image without force: untag each tag, then the id if still there.

    Returns (removed, warning): removed is False and warning says why when the
    engine refused (an image still in use, typically a container made meanwhile).
    """
    refs = list(image["tags"]) or [image["id"]]
    try:
        for ref in refs:
            client.api.remove_image(ref, force=False, noprune=False)
        if image["tags"] and image_id(client, image["id"]) is not None:
            client.api.remove_image(image["id"], force=False, noprune=False)
    except APIError as exc:
        if isinstance(exc, NotFound):
            return True, None
        if getattr(exc, "status_code", None) == 409:
            return False, "image %s kept: %s" % (image["id"][:19], exc.explanation or exc)
        raise
    return True, None


def removal_in_progress(exc):
    """True for the engine's answer when another client is removing the same container (409)."""
    return (isinstance(exc, APIError) and getattr(exc, "status_code", None) == 409
            and "already in progress" in str(getattr(exc, "explanation", None) or exc))


# ------------------------------------------------------------- the engine driver

class Engine(object):
    """What app_container does against the engine for one app (``params``: its module parameters)."""

    def __init__(self, client, params):
        self.client = client
        self.api = client.api
        self.params = params
        self.app = params["name"]
        self.removed = []

    # -- discovery
    def containers(self):
        return app_containers(self.client, self.app, self.params.get("port"))

    def describe(self, cid):
        return inspect_container(self.client, cid, self.params.get("port"))

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
            if not removal_in_progress(exc):
                raise
            # Another client removes it (the detached remover of a drain, at the same deadline).
            self.wait_gone(cid)
        if record:
            self.removed.append(_short(cid))

    def wait_gone(self, cid, seconds=REMOVAL_WAIT):
        """Return once container ``cid`` is gone; fail naming it after ``seconds``."""
        deadline = time.time() + seconds
        while True:
            try:
                self.api.inspect_container(cid)
            except Exception as exc:
                if is_not_found(exc):
                    return
                raise
            if time.time() >= deadline:
                raise AppfleetError("container %s was still being removed by another client after %d s"
                                    % (_short(cid), seconds))
            time.sleep(0.1)

    def logs_tail(self, cid, lines=20):
        try:
            data = self.api.logs(cid, stdout=True, stderr=True, tail=lines)
        except Exception as exc:
            return "(no logs: %s)" % exc
        if isinstance(data, bytes):
            data = data.decode("utf-8", "replace")
        data = data.strip()
        return data if data else "(none)"

    def create(self, kwargs, host_kwargs, networks):
        """Create (not start) a container from create_arguments() (module_utils/_container_spec.py); return its id."""
        import docker.types  # the SDK is present: AppfleetModule checked it

        host_kwargs = dict(host_kwargs)
        if "log_config" in host_kwargs:
            host_kwargs["log_config"] = docker.types.LogConfig(**host_kwargs["log_config"])
        host_config = self.api.create_host_config(**host_kwargs)
        networking = None
        if networks:
            networking = self.api.create_networking_config({networks[0]: self.api.create_endpoint_config()})
        created = self.api.create_container(host_config=host_config, networking_config=networking, **kwargs)
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
        source = "user" if self.params.get("user") else "the image's USER"
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
        health = self.params.get("health") or {}
        timeout = float(health.get("timeout") or 60)
        interval = float(health.get("interval") or 1)
        settle = float(health.get("settle") if health.get("settle") is not None else 2)
        path = health.get("path")
        deadline = time.time() + timeout
        up_since = None
        answered = 0
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
            # With a path, the module's own probe decides while Docker's check is
            # still starting (its first run comes one HEALTHCHECK interval after
            # the start, often 5 s or more): PATH_ANSWERS answers in a row.
            if docker_health and docker_health != "healthy" and not path:
                ok = False
                last = "docker health status %s" % docker_health
            if ok and path:
                ok, what = http_ok(host_port, path)
                answered = answered + 1 if ok else 0
                if not ok:
                    last = "GET %s: %s" % (path, what)
                elif docker_health not in (None, "healthy") and answered < PATH_ANSWERS:
                    ok = False
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
        return "%s; %s. Last log lines: %s" % (reason, old_state, self.logs_tail(cid) if cid else "(none)")
