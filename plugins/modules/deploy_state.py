#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: deploy_state
short_description: Record a host's state after a complete deploy, and tell whether a deploy would change it
version_added: 0.2.0
description:
  - With O(state=record), run after a complete deploy of every app on the host, writes
    O(path) (mode 0600) with the O(fingerprint) of the deploy's inputs, the commit checked
    out for each app in O(sources), the containers and images labelled C(io.appfleet.app),
    and the content, mode and owner of every file under O(watch_paths).
  - With O(state=check), compares the host with that record and returns the reasons a
    deploy is needed; none (RV(converged)) means a deploy would change nothing, and
    C(playbooks/deploy.yml) leaves the host out of its serial deploy play.
  - A reason is any of these. The fingerprint differs; an app's O(sources[].version) is at
    another commit on its git server (asked with C(git ls-remote), using the app's deploy
    key and known hosts); a checkout, container or image differs from the record; a
    container is not running; a watched file was changed, added or
    removed; an app runs a mutable image tag (O(mutable_images)) or refreshes its base
    images (O(refresh_bases)); the git server cannot
    be asked. When in doubt, the answer is to deploy.
  - The module never changes what the host serves. O(state=record) reports
    C(changed=false), because the state file is bookkeeping.
author:
  - appfleet developers (@appfleet)
extends_documentation_fragment:
  - appfleet.docker.attributes
  - appfleet.docker.docker
attributes:
  check_mode:
    support: full
    details: O(state=check) runs in check mode as usual; O(state=record) writes nothing in check mode.
  diff_mode:
    support: none
options:
  state:
    description:
      - V(check) compares the host with the record; V(record) writes the record.
    type: str
    choices: [check, record]
    default: check
  path:
    description:
      - The state file, an absolute path. Its directory is created (mode 0700) when missing.
    type: path
    default: /var/lib/appfleet/deploy-state.json
  fingerprint:
    description:
      - Digest of everything on the controller the deploy depends on (the apps role computes
        it from the inventory's C(appfleet_*), C(apps_*) and C(proxy_*) variables, the deploy
        key and certificate files and the collection's own files). Any change to it is a
        reason to deploy.
    type: str
    required: true
  sources:
    description:
      - The apps built from a git source.
    type: list
    elements: dict
    default: []
    suboptions:
      app:
        description: The app name.
        type: str
        required: true
      checkout:
        description: The app's checkout on the host, an absolute path.
        type: path
        required: true
      repo:
        description: The repository URL, as the apps role clones it.
        type: str
        required: true
      version:
        description:
          - Branch, tag or commit deployed. A full commit id is compared with the
            checkout without asking the server; an abbreviated one by prefix.
        type: str
        default: HEAD
      key_file:
        description: Deploy key on the host for an SSH repository.
        type: path
      known_hosts:
        description: Known hosts file on the host for an SSH repository.
        type: path
  mutable_images:
    description:
      - Apps that run an image by tag (C(image:) without a digest). A registry can move a tag
        at any time, so each is a reason to deploy (a pull is the only way to know).
    type: list
    elements: dict
    default: []
    suboptions:
      app:
        description: The app name.
        type: str
        required: true
      image:
        description: The image reference.
        type: str
        required: true
  refresh_bases:
    description:
      - Apps built with M(appfleet.docker.image_build)'s O(appfleet.docker.image_build#module:base_refresh).
        A registry can move a base image's tag at any time, so each is a reason to deploy.
    type: list
    elements: str
    default: []
    version_added: 0.3.0
  watch_paths:
    description:
      - Absolute paths of files and directories the deploy writes (server blocks, upstream
        files, deploy keys, secret files). Each file under them is recorded by content, mode
        and owner; at most 5000 files.
    type: list
    elements: path
    default: []
notes:
  - The record holds digests of the secret files under O(watch_paths), not their content;
    it is readable by root only.
seealso:
  - module: appfleet.docker.app_container
  - module: appfleet.docker.image_build
"""

EXAMPLES = r"""
- name: Ask whether a deploy would change this host
  appfleet.docker.deploy_state:
    fingerprint: "{{ deploy_inputs | to_json(sort_keys=true) | hash('sha256') }}"
    sources:
      - app: web
        checkout: /srv/appfleet/src/web
        repo: git@git.example.com:team/web.git
        version: main
        key_file: /etc/appfleet/keys/web
    watch_paths: [/etc/nginx/appfleet]
  register: plan

- name: Record the host after a complete deploy
  appfleet.docker.deploy_state:
    state: record
    fingerprint: "{{ deploy_inputs | to_json(sort_keys=true) | hash('sha256') }}"
    sources:
      - app: web
        checkout: /srv/appfleet/src/web
        repo: git@git.example.com:team/web.git
    watch_paths: [/etc/nginx/appfleet]
"""

RETURN = r"""
converged:
  description: True when nothing differs from the record (a deploy would change nothing); always true after O(state=record).
  returned: always
  type: bool
  sample: false
reasons:
  description: Why a deploy is needed, one sentence each; empty when RV(converged).
  returned: always
  type: list
  elements: str
  sample: ["app web: main is at 3f2a9c1d0e4b on the git server; 9b8c7d6e5f40 is deployed"]
recorded:
  description: Whether O(path) was written (O(state=record) outside check mode).
  returned: always
  type: bool
  sample: true
"""

from ansible_collections.appfleet.docker.plugins.module_utils._docker import AppfleetModule
from ansible_collections.appfleet.docker.plugins.module_utils._deploy_state import logic


def main():
    am = AppfleetModule(
        argument_spec=dict(
            state=dict(type="str", choices=["check", "record"], default="check"),
            path=dict(type="path", default="/var/lib/appfleet/deploy-state.json"),
            fingerprint=dict(type="str", required=True),
            sources=dict(type="list", elements="dict", default=[], options=dict(
                app=dict(type="str", required=True),
                checkout=dict(type="path", required=True),
                repo=dict(type="str", required=True),
                version=dict(type="str", default="HEAD"),
                key_file=dict(type="path"),
                known_hosts=dict(type="path"),
            )),
            mutable_images=dict(type="list", elements="dict", default=[], options=dict(
                app=dict(type="str", required=True),
                image=dict(type="str", required=True),
            )),
            refresh_bases=dict(type="list", elements="str", default=[]),
            watch_paths=dict(type="list", elements="path", default=[]),
        ),
        supports_check_mode=True,
    )
    am.run(logic)


if __name__ == "__main__":
    main()
