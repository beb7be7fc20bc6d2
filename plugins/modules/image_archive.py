#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: image_archive
short_description: Save an image to an archive file, or load it from one, to share a build without a registry
version_added: 0.3.0
description:
  - The host side of building once per fleet without a registry. One host saves an image
    to a file with O(state=exported); the controller fetches the file and copies it to the
    other hosts (M(ansible.builtin.fetch), M(ansible.builtin.copy)); they load it with
    O(state=imported).
  - With O(state=exported), the C(docker save) of O(name) is streamed into a temporary file
    in the directory of O(path), fsynced and checked (its C(manifest.json) lists O(name) and
    the sha256 of its config is the image id), then renamed over O(path) with O(mode). An
    error, a full disk included, removes the temporary file and leaves O(path) as it was.
    When O(path) already is an archive that holds O(name) at the image's id, nothing is
    written (only its mode is set when it differs from O(mode)).
  - With O(state=imported), the archive's C(manifest.json) and the config of O(name) are
    read straight out of the tar (nothing is extracted to disk) and the image id is
    computed from that config, not taken from the output of C(docker load). With
    O(expected_id), an archive whose image id for O(name) is another one is refused before
    anything is loaded or tagged. When O(name) already is that image on the host, nothing is
    loaded. Otherwise the file is streamed to the engine's C(docker load), and O(name) must
    then be that image.
author:
  - appfleet developers (@appfleet)
extends_documentation_fragment:
  - appfleet.docker.attributes
  - appfleet.docker.docker
attributes:
  check_mode:
    support: full
    details: Reads the archive and the engine and reports whether it would write or load; writes and loads nothing.
  diff_mode:
    support: full
    details: Shows O(path) and the image id it holds (or V(absent)) for V(exported), O(name) and its image id (or V(absent)) for V(imported).
options:
  name:
    description:
      - The image reference, with a tag, for example V(appfleet/web:src-0123abcd).
      - A digest (C(@sha256:...)) is refused; the archive records tags.
    type: str
    required: true
  path:
    description:
      - The archive file on the managed host, an uncompressed C(docker save) tarball.
      - For V(exported) its directory must exist.
    type: path
    required: true
  state:
    description:
      - V(exported) writes the image O(name) of this host to O(path).
      - V(imported) loads O(name) from the archive at O(path) into this host's engine.
    type: str
    required: true
    choices: [exported, imported]
  mode:
    description:
      - The mode of the archive V(exported) writes, as an octal string such as V("0600").
      - Not used with V(imported).
    type: raw
    default: "0600"
  expected_id:
    description:
      - With V(imported), the image id (V(sha256:...)) the archive must hold for O(name), for
        example the RV(image.id) that V(exported) returned on the host that saved the archive.
      - An archive that holds another image for O(name) is refused, naming both ids, before
        anything is loaded or tagged (in check mode too).
      - So that the image id checked is the one loaded, the archive must then be root's alone
        - the file and every directory above it owned by root and writable by no one else (a
        sticky directory is fine), and no process holding the file open for writing - or it
        is refused.
      - Only with V(imported).
    type: str
notes:
  - The image id is the sha256 of the image's config, as the engine's classic image store
    (overlay2 and the other graph drivers) reports it. An engine using the containerd image
    store reports other ids; there an import fails after the load, saying so.
seealso:
  - module: appfleet.docker.image_build
  - module: appfleet.docker.image_prune
  - module: ansible.builtin.fetch
"""

EXAMPLES = r"""
- name: Save the web image on the build host
  appfleet.docker.image_archive:
    name: appfleet/web:src-0123abcd
    path: /var/lib/appfleet/archives/web.tar
    state: exported
    mode: "0600"
  register: web_saved
  when: inventory_hostname == groups['fleet'][0]

- name: Fetch the archive to the controller
  ansible.builtin.fetch:
    src: /var/lib/appfleet/archives/web.tar
    dest: archives/web.tar
    flat: true
  when: inventory_hostname == groups['fleet'][0]

- name: Copy the archive to the other hosts
  ansible.builtin.copy:
    src: archives/web.tar
    dest: /var/lib/appfleet/archives/web.tar
    mode: "0600"
  when: inventory_hostname != groups['fleet'][0]

- name: Load the web image from the archive, if it holds the image the build host saved
  appfleet.docker.image_archive:
    name: appfleet/web:src-0123abcd
    path: /var/lib/appfleet/archives/web.tar
    state: imported
    expected_id: "{{ hostvars[groups['fleet'][0]].web_saved.image.id }}"
  register: web_archive
"""

RETURN = r"""
image:
  description: The image O(name) stands for.
  returned: success
  type: dict
  contains:
    id:
      description:
        - Image id. For V(exported) the id of O(name) on the host; for V(imported) the id
          the archive holds for O(name), which O(name) has after the run (in check mode,
          would have).
      type: str
      sample: sha256:9ca0a2c812710a9aadb1b58b0e16eaba2eb977ec59fa36eaf7b036b6f8df084b
    name:
      description: The image reference, O(name).
      type: str
      sample: appfleet/web:src-0123abcd
archive:
  description: The archive file.
  returned: success
  type: dict
  contains:
    path:
      description: Its path, O(path).
      type: str
      sample: /var/lib/appfleet/archives/web.tar
    size:
      description: Its size in bytes; null in check mode when V(exported) would write it.
      type: int
      sample: 2478080
    image_id:
      description: The image id it holds for O(name) (after the run; in check mode, would hold).
      type: str
      sample: sha256:9ca0a2c812710a9aadb1b58b0e16eaba2eb977ec59fa36eaf7b036b6f8df084b
"""

from ansible_collections.appfleet.docker.plugins.module_utils._docker import AppfleetModule
from ansible_collections.appfleet.docker.plugins.module_utils._image_archive import logic


def main():
    am = AppfleetModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            path=dict(type="path", required=True),
            state=dict(type="str", required=True, choices=["exported", "imported"]),
            mode=dict(type="raw", default="0600"),
            expected_id=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    am.run(logic)


if __name__ == "__main__":
    main()
