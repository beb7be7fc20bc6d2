#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: host_files
short_description: Look for paths, make directories and write small files on a host in one call
version_added: 0.3.0
description:
  - Says which paths of O(look_for) exist on the host (a socket, a program, any file type).
  - Makes each directory of O(directories) with its mode, owned by root, and its missing parents
    with the same mode and owner; an existing one gets the mode and owner.
  - Writes each file of O(files), owned by root with its mode, atomically, where its content,
    mode or owner differ.
  - One round trip for what a find, a file loop and a copy loop did in one per item; the
    C(appfleet.docker.apps) role prepares a host with it.
  - When a path of O(require) does not exist, nothing is made or written (the result's
    RV(missing) names it), so that the caller can fail with its own message.
author:
  - appfleet developers (@appfleet)
extends_documentation_fragment:
  - appfleet.docker.attributes
attributes:
  check_mode:
    support: full
    details: Looks for the paths and reports what would be made or written; changes nothing.
  diff_mode:
    support: full
    details: Directories by mode and owner, files by content, except a file read from O(files[].src), whose content is never shown.
  action:
    description: Indicates this has a corresponding action plugin, so some parts of the work run on the controller.
    support: full
    details: The action plugin reads each O(files[].src) on the controller (a vaulted file decrypted).
options:
  look_for:
    description:
      - Paths to look for; RV(found) lists those that exist.
    type: list
    elements: path
    default: []
  require:
    description:
      - Paths that must exist for anything to be made or written.
    type: list
    elements: path
    default: []
  directories:
    description:
      - The directories, made in this order before the files.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description:
          - The directory, an absolute path.
        type: path
        required: true
      mode:
        description:
          - Its mode, an octal string such as V(0700).
        type: str
        required: true
  files:
    description:
      - The files. The directory of each must exist or be one of O(directories).
    type: list
    elements: dict
    default: []
    suboptions:
      dest:
        description:
          - The file on the host, an absolute path.
        type: path
        required: true
      mode:
        description:
          - Its mode, an octal string such as V(0600).
        type: str
        required: true
      content:
        description:
          - Its text, shown in the diff.
          - One of O(files[].content) and O(files[].src) is required.
        type: str
      src:
        description:
          - A file on the controller whose text it gets (a deploy key). Read by the action plugin;
            its content is never logged or shown.
        type: path
      src_content:
        description:
          - Set by the action plugin, not by hand. The text of O(files[].src).
        type: str
"""

EXAMPLES = r"""
- name: Look for the Docker engine and git, and install the deploy key and host keys
  appfleet.docker.host_files:
    look_for: [/var/run/docker.sock, /usr/bin/git]
    require: [/var/run/docker.sock]
    directories:
      - {path: /etc/appfleet/keys, mode: "0700"}
    files:
      - {dest: /etc/appfleet/keys/web, src: keys/web_deploy_key, mode: "0600"}
      - {dest: /etc/appfleet/keys/web.known_hosts, content: "git.example.com ssh-ed25519 AAAA...\n", mode: "0644"}
  register: host_prepared
"""

RETURN = r"""
found:
  description: The paths of O(look_for) that exist, in that order.
  returned: always
  type: list
  elements: str
  sample: [/var/run/docker.sock, /usr/bin/git]
missing:
  description: The paths of O(require) that do not exist; when any is, nothing was made or written.
  returned: always
  type: list
  elements: str
  sample: []
changed_paths:
  description: The directories and files made or changed (in check mode, to make or change).
  returned: always
  type: list
  elements: str
  sample: [/etc/appfleet/keys/web]
"""

from ansible_collections.appfleet.docker.plugins.module_utils._docker import AppfleetModule
from ansible_collections.appfleet.docker.plugins.module_utils._host_files import run


def main():
    AppfleetModule(
        argument_spec=dict(
            look_for=dict(type="list", elements="path", default=[]),
            require=dict(type="list", elements="path", default=[]),
            directories=dict(type="list", elements="dict", default=[], options=dict(
                path=dict(type="path", required=True),
                mode=dict(type="str", required=True),
            )),
            files=dict(type="list", elements="dict", default=[], options=dict(
                dest=dict(type="path", required=True),
                mode=dict(type="str", required=True),
                content=dict(type="str"),
                src=dict(type="path"),
                src_content=dict(type="str", no_log=True),
            ), mutually_exclusive=[("content", "src")], required_one_of=[("content", "src")]),
        ),
        docker_sdk=False,
        docker_options=False,
        supports_check_mode=True,
    ).run(lambda am: run(am.params, am.check_mode, am.diff_mode))


if __name__ == "__main__":
    main()
