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
      - Lowercase letters, digits, C(_) and C(-), starting with a letter or digit, at most 63 characters (the roles apply the same rule).
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

from ansible_collections.appfleet.docker.plugins.module_utils._docker import AppfleetModule
from ansible_collections.appfleet.docker.plugins.module_utils._image_prune import logic


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
