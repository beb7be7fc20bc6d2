#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: image_push
short_description: Push a local image to a registry with credentials used for this one push only
version_added: 0.3.0
description:
  - Pushes the local image O(name) to the registry as O(repository):O(tag) and returns the
    manifest digest, so that other hosts can pull exactly this image by digest
    (M(appfleet.docker.image_pull) with O(appfleet.docker.image_pull#module:tag_as)).
  - O(username) and O(password) go to the engine with this push only (the Engine API's
    C(X-Registry-Auth) header, the Docker SDK's C(auth_config)); nothing is written to a Docker
    config file (C(~/.docker/config.json), C($DOCKER_CONFIG)), unlike C(docker login).
  - The registry is asked first for the manifest digest of O(repository):O(tag) (the engine's
    distribution inspect, with the same credentials). When one of the C(RepoDigests) of the local
    image is C(<repository>@<that digest>), the registry already has this image there; nothing is
    pushed and C(changed) is false.
  - Otherwise the image is tagged O(repository):O(tag) on the host and pushed. C(changed) is true
    when the registry's digest of O(repository):O(tag) changed, or the local reference
    O(repository):O(tag) was added or moved.
  - The local reference O(repository):O(tag) is kept after the push. It is what keeps the image's
    C(RepoDigests) entry that makes the next run a no-op, and it is one more tag of the image, which
    M(appfleet.docker.image_prune) removes with the image (it untags every tag of an app image).
  - In check mode nothing is tagged or pushed; C(changed) is true when a push would happen. When the
    registry cannot be asked (an engine older than API 1.30, or an error other than those below),
    the module warns and reports C(changed=true); outside check mode it then pushes.
  - Failures name the option to fix, for credentials the registry refused (O(username),
    O(password); the password is never shown), a registry certificate the engine does not trust
    (its CA goes to C(/etc/docker/certs.d/<registry host:port>/ca.crt), which the engine role's
    C(engine_registry_cas) writes), a registry that answers plain HTTP or that the engine cannot
    reach (its host is named, under O(repository)), and O(timeout). The same errors make check
    mode fail, as the push would.
author:
  - appfleet developers (@appfleet)
extends_documentation_fragment:
  - appfleet.docker.attributes
  - appfleet.docker.docker
  - appfleet.docker.registry
attributes:
  check_mode:
    support: full
    details: Looks up O(name) on the host and asks the registry for the manifest digest of O(repository):O(tag); tags and pushes nothing.
  diff_mode:
    support: full
    details:
      - Shows the registry's manifest digest of O(repository):O(tag) before and after (V(absent) when
        the registry does not have it, V(unknown) when it could not be asked).
      - In check mode the after side says a new manifest of the local image would be pushed.
options:
  name:
    description:
      - The local image to push, C(repo:tag) (for example V(web:3f2a9c1d0b7e)) or an image id.
    type: str
    required: true
  repository:
    description:
      - The repository to push to, with its registry host and without a tag or a digest, for
        example V(registry.example.com:5000/team/web).
      - A repository without a registry host is refused, so an image never goes to Docker Hub by
        accident; for Docker Hub write V(docker.io/team/web).
    type: str
    required: true
  tag:
    description:
      - The tag to push as. By default the tag of O(name); required when O(name) has none (an image id).
    type: str
  timeout:
    description:
      - Seconds (wall clock) the push may take in total; it is stopped after that and the
        module fails. The registry's O(repository):O(tag) is then as it was (the manifest goes last).
      - The engine API calls before and after the push use O(api_timeout).
    type: int
    default: 300
notes:
  - An image that the registry has under O(repository):O(tag) but that the host never pushed or
    pulled there (no C(RepoDigests) entry for O(repository)) is pushed again; the push sends no
    layer the registry has, and C(changed) stays false when the digest is the same.
seealso:
  - module: appfleet.docker.image_pull
  - module: appfleet.docker.image_build
  - module: appfleet.docker.image_prune
"""

EXAMPLES = r"""
- name: Push the web image built on this host, by its source id tag
  appfleet.docker.image_push:
    name: web:3f2a9c1d0b7e
    repository: registry.example.com:5000/team/web
    username: deploy
    password: "{{ vault_registry_password }}"
  register: web_push

- name: Pull it by digest on the other hosts, with the tag image_build looks for
  appfleet.docker.image_pull:
    name: "{{ web_push.image.ref }}"
    username: deploy
    password: "{{ vault_registry_password }}"
    tag_as:
      - web:3f2a9c1d0b7e

- name: Push an image by id under a tag of its own
  appfleet.docker.image_push:
    name: sha256:9ca0a2c812710a9aadb1b58b0e16eaba2eb977ec59fa36eaf7b036b6f8df084b
    repository: registry.example.com:5000/team/worker
    tag: "2"
    username: deploy
    password: "{{ vault_registry_password }}"
    timeout: 600
"""

RETURN = r"""
image:
  description: The pushed image and where it is on the registry.
  returned: success
  type: dict
  contains:
    id:
      description: The local image id of O(name).
      type: str
      sample: sha256:9ca0a2c812710a9aadb1b58b0e16eaba2eb977ec59fa36eaf7b036b6f8df084b
    name:
      description: The local image, O(name).
      type: str
      sample: web:3f2a9c1d0b7e
    repository:
      description: The repository pushed to, O(repository).
      type: str
      sample: registry.example.com:5000/team/web
    tag:
      description: The tag pushed as (O(tag), or the tag of O(name)).
      type: str
      sample: 3f2a9c1d0b7e
    digest:
      description:
        - The manifest digest of O(repository):O(tag) on the registry after the run.
        - Null in check mode when a push would happen, as the push makes the digest.
      type: str
      sample: sha256:1780c68e28f29652181ce4f584e896857fe950f26f11553464e550db9b521523
    ref:
      description:
        - The image by digest, C(<repository>@<digest>), for M(appfleet.docker.image_pull); null when RV(image.digest) is.
      type: str
      sample: registry.example.com:5000/team/web@sha256:1780c68e28f29652181ce4f584e896857fe950f26f11553464e550db9b521523
"""

from ansible_collections.appfleet.docker.plugins.module_utils._docker import AppfleetModule
from ansible_collections.appfleet.docker.plugins.module_utils._image_push import logic


def main():
    am = AppfleetModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            repository=dict(type="str", required=True),
            tag=dict(type="str"),
            username=dict(type="str"),
            password=dict(type="str", no_log=True),
            timeout=dict(type="int", default=300),
        ),
        required_together=[("username", "password")],
        supports_check_mode=True,
    )
    am.run(logic)


if __name__ == "__main__":
    main()
