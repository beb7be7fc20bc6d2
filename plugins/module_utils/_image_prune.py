# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What image_prune does: keep the newest images of each app, the serving and rollback ones.

Private to this collection (leading underscore): not a public API.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone

from ansible_collections.appfleet.docker.plugins.module_utils._docker import (
    LABEL_APP,
    api_version_tuple,
    app_error,
)
from ansible_collections.appfleet.docker.plugins.module_utils._engine import (
    app_images,
    images_in_use,
    listed_drain_deadline,
    remove_image,
    rollback_targets,
)

BUILD_PRUNE_MIN_API = (1, 39)
# Seconds past a drain's deadline that the prune waits for its remover (it stops the container first).
DRAIN_WAIT_SLACK = 40
# builder_cache_until: a Go duration, as the engine's build-cache prune filter takes it.
DURATION_RE = re.compile(r"^(?:[0-9]+(?:\.[0-9]+)?(?:h|m|s|ms))+\Z")


def duration_error(option, value):
    """None when ``value`` is a Go-style duration (24h, 1h30m, 90s), else a message."""
    if not DURATION_RE.match(value or ""):
        return ("%s %r is not a duration: use a number with a unit h, m or s, "
                "e.g. 24h or 90m" % (option, value))
    return None


def duration_seconds(value):
    """Seconds in a Go-style duration such as 24h, 1h30m or 90s."""
    units = dict(h=3600.0, m=60.0, s=1.0, ms=0.001)
    return sum(float(num) * units[unit] for num, unit in re.findall(r"([0-9.]+)(ms|h|m|s)", value))


def check_input(am):
    p = am.params
    if p["name"] is not None:
        err = app_error("name", p["name"])
        if err:
            am.fail(err)
    if p["keep"] < 0:
        am.fail("keep must be 0 or more (got %s); set keep to how many of the newest images "
                "of each app to keep" % p["keep"])
    if p["builder_cache_until"] is not None:
        err = duration_error("builder_cache_until", p["builder_cache_until"])
        if err:
            am.fail(err)


def plan(client, name, keep):
    """Split app images into (remove, kept) lists of dicts."""
    in_use = images_in_use(client)
    targets = rollback_targets(client)
    per_app = {}
    for img in app_images(client, name):
        per_app.setdefault(img["app"], []).append(img)
    remove, kept = [], []
    for app in sorted(per_app):
        for index, img in enumerate(per_app[app]):
            reasons = []
            if index < keep:
                reasons.append("newest")
            if img["id"] in in_use:
                reasons.append("in use")
            if img["id"] in targets:
                reasons.append("rollback target")
            entry = dict(id=img["id"], tags=img["tags"], app=app)
            if reasons:
                entry["reasons"] = reasons
                kept.append(entry)
            else:
                remove.append(entry)
    return remove, kept, in_use


def draining_containers(client, name):
    """(image id, deadline) of each draining container (of app ``name``, or of any app)."""
    label = LABEL_APP if name is None else "%s=%s" % (LABEL_APP, name)
    listed = ((c.get("ImageID"), listed_drain_deadline(c)) for c in client.api.containers(all=True, filters={"label": label}))
    return [(image, until) for image, until in listed if until is not None]


def waits_for_drains(client, kept):
    """Whether an image kept only because a draining container uses it would go once the drain ends.

    Pruning it then, in a later run that deploys nothing, would report a change there: this
    run waits for that drain instead (at most its drain_seconds; rarely, as the image of the
    old container is the serving one's rollback target or among the newest).
    """
    draining, settled = set(), set()
    for c in client.api.containers(all=True):
        (draining if listed_drain_deadline(c) is not None else settled).add(c.get("ImageID"))
    return any(k.get("reasons") == ["in use"] and k["id"] in draining - settled for k in kept)


def wait_for_drains(client, name, slack=DRAIN_WAIT_SLACK):
    """Until no container of the app (of any app, name None) drains, bounded by the last deadline + slack."""
    while True:
        found = draining_containers(client, name)
        if not found or time.time() > max(until for _image, until in found) + slack:
            return
        time.sleep(0.2)


def unique_sizes(client):
    """Image id -> bytes only that image holds (Size - SharedSize, from system df)."""
    sizes = {}
    for img in client.api.df().get("Images") or []:
        size = img.get("Size") or 0
        shared = img.get("SharedSize") or 0
        sizes[img.get("Id")] = max(size - max(shared, 0), 0)
    return sizes


def dangling(client, name, in_use):
    filters = {"dangling": True}
    if name is not None:
        filters["label"] = "%s=%s" % (LABEL_APP, name)
    return [dict(id=raw["Id"], tags=[], app=(raw.get("Labels") or {}).get(LABEL_APP), size=raw.get("Size") or 0)
            for raw in client.api.images(filters=filters) if raw["Id"] not in in_use]


def prune_dangling(am, name):
    filters = {"dangling": True}
    if name is not None:
        filters["label"] = "%s=%s" % (LABEL_APP, name)
    res = am.client.api.prune_images(filters=filters) or {}
    removed = []
    for item in res.get("ImagesDeleted") or []:
        if item.get("Deleted"):
            removed.append(dict(id=item["Deleted"], tags=[], app=None))
    return removed, res.get("SpaceReclaimed") or 0


def _parse_time(text):
    # RFC 3339 in UTC with nanoseconds: seconds precision is enough.
    try:
        return datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp()
    except (TypeError, ValueError):
        return None


def builder_cache(am, until):
    """Prune (or, in check mode, estimate) build cache unused for ``until``."""
    client = am.client
    version = client.api.version().get("ApiVersion", "0")
    if api_version_tuple(version) < BUILD_PRUNE_MIN_API:
        am.module.warn("builder_cache_until skipped: the engine (API %s) cannot filter the "
                       "build cache prune; it needs API 1.39 or later" % version)
        return dict(pruned=False, entries=0, bytes=0)
    if am.check_mode:
        limit = time.time() - duration_seconds(until)
        entries = 0
        size = 0
        for rec in client.api.df().get("BuildCache") or []:
            if rec.get("InUse"):
                continue
            used = _parse_time(rec.get("LastUsedAt") or rec.get("CreatedAt"))
            if used is not None and used < limit:
                entries += 1
                size += rec.get("Size") or 0
        return dict(pruned=False, entries=entries, bytes=size)
    try:
        res = client.api.prune_builds(filters={"until": until}, all=True)
    except TypeError:
        am.module.warn("builder_cache_until skipped: this Docker SDK for Python cannot filter "
                       "the build cache prune; install docker >= 6.1 on the managed host")
        return dict(pruned=False, entries=0, bytes=0)
    res = res or {}
    return dict(pruned=True, entries=len(res.get("CachesDeleted") or []), bytes=res.get("SpaceReclaimed") or 0)


def logic(am):
    am.app = am.params["name"]
    am.step = "pruning images"
    check_input(am)
    p = am.params
    client = am.client
    name = p["name"]
    remove, kept, in_use = plan(client, name, p["keep"])
    if not am.check_mode and waits_for_drains(client, kept):
        am.step = "waiting for the drain of an old container whose image goes once it ends"
        wait_for_drains(client, name)
        remove, kept, in_use = plan(client, name, p["keep"])
    dangling_list = dangling(client, name, in_use) if p["prune_dangling"] else []

    sizes = unique_sizes(client) if (remove or dangling_list) else {}
    result = dict(changed=False, removed=[], kept=kept, bytes_freed=0)
    if am.diff_mode:
        before = {}
        for img in remove + kept:
            before.setdefault(img["app"], []).append(img["tags"][0] if img["tags"] else img["id"])
        after = {}
        for img in kept:
            after.setdefault(img["app"], []).append(img["tags"][0] if img["tags"] else img["id"])
        result["diff"] = dict(before=before, after=after)

    freed = 0
    if am.check_mode:
        result["removed"] = remove + [dict(id=d["id"], tags=[], app=d["app"]) for d in dangling_list]
        freed = sum(sizes.get(img["id"], 0) for img in remove) + sum(sizes.get(d["id"], d["size"]) for d in dangling_list)
    else:
        for img in remove:
            ok, warning = remove_image(client, img)
            if ok:
                result["removed"].append(img)
                freed += sizes.get(img["id"], 0)
            else:
                am.warn(warning, app=img["app"])
                img["reasons"] = ["engine refused"]
                kept.append(img)
        if p["prune_dangling"]:
            gone, reclaimed = prune_dangling(am, name)
            result["removed"].extend(gone)
            freed += reclaimed
    if p["builder_cache_until"] is not None:
        cache = builder_cache(am, p["builder_cache_until"])
        result["builder_cache"] = cache
        freed += cache["bytes"]
        if cache["entries"]:
            result["changed"] = True
    if result["removed"]:
        result["changed"] = True
    result["bytes_freed"] = int(freed)
    return result
