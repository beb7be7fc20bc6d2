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
  - "A marker C(<app>.reload-pending) of M(appfleet.docker.app_container) under O(watch_paths)
    (an upstream file rewritten, nginx not reloaded with it: a run was stopped in between) is a
    reason naming that app for as long as it exists, whatever the record holds; the marker is
    not compared as a watched file."
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
  action:
    description: Indicates this has a corresponding action plugin, so some parts of the work run on the controller.
    support: full
    details: The action plugin summarises the answer, handles O(force) and adds the host to O(group).
options:
  state:
    description:
      - V(check) compares the host with the record; V(record) writes the record.
      - V(resolve) only asks the git servers, once for each distinct O(sources[].repo) and
        O(sources[].version), and returns RV(remote_commits) for the O(remote_commits) of
        other hosts' checks (C(playbooks/deploy.yml) asks one host for the whole fleet). It
        reads nothing else on the host and never changes anything.
    type: str
    choices: [check, record, resolve]
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
      - Required with O(state=check) and O(state=record); not used by O(state=resolve).
    type: str
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
        description:
          - The repository URL, as the apps role clones it. Git is given it as it is; what the
            module returns or says shows its credentials masked (C(https://user:***@host/...)).
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
  remote_commits:
    description:
      - With O(state=check), answers of an earlier O(state=resolve) call, of this host or any
        other (its RV(remote_commits)). A source with the same O(sources[].repo) and
        O(sources[].version) takes the commit from here instead of asking its git server;
        an entry without a commit, and a source without an entry, ask the server as usual.
    type: list
    elements: dict
    default: []
    version_added: 0.3.0
    suboptions:
      repo:
        description: The repository URL, credentials masked or not (they are compared masked).
        type: str
        required: true
      version:
        description: The branch, tag or commit asked for.
        type: str
        default: HEAD
      commit:
        description: The commit the server gave for it; empty when it could not be asked.
        type: str
      error:
        description: Why the server could not be asked (ignored here; part of RV(remote_commits)).
        type: str
  watch_paths:
    description:
      - Absolute paths of files and directories the deploy writes (server blocks, upstream
        files, deploy keys, secret files). Each file under them is recorded by content, mode
        and owner; at most 5000 files.
    type: list
    elements: path
    default: []
  group:
    description:
      - With O(state=check), the inventory group (created when missing) the host joins when a
        deploy is needed, as M(ansible.builtin.group_by) would put it there. That is when RV(converged)
        is false, when O(force=true), and when the check fails (the task's C(failed_when) decides
        whether that stops the run). C(playbooks/deploy.yml) deploys the hosts of this group only.
      - As with M(ansible.builtin.group_by), a host that joins the group is reported as changed;
        set C(changed_when) to V(false) on the task to say otherwise.
      - Handled on the controller by the action plugin of the same name.
    type: str
    version_added: 0.3.0
  force:
    description:
      - With O(state=check), answer that a deploy is needed without asking the host (RV(reasons)
        says so); nothing is sent to the host. C(playbooks/deploy.yml) sets it when apps or tags
        are selected, or when C(appfleet_skip_unchanged=false).
      - Handled on the controller by the action plugin of the same name.
    type: bool
    default: false
    version_added: 0.3.0
notes:
  - With the default O(docker_host) (a C(unix://) socket) the engine is read with Python's
    standard library; the Docker SDK for Python is imported only for another O(docker_host).
  - An action plugin runs with the module. It adds RV(msg), a one-line summary shown at every
    verbosity, and handles O(group) and O(force); C(playbooks/deploy.yml)'s plan is this one
    task per host.
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
  returned: when O(state) is V(check) or V(record)
  type: bool
  sample: false
reasons:
  description: Why a deploy is needed, one sentence each; empty when RV(converged).
  returned: when O(state) is V(check) or V(record)
  type: list
  elements: str
  sample: ["app web: main is at 3f2a9c1d0e4b on the git server; 9b8c7d6e5f40 is deployed"]
apps:
  description:
    - The apps the RV(reasons) concern, when each of them concerns one app (its commit moved, its
      container was stopped or replaced, its image tag may have moved); a deploy of those apps alone
      brings the host back to the record. Null when a reason concerns the whole host (the inputs,
      the managed files or the images changed, no record yet); then every app is deployed.
  returned: when O(state=check) and the host was asked
  type: list
  elements: str
  sample: ["web"]
firewall:
  description:
    - The engine role's DOCKER-USER rules on the host, as its program C(/usr/local/sbin/appfleet-docker-user --check)
      finds them; V(in place), V(missing) or V(unknown) (the check failed), with a warning for the last two.
      Null on a host without that program. Not a reason to deploy, since a deploy does not change the firewall.
  returned: when O(state=check) and the host was asked
  type: str
  sample: in place
remote_commits:
  description:
    - With O(state=resolve), each distinct repository and version of O(sources) with the commit
      its git server gave (C(commit)), or null and why not (C(error)).
    - C(repo) is the URL with its credentials masked (C(https://user:***@host/team/web.git)), as
      is any URL in C(error); repositories that differ only in credentials are asked once.
  returned: when O(state=resolve)
  type: list
  elements: dict
  sample: [{"repo": "git@git.example.com:team/web.git", "version": "main",
            "commit": "3f2a9c1d0e4b5a6978877665544332211f0e9d8c", "error": null}]
fingerprint:
  description: The O(fingerprint) the host was compared with (or recorded), for the record written after the deploy.
  returned: when O(state) is V(check) or V(record), and O(force) is false
  type: str
  sample: 5b0f3c0e4d9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c
msg:
  description:
    - With O(state=check), what a deploy will do here, on one line shown at every verbosity.
      It starts with C(nothing to deploy) or with C(deploying) followed by the RV(reasons).
  returned: when O(state=check) and the check did not fail
  type: str
  sample: "deploying: app web: main is at 3f2a9c1d0e4b on the git server; 9b8c7d6e5f40 is deployed"
recorded:
  description: Whether O(path) was written (O(state=record) outside check mode).
  returned: when O(state) is V(check) or V(record)
  type: bool
  sample: true
"""

from ansible_collections.appfleet.docker.plugins.module_utils._docker import AppfleetModule
from ansible_collections.appfleet.docker.plugins.module_utils._deploy_state import logic


def main():
    am = AppfleetModule(
        argument_spec=dict(
            state=dict(type="str", choices=["check", "record", "resolve"], default="check"),
            path=dict(type="path", default="/var/lib/appfleet/deploy-state.json"),
            fingerprint=dict(type="str"),
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
            remote_commits=dict(type="list", elements="dict", default=[], options=dict(
                repo=dict(type="str", required=True),
                version=dict(type="str", default="HEAD"),
                commit=dict(type="str"),
                error=dict(type="str"),
            )),
            watch_paths=dict(type="list", elements="path", default=[]),
            # Read by the action plugin on the controller; the module itself ignores them.
            group=dict(type="str"),
            force=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
        required_if=[("state", "check", ["fingerprint"]), ("state", "record", ["fingerprint"])],
        # The engine's socket is read without the SDK; another docker_host imports it.
        docker_sdk=False,
    )
    am.run(logic)


if __name__ == "__main__":
    main()
