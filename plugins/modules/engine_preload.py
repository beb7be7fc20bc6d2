#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: engine_preload
short_description: Load images from archives on hosts without registry access, only those missing
version_added: 0.3.0
description:
  - The host side of the C(appfleet.docker.engine) role's preload, in two steps around the copy of the archives.
  - With O(step=plan), returns the entries of O(images) whose image the engine does not have
    (RV(missing)), each with the file in O(dir) to copy its archive to, and makes O(dir)
    root-only (C(0700)) when one is missing.
  - With O(step=load), runs C(docker load) on the file of each entry of O(images), removes the
    file, and fails when the image is still missing afterwards (the archive holds other tags).
  - Uses the C(docker) command line; needs no Docker SDK.
author:
  - appfleet developers (@appfleet)
extends_documentation_fragment:
  - appfleet.docker.attributes
attributes:
  check_mode:
    support: full
    details: Looks for the images and reports what it would make or load; makes and loads nothing.
  diff_mode:
    support: none
options:
  images:
    description:
      - The images, each a mapping with C(image) (name:tag) and C(archive) (its archive on the controller,
        passed through to RV(missing)).
    type: list
    elements: dict
    required: true
  dir:
    description:
      - The root-only directory on the host for the archives being loaded.
    type: path
    default: /var/lib/appfleet/preload
  step:
    description:
      - V(plan) finds the missing images; V(load) loads the copied archives of O(images).
    type: str
    choices: [plan, load]
    default: plan
"""

EXAMPLES = r"""
- name: Look for the images to preload
  appfleet.docker.engine_preload:
    images:
      - image: appfleet-lab/debian:bookworm
        archive: files/debian-bookworm.tar
  register: preload

- name: Copy the archives of the missing images
  ansible.builtin.copy:
    src: "{{ item.archive }}"
    dest: "{{ item.file }}"
    mode: "0600"
  loop: "{{ preload.missing }}"

- name: Load the missing images
  appfleet.docker.engine_preload:
    images: "{{ preload.missing }}"
    step: load
"""

RETURN = r"""
missing:
  description: The entries of O(images) whose image the engine does not have, each with C(file), where its archive goes.
  returned: always
  type: list
  elements: dict
  sample:
    - image: appfleet-lab/debian:bookworm
      archive: files/debian-bookworm.tar
      file: /var/lib/appfleet/preload/appfleet-lab_debian_bookworm.tar
"""

import os
import re
import stat

from ansible.module_utils.basic import AnsibleModule

UNSAFE_RE = re.compile(r"[^A-Za-z0-9_.-]")


def archive_file(directory, image):
    """The file an image's archive is copied to: its name with every other character as '_'."""
    return os.path.join(directory, UNSAFE_RE.sub("_", image) + ".tar")


def present(module, docker, image):
    if docker is None:
        return False
    rc, _out, _err = module.run_command([docker, "image", "inspect", "--format", "{{.Id}}", image])
    return rc == 0


def main():
    module = AnsibleModule(
        argument_spec=dict(
            images=dict(type="list", elements="dict", required=True),
            dir=dict(type="path", default="/var/lib/appfleet/preload"),
            step=dict(type="str", choices=["plan", "load"], default="plan"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    docker = module.get_bin_path("docker")
    entries = [dict(entry, file=archive_file(p["dir"], entry["image"])) for entry in p["images"]]
    missing = [entry for entry in entries if not present(module, docker, entry["image"])]
    if p["step"] == "plan":
        changed = bool(missing) and not (os.path.isdir(p["dir"]) and stat.S_IMODE(os.stat(p["dir"]).st_mode) == 0o700)
        if missing and not module.check_mode:
            os.makedirs(p["dir"], 0o700, exist_ok=True)
            os.chmod(p["dir"], 0o700)
        module.exit_json(changed=changed, missing=missing)
    if module.check_mode or not missing:
        module.exit_json(changed=bool(missing), missing=missing)
    for entry in missing:
        rc, out, err = module.run_command([docker, "load", "--input", entry["file"]])
        if os.path.exists(entry["file"]):
            os.unlink(entry["file"])
        if rc != 0:
            module.fail_json(msg="engine_preload_images: docker load of %s (for %s) failed: %s"
                             % (entry["archive"], entry["image"], (err or out).strip()[-1000:]))
    still = [entry["image"] for entry in missing if not present(module, docker, entry["image"])]
    if still:
        module.fail_json(msg="engine_preload_images: after docker load, these images are still missing "
                             "(the archive holds other tags?): %s" % ", ".join(still))
    module.exit_json(changed=True, missing=missing)


if __name__ == "__main__":
    main()
