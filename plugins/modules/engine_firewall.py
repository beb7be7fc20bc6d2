#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: engine_firewall
short_description: Keep the DOCKER-USER rules in place, now and before every start of dockerd
version_added: 0.3.0
description:
  - Writes the allowed networks as the settings of the DOCKER-USER rules program O(program)
    (C(/usr/local/sbin/appfleet-docker-user) of the C(appfleet.docker.engine) role) and a
    C(docker.service) drop-in that runs the program before every start of dockerd, so that no
    container starts unprotected.
  - Removes the paths of O(absent), for example units of earlier versions.
  - Asks the program (C(--check)) whether the rules with these networks are in place, and puts
    them in place when they are not.
  - It does not reload systemd; notify a handler when it reports a change.
author:
  - appfleet developers (@appfleet)
extends_documentation_fragment:
  - appfleet.docker.attributes
attributes:
  check_mode:
    support: full
    details: Checks the rules with the new networks where the program is installed and reports the changes; writes and applies nothing.
  diff_mode:
    support: full
    details: Shows the before and after of the settings and of the drop-in.
options:
  program:
    description:
      - The DOCKER-USER rules program, run as C(PROGRAM --settings SETTINGS [--check]).
    type: path
    required: true
  settings_path:
    description:
      - Where the program settings go (JSON); its directory is made when missing.
    type: path
    required: true
  allowed_networks:
    description:
      - Source networks in CIDR form, IPv4 or IPv6, allowed to reach published container ports.
    type: list
    elements: str
    required: true
  dropin:
    description:
      - The C(docker.service) drop-in that runs the program as C(ExecStartPre=); its directory is made when missing.
    type: path
    default: /etc/systemd/system/docker.service.d/appfleet-docker-user.conf
  absent:
    description:
      - Paths to remove.
    type: list
    elements: path
    default: []
notes:
  - Runs as root on the managed host; the files are owned by root with mode C(0644).
"""

EXAMPLES = r"""
- name: Keep the DOCKER-USER rules in place
  appfleet.docker.engine_firewall:
    program: /usr/local/sbin/appfleet-docker-user
    settings_path: /etc/appfleet/engine/docker-user.json
    allowed_networks: [127.0.0.0/8, "::1/128", 10.20.0.0/16]
  notify: Reload the systemd units
"""

RETURN = r"""
rules:
  description:
    - The rules before the module ran, V(in place) or V(missing) (then put in place),
      or V(not installed) in check mode before the program is installed.
  returned: always
  type: str
  sample: in place
files:
  description: The paths written or removed (in check mode, to write or remove).
  returned: always
  type: list
  elements: str
  sample: [/etc/appfleet/engine/docker-user.json]
"""


from ansible_collections.appfleet.docker.plugins.module_utils import _engine_host as host
from ansible_collections.appfleet.docker.plugins.module_utils._docker import AppfleetModule
from ansible_collections.appfleet.docker.plugins.module_utils._engine_settings import PATHS


def run(am):
    module = am.module
    p = module.params
    settings = host.FilePlan(p["settings_path"], host.json_text({"allowed_networks": p["allowed_networks"]}))
    dropin = host.FilePlan(p["dropin"], host.dropin_text(p["program"], p["settings_path"]))
    absent = host.remove_paths(p["absent"])
    rules = host.rules_state(module.run_command, p["program"], settings, module.check_mode)
    written = [planned for planned in (settings, dropin) if planned.changed]
    if not module.check_mode:
        for planned in written:
            planned.write()
        host.remove_all(absent)
        if rules != "in place":
            host.apply_rules(module.run_command, p["program"], p["settings_path"])
    result = dict(changed=bool(written or absent) or rules != "in place", rules=rules,
                  files=[planned.path for planned in written] + absent)
    if module._diff:
        result["diff"] = [planned.diff() for planned in written]
    return result


def main():
    AppfleetModule(
        argument_spec=dict(
            program=dict(type="path", required=True),
            settings_path=dict(type="path", required=True),
            allowed_networks=dict(type="list", elements="str", required=True),
            dropin=dict(type="path", default=PATHS["rules_dropin"]),
            absent=dict(type="list", elements="path", default=[]),
        ),
        docker_sdk=False,
        docker_options=False,
        supports_check_mode=True,
    ).run(run)


if __name__ == "__main__":
    main()
