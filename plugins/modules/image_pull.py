#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: image_pull
short_description: Pull an image from a registry with credentials used for this one pull only
version_added: 0.3.0
description:
  - Pulls the image O(name) from its registry into the host's Docker engine.
  - O(username) and O(password) go to the engine with this pull only (the Engine API's
    C(X-Registry-Auth) header, the Docker SDK's C(auth_config)); nothing is written to a
    Docker config file (C(~/.docker/config.json), C($DOCKER_CONFIG)), unlike C(docker login),
    so no credentials are left behind on the host.
  - With O(policy=missing) the registry is asked only when O(name) is not on the host.
    With O(policy=always) the registry is asked each run and the engine downloads what changed
    (a moved tag); a reference by digest that is on the host is never pulled again, as its
    content cannot change.
  - C(changed) is true when the local image id of O(name) changed, that is when O(name) is
    newly present or now stands for another image.
  - C(changed) is also true when a reference of O(tag_as) moved.
  - In check mode nothing is pulled. Where a pull by tag would happen (O(name) absent, or
    O(policy=always)), the engine's distribution inspect (C(docker manifest inspect) through
    the engine, with the same credentials) gives the registry's manifest digest, which is
    compared with the C(RepoDigests) of the local image. When that inspect is not possible (an engine older
    than API 1.30, or an error other than those below), the module reports C(changed=true)
    with a warning saying why.
  - Failures name the option to fix, for credentials the registry refused (O(username),
    O(password); the password is never shown), a reference the registry does not know
    (O(name)), a registry certificate the engine does not trust (its CA goes to
    C(/etc/docker/certs.d/<registry host:port>/ca.crt), which the engine role's
    C(engine_registry_cas) writes), a registry the engine cannot reach (its host is named),
    and O(timeout). The same errors make check mode fail, as the pull would.
author:
  - appfleet developers (@appfleet)
extends_documentation_fragment:
  - appfleet.docker.attributes
  - appfleet.docker.docker
  - appfleet.docker.registry
attributes:
  check_mode:
    support: full
    details: Looks up O(name) on the host and, where a pull by tag would happen, asks the registry for its manifest digest; pulls nothing.
  diff_mode:
    support: full
    details:
      - Shows O(name) and its local image id before and after (or V(absent)), and so each reference of O(tag_as).
      - In check mode the after side says a new image would be pulled, with the registry's manifest digest when known.
options:
  name:
    description:
      - The image reference, with a tag or a digest, for example V(registry.example.com/team/web:1),
        V(git:5000/lab/hello:1) or V(registry.example.com/team/web@sha256:0123...).
      - A reference without a tag or a digest (an implicit C(latest)) is refused, as is one
        with both.
      - Without a registry host the image comes from Docker Hub (C(docker.io)).
    type: str
    required: true
  policy:
    description:
      - V(always) asks the registry each run and pulls what changed; an image by digest that
        is present is not pulled again.
      - V(missing) pulls only when O(name) is not on the host.
    type: str
    choices: [always, missing]
    default: always
  timeout:
    description:
      - Seconds (wall clock) the pull may take in total; it is stopped after that and the
        module fails, leaving O(name) on the host as it was.
      - The engine API calls before and after the pull use O(api_timeout).
    type: int
    default: 300
  tag_as:
    description:
      - Local references (C(repo:tag), no digest) to point at the image of O(name) once it is
        pulled, or at once when it is already on the host; a reference that points at another
        image is moved, as C(docker tag) does.
      - For example, a host pulls the image a builder pushed by digest and gives it the tag
        that M(appfleet.docker.image_build) looks for, so that module finds its image and builds nothing.
      - C(changed) is true when any of them moved. In check mode they are predicted (all of
        them when a new image would be pulled); diff mode shows each one's image id before and after.
    type: list
    elements: str
    default: []
    version_added: 0.3.0
notes:
  - In check mode an image on the host that has no digest from the registry (built or loaded
    on the host, for example with M(appfleet.docker.image_archive)) is reported as changed,
    although a pull may find it the same image.
seealso:
  - module: appfleet.docker.image_archive
  - module: appfleet.docker.image_build
  - module: appfleet.docker.image_prune
"""

EXAMPLES = r"""
- name: Pull the web image with this run's registry credentials
  appfleet.docker.image_pull:
    name: registry.example.com/team/web:1.4.2
    username: deploy
    password: "{{ vault_registry_password }}"
  register: web_pull

- name: Pull an image by digest (never pulled again once present)
  appfleet.docker.image_pull:
    name: registry.example.com/team/web@sha256:9ca0a2c812710a9aadb1b58b0e16eaba2eb977ec59fa36eaf7b036b6f8df084b
    username: deploy
    password: "{{ vault_registry_password }}"

- name: Pull the worker image only when it is not on the host yet
  appfleet.docker.image_pull:
    name: git:5000/lab/worker:2
    username: lab
    password: "{{ lab_registry_password }}"
    policy: missing
    timeout: 600

- name: Pull the image the builder pushed, by digest, and give it the tag image_build looks for
  appfleet.docker.image_pull:
    name: "registry.example.com/team/web@{{ web_push.image.digest }}"
    username: deploy
    password: "{{ vault_registry_password }}"
    tag_as:
      - web:3f2a9c1d0b7e
"""

RETURN = r"""
image:
  description: The image O(name) stands for on the host.
  returned: success
  type: dict
  contains:
    id:
      description:
        - Its image id after the run. In check mode, the id it has now (null when absent),
          as nothing is pulled.
      type: str
      sample: sha256:9ca0a2c812710a9aadb1b58b0e16eaba2eb977ec59fa36eaf7b036b6f8df084b
    name:
      description: The image reference, O(name).
      type: str
      sample: registry.example.com/team/web:1.4.2
    repo_digests:
      description: The image's C(RepoDigests) (C(repository@digest) of the manifests it was pulled or pushed as); empty when absent.
      type: list
      elements: str
      sample:
        - registry.example.com/team/web@sha256:1780c68e28f29652181ce4f584e896857fe950f26f11553464e550db9b521523
tagged:
  description:
    - The references of O(tag_as) that were moved to the image (in check mode, that would be); empty when none.
  returned: success
  type: list
  elements: str
  sample:
    - web:3f2a9c1d0b7e
  version_added: 0.3.0
"""

from ansible_collections.appfleet.docker.plugins.module_utils._docker import AppfleetModule
from ansible_collections.appfleet.docker.plugins.module_utils._image_pull import logic


def main():
    am = AppfleetModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            username=dict(type="str"),
            password=dict(type="str", no_log=True),
            policy=dict(type="str", default="always", choices=["always", "missing"]),
            timeout=dict(type="int", default=300),
            tag_as=dict(type="list", elements="str", default=[]),
        ),
        required_together=[("username", "password")],
        supports_check_mode=True,
    )
    am.run(logic)


if __name__ == "__main__":
    main()
