#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: image_prune
short_description: Remove old app images, keeping the newest, the ones in use and the rollback target
version_added: 0.1.0
description:
  - For one app (O(name)) or every app on the host, keeps the newest O(keep) images
    carrying the C(io.appfleet.app) label (newest by the C(io.appfleet.built-at) label,
    then creation time) and removes the older ones.
  - Never removes an image that a container uses, running or stopped (any container on
    the host, not only the app's), nor an image recorded as a rollback target in the
    C(io.appfleet.previous-image) label of a container. Such images are kept on top of the
    O(keep) newest.
  - Images are removed without force, tag by tag; an image the engine refuses to remove
    (a container created meanwhile) is kept and reported as a warning.
  - Optionally prunes dangling images and builder cache older than an age.
author:
  - appfleet developers (@appfleet)
extends_documentation_fragment:
  - appfleet.docker.attributes
  - appfleet.docker.docker
attributes:
  check_mode:
    support: full
    details: Lists what would be removed and an estimate of the bytes freed; removes nothing.
  diff_mode:
    support: full
    details: Shows the app images (tags or ids) before and after.
options:
  name:
    description:
      - The app whose images to prune. When omitted, every app found on the host.
    type: str
  keep:
    description:
      - How many of the newest images to keep per app, 0 or more. Images in use and
        rollback targets are kept in addition.
    type: int
    default: 3
  prune_dangling:
    description:
      - Also remove dangling (untagged) images that no container uses.
      - With O(name), only the dangling images labelled with that app; without it, every
        dangling image on the host (like C(docker image prune)).
    type: bool
    default: false
  builder_cache_until:
    description:
      - Also remove build cache not used for this long, for example V(24h) or V(90m)
        (like C(docker builder prune --all --filter until=24h)). The build cache is shared
        by every app on the host.
      - Needs Docker Engine API 1.39 or later and a Docker SDK for Python whose
        C(prune_builds) takes filters; otherwise it is skipped with a warning.
    type: str
notes:
  - RV(bytes_freed) counts the layers only the removed images used (as C(docker system df)
    computes them before removal), plus what the engine reports for dangling images and
    build cache. In check mode the dangling images and build cache parts are estimates.
seealso:
  - module: appfleet.docker.image_build
  - module: appfleet.docker.app_info
"""

EXAMPLES = r"""
- name: Keep the three newest images of web, plus the running one and the rollback target
  appfleet.docker.image_prune:
    name: web

- name: Keep two images per app, drop dangling images and week-old build cache
  appfleet.docker.image_prune:
    keep: 2
    prune_dangling: true
    builder_cache_until: 168h
  register: pruned

- name: Show what was freed
  ansible.builtin.debug:
    msg: "{{ pruned.removed | length }} images removed, {{ pruned.bytes_freed | human_readable }} freed"
"""

RETURN = r"""
removed:
  description: Images removed (in check mode, that would be removed), per app, oldest last.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: Image id.
      type: str
    tags:
      description: Tags the image had.
      type: list
      elements: str
    app:
      description: App of the image; null for a dangling image.
      type: str
  sample:
    - id: sha256:1b2c3d4e5f60718293a4b5c6d7e8f90112233445566778899aabbccddeeff00
      tags: [web:0d1e2f3a4b5c]
      app: web
kept:
  description: App images kept, with the reasons.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: Image id.
      type: str
    tags:
      description: Tags of the image.
      type: list
      elements: str
    app:
      description: App of the image.
      type: str
    reasons:
      description: Why it was kept, some of V(newest), V(in use), V(rollback target), V(engine refused).
      type: list
      elements: str
  sample:
    - id: sha256:832e40b20f22909a111407fccac75f3e4a91e92e6afb4e6f1027c1bcfba50963
      tags: [web:76fa0f89a984]
      app: web
      reasons: [newest, in use]
bytes_freed:
  description: Bytes freed (estimated in check mode).
  returned: always
  type: int
  sample: 73400320
builder_cache:
  description: Outcome of the build cache prune.
  returned: when O(builder_cache_until) is set
  type: dict
  contains:
    pruned:
      description: Whether the prune ran (false when skipped, and in check mode).
      type: bool
    entries:
      description: Cache entries removed (in check mode, that would be removed).
      type: int
    bytes:
      description: Bytes reclaimed (estimated in check mode).
      type: int
  sample: {pruned: true, entries: 12, bytes: 10485760}
"""

import time
from datetime import datetime, timezone

from ansible_collections.appfleet.docker.plugins.module_utils._docker import (
    LABEL_APP,
    LABEL_PREVIOUS_IMAGE,
    AppfleetModule,
    api_version_tuple,
)
from ansible_collections.appfleet.docker.plugins.module_utils._images import (
    app_error,
    app_images,
    duration_error,
    duration_seconds,
    image_id,
    images_in_use,
    remove_image,
)

BUILD_PRUNE_MIN_API = (1, 39)


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


def rollback_targets(client):
    """Image ids recorded as rollback targets on any app container."""
    targets = set()
    for c in client.api.containers(all=True, filters={"label": LABEL_PREVIOUS_IMAGE}):
        value = (c.get("Labels") or {}).get(LABEL_PREVIOUS_IMAGE)
        if not value:
            continue
        resolved = image_id(client, value)
        targets.add(resolved or value)
    return targets


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
                am.module.warn("app %s: %s" % (img["app"], warning))
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


def main():
    am = AppfleetModule(
        argument_spec=dict(
            name=dict(type="str"),
            keep=dict(type="int", default=3),
            prune_dangling=dict(type="bool", default=False),
            builder_cache_until=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    am.run(logic)


if __name__ == "__main__":
    main()
