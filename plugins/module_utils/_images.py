# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Images and containers of appfleet apps, as plain dicts, and input checks.

Private to this collection (leading underscore): not a public API.
Only low-level ``client.api`` calls that exist in Docker SDK 5.0.3 are used.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from ansible_collections.appfleet.docker.plugins.module_utils._docker import (
    APP_NAME_RE,
    LABEL_APP,
    LABEL_CONFIG_HASH,
    LABEL_BUILT_AT,
    LABEL_GIT_COMMIT,
    LABEL_PREVIOUS_IMAGE,
    LABEL_SOURCE_ID,
)

try:
    from docker.errors import APIError, NotFound
except ImportError:  # pragma: no cover - the module wrapper reports the missing SDK
    APIError = NotFound = Exception

BUILT_AT_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

# Docker's reference grammar (distribution/reference), without tag or digest.
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = r"(?:%s(?:\.%s)*(?::[0-9]+)?)" % (_DOMAIN_COMPONENT, _DOMAIN_COMPONENT)
_NAME_RE = re.compile(r"^(?:%s/)?%s(?:/%s)*$" % (_DOMAIN, _PATH_COMPONENT, _PATH_COMPONENT))
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DURATION_RE = re.compile(r"^(?:[0-9]+(?:\.[0-9]+)?(?:h|m|s|ms))+$")


def name_error(option, value):
    """None when ``value`` is a valid image repository name, else a message."""
    if not value or len(value) > 255 or not _NAME_RE.match(value):
        return ("%s %r is not a valid image name: use lowercase letters, digits and . _ - "
                "separators, optionally prefixed by a registry host and / (e.g. web or "
                "registry.example.com/team/web), and no tag" % (option, value))
    return None


def tag_error(option, value):
    if not _TAG_RE.match(value or ""):
        return ("%s %r is not a valid image tag: use up to 128 letters, digits, _ . -, "
                "not starting with . or -" % (option, value))
    return None


def app_error(option, value):
    if not APP_NAME_RE.match(value or ""):
        return ("%s %r is not a valid app name: use letters, digits, _ . - (up to 63), "
                "starting with a letter or digit" % (option, value))
    return None


def duration_error(option, value):
    if not _DURATION_RE.match(value or ""):
        return ("%s %r is not a duration: use a number with a unit h, m or s, "
                "e.g. 24h or 90m" % (option, value))
    return None


def duration_seconds(value):
    """Seconds in a Go-style duration such as 24h, 1h30m or 90s."""
    units = dict(h=3600.0, m=60.0, s=1.0, ms=0.001)
    return sum(float(num) * units[unit] for num, unit in re.findall(r"([0-9.]+)(ms|h|m|s)", value))


def default_app(name):
    """The app name of an image repository name: its last path component."""
    return name.rsplit("/", 1)[-1]


def now_label():
    return datetime.now(timezone.utc).strftime(BUILT_AT_FORMAT)


def _epoch(built_at, created):
    if built_at:
        try:
            return datetime.strptime(built_at, BUILT_AT_FORMAT).replace(tzinfo=timezone.utc).timestamp()
        except ValueError:
            pass
    try:
        return float(created or 0)
    except (TypeError, ValueError):
        return 0.0


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
        _sort=_epoch(built_at, raw.get("Created")),
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


def _ports(network_settings):
    ports = []
    for key, bindings in sorted(((network_settings or {}).get("Ports") or {}).items()):
        port, _sep, proto = key.partition("/")
        for b in bindings or []:
            ports.append(dict(container_port=int(port), protocol=proto or "tcp",
                              host_ip=b.get("HostIp") or "", host_port=int(b.get("HostPort") or 0)))
    return ports


def _container_entry(client, raw):
    info = client.api.inspect_container(raw["Id"])
    state = info.get("State") or {}
    config = info.get("Config") or {}
    labels = config.get("Labels") or {}
    health = state.get("Health") or {}
    return dict(
        id=info["Id"],
        name=(info.get("Name") or "").lstrip("/"),
        app=labels.get(LABEL_APP),
        status=state.get("Status"),
        running=bool(state.get("Running")),
        health=health.get("Status") or "none",
        exit_code=state.get("ExitCode"),
        started_at=state.get("StartedAt"),
        image_id=info.get("Image"),
        image=config.get("Image"),
        previous_image=labels.get(LABEL_PREVIOUS_IMAGE) or None,
        ports=_ports(info.get("NetworkSettings")),
        restart_count=info.get("RestartCount", 0),
    )


def app_containers(client, app=None):
    """Containers (any state) of the apps (``app`` when given), running first, then newest.

    An app's containers are those app_container made: LABEL_APP and LABEL_CONFIG_HASH.
    LABEL_APP alone is not enough: Docker copies image labels onto containers, so a
    plain ``docker run`` of an app image carries it too.
    """
    label = LABEL_APP if app is None else "%s=%s" % (LABEL_APP, app)
    containers = []
    for raw in client.api.containers(all=True, filters={"label": [label, LABEL_CONFIG_HASH]}):
        try:
            containers.append(_container_entry(client, raw))
        except NotFound:
            # removed between list and inspect (a rollout finishing): not there any more
            continue
    containers.sort(key=lambda c: (c["running"], c["started_at"] or ""), reverse=True)
    return containers


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
