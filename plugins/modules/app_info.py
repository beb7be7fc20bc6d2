#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: app_info
short_description: Report what runs for each app on a Docker host, and what it can roll back to
version_added: 0.1.0
description:
  - Finds apps by the C(io.appfleet.app) label on containers and images, for one app
    (O(name)) or for every app on the host.
  - For each app, reports every container (during a start-first rollout an app has two),
    with state, health, image id and reference, source id, start time and published ports,
    and the app's images, newest first, among them the previous images available for
    rollback.
  - With the last releases of each app from its release log on the host (see
    M(appfleet.docker.app_container)), newest first.
  - Read-only. A corrupt or unreadable release log is reported as a warning and no releases.
author:
  - appfleet developers (@appfleet)
extends_documentation_fragment:
  - appfleet.docker.attributes
  - appfleet.docker.docker
attributes:
  check_mode:
    support: full
    details: The module changes nothing; it runs the same in check mode.
  diff_mode:
    support: none
    details: The module changes nothing, there is no diff.
options:
  name:
    description:
      - The app to report. When omitted, every app found on the host is reported.
      - Lowercase letters, digits, C(_) and C(-), starting with a letter or digit, at most 63 characters (the roles apply the same rule).
    type: str
  releases:
    description:
      - How many of the newest releases of each app's release log to return in RV(apps[].releases);
        V(0) returns none.
    type: int
    default: 5
  release_dir:
    description:
      - Directory of the release logs, as O(appfleet.docker.app_container#module:release_dir).
    type: path
    default: /var/lib/appfleet/releases
seealso:
  - module: appfleet.docker.image_build
  - module: appfleet.docker.image_prune
"""

EXAMPLES = r"""
- name: Read what runs for the web app
  appfleet.docker.app_info:
    name: web
  register: web_info

- name: Read every app on the host
  appfleet.docker.app_info:
  register: fleet_info

- name: Read the last 10 releases of web (its release log on the host)
  appfleet.docker.app_info:
    name: web
    releases: 10
  register: web_releases

- name: Show the running revision of every app
  ansible.builtin.debug:
    msg: "{{ item.name }}: {{ item.source_id }} ({{ item.state }}, {{ item.previous_images | length }} to roll back to)"
  loop: "{{ fleet_info.apps }}"
  loop_control:
    label: "{{ item.name }}"
"""

RETURN = r"""
apps:
  description: One entry per app, sorted by name. Empty when O(name) has no container or image.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: App name (the C(io.appfleet.app) label).
      type: str
      sample: web
    state:
      description:
        - V(running) when a container of the app runs, V(stopped) when it has containers
          but none runs, V(absent) when it only has images.
      type: str
      sample: running
    health:
      description: Health of the first running container (V(healthy), V(unhealthy), V(starting) or V(none)).
      type: str
      sample: healthy
    image_id:
      description: Image id of the first running container (else of the first container); null without containers.
      type: str
      sample: sha256:832e40b20f22909a111407fccac75f3e4a91e92e6afb4e6f1027c1bcfba50963
    image:
      description: Image reference the first container was created from.
      type: str
      sample: web:76fa0f89a984
    source_id:
      description: Source id label of that image, null when the image has none.
      type: str
      sample: 76fa0f89a98498a766622b414ca8470f8498783de0575b7db30ff196656986f8
    started_at:
      description: Start time of the first running container (RFC 3339, UTC).
      type: str
      sample: "2024-05-01T10:00:00.123456789Z"
    rollback_image:
      description: Image id recorded as the rollback target (C(io.appfleet.previous-image) label of the first container).
      type: str
      sample: sha256:1b2c3d4e5f60718293a4b5c6d7e8f90112233445566778899aabbccddeeff00
    containers:
      description:
        - Every container of the app that M(appfleet.docker.app_container) made (labels
          C(io.appfleet.app) and C(io.appfleet.config-hash)), running ones first, then by
          start time, newest first.
        - A plain C(docker run) of an app image inherits the image's C(io.appfleet.app) label
          but is not listed.
      type: list
      elements: dict
      contains:
        id:
          description: Container id.
          type: str
        name:
          description: Container name.
          type: str
        status:
          description: Docker state (V(running), V(exited), V(created), ...).
          type: str
        running:
          description: Whether the container runs.
          type: bool
        health:
          description: Health check status, V(none) without a health check.
          type: str
        exit_code:
          description: Exit code of the last run.
          type: int
        started_at:
          description: Start time (RFC 3339).
          type: str
        image_id:
          description: Image id the container runs.
          type: str
        image:
          description: Image reference the container was created from.
          type: str
        source_id:
          description: Source id label of the container's image.
          type: str
        previous_image:
          description: Rollback target recorded on the container, null when none.
          type: str
        ports:
          description: Published ports.
          type: list
          elements: dict
          sample: [{container_port: 3000, protocol: tcp, host_ip: 127.0.0.1, host_port: 8080}]
        restart_count:
          description: How often the engine restarted the container.
          type: int
        draining_until:
          description:
            - For the old container of a start-first swap while it drains, when it is removed (UTC, ISO 8601);
              V(null) for the app's own containers, which the app's state, health and image describe.
          type: str
          sample: "2024-05-01T10:00:05Z"
      sample:
        - id: 4f1c0e0a9d2b
          name: web
          status: running
          running: true
          health: healthy
          exit_code: 0
          started_at: "2024-05-01T10:00:00.123456789Z"
          image_id: sha256:832e40b20f22909a111407fccac75f3e4a91e92e6afb4e6f1027c1bcfba50963
          image: web:76fa0f89a984
          source_id: 76fa0f89a98498a766622b414ca8470f8498783de0575b7db30ff196656986f8
          previous_image: null
          ports: []
          restart_count: 0
          draining_until: null
    images:
      description: Every image of the app, newest first (by build time label, then creation time).
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
        source_id:
          description: Source id label.
          type: str
        git_commit:
          description: Git commit label.
          type: str
        built_at:
          description: Build time label (UTC, ISO 8601).
          type: str
        size:
          description: Image size in bytes.
          type: int
        in_use:
          description: Whether a container of the app uses the image.
          type: bool
      sample:
        - id: sha256:832e40b20f22909a111407fccac75f3e4a91e92e6afb4e6f1027c1bcfba50963
          tags: [web:76fa0f89a984]
          source_id: 76fa0f89a98498a766622b414ca8470f8498783de0575b7db30ff196656986f8
          git_commit: 65b13cf468730ab4169d913bee1c2f5e885de941
          built_at: "2024-05-01T09:59:00.000000Z"
          size: 2015372
          in_use: true
    previous_images:
      description:
        - Images of the app that no running container uses, newest first; the candidates
          for a rollback. Same fields as RV(apps[].images).
      type: list
      elements: dict
      sample: []
    releases:
      description:
        - The newest releases of the app's release log (at most O(releases)), newest first;
          empty without a log. Same fields as RV(appfleet.docker.app_container#module:release).
      type: list
      elements: dict
      contains:
        id:
          description: Release id (what O(appfleet.docker.app_container#module:rollback_to) takes).
          type: str
        time:
          description: When it was recorded (UTC, ISO 8601).
          type: str
        kind:
          description: V(deploy) or V(rollback).
          type: str
        result:
          description: V(serving) (it became serving), V(failed) (it never did) or V(rolled_back).
          type: str
        image_id:
          description: Image id.
          type: str
        image:
          description: Image reference it was started from.
          type: str
        source_id:
          description: Source id label of the image.
          type: str
        git_commit:
          description: Git commit label of the image.
          type: str
        by:
          description: Who deployed it.
          type: str
        from:
          description: For a rollback, the release it left.
          type: str
        note:
          description: Why the entry was added, when not by a deploy.
          type: str
      sample:
        - id: 20240501T100000Z-832e40b2
          time: "2024-05-01T10:00:00Z"
          kind: rollback
          result: serving
          image_id: sha256:832e40b20f22909a111407fccac75f3e4a91e92e6afb4e6f1027c1bcfba50963
          image: web:76fa0f89a984
          source_id: 76fa0f89a98498a766622b414ca8470f8498783de0575b7db30ff196656986f8
          git_commit: 65b13cf468730ab4169d913bee1c2f5e885de941
          by: alice
          from: 20240501T093000Z-1b2c3d4e
          note: null
"""

from ansible_collections.appfleet.docker.plugins.module_utils._app_info import logic
from ansible_collections.appfleet.docker.plugins.module_utils._docker import AppfleetModule


def main():
    am = AppfleetModule(
        argument_spec=dict(
            name=dict(type="str"),
            releases=dict(type="int", default=5),
            release_dir=dict(type="path", default="/var/lib/appfleet/releases"),
        ),
        supports_check_mode=True,
    )
    am.run(logic)


if __name__ == "__main__":
    main()
