#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: engine_daemon
short_description: Write the files dockerd reads once its checker accepts them, and fill the docker group
version_added: 0.3.0
description:
  - Writes O(config) to O(path) as sorted JSON indented by 2, and O(checker_settings) to
    O(checker_settings_path), only once the checker program O(checker) accepted both
    (it runs on private copies first), so that a file dockerd would refuse never lands.
  - Reports which options change and how dockerd takes them (RV(daemon.apply)), a reload when
    only options of O(reloadable) change, a restart otherwise; it neither reloads nor restarts
    dockerd itself, so notify a handler.
  - Writes the CA certificate of each registry of O(registry_cas) to C(<certs_dir>/<registry>/ca.crt),
    which dockerd reads at each pull or push, or removes that directory (O(registry_cas[].state=absent)).
  - Creates the system group O(group) when missing and adds O(users) to it; users that do not
    exist fail the module before anything changes (in check mode they are left out, since an
    earlier role may create them).
  - Used by the C(appfleet.docker.engine) role; needs no Docker SDK.
author:
  - appfleet developers (@appfleet)
extends_documentation_fragment:
  - appfleet.docker.attributes
attributes:
  check_mode:
    support: full
    details: Runs the checker when it is installed and reports the changes; writes nothing.
  diff_mode:
    support: full
    details: Shows the before and after of daemon.json, of the checker settings and of the CA certificates.
options:
  config:
    description:
      - The dockerd configuration to write, as a mapping of options.
    type: dict
    required: true
  path:
    description:
      - The daemon configuration file.
    type: path
    default: /etc/docker/daemon.json
  reloadable:
    description:
      - The options dockerd applies on SIGHUP; a change of any other option needs a restart.
    type: list
    elements: str
    default: []
  checker:
    description:
      - The program that checks a daemon configuration, run as C(CHECKER --settings SETTINGS FILE);
        exit status 0 accepts the file.
      - In check mode a missing program checks nothing; otherwise the module fails.
    type: path
    required: true
  checker_settings:
    description:
      - The checker settings, written as JSON to O(checker_settings_path).
    type: dict
    required: true
  checker_settings_path:
    description:
      - Where the checker settings go; its directory is made when missing.
    type: path
    required: true
  registry_cas:
    description:
      - Registries with a certificate from a CA of your own.
    type: list
    elements: dict
    default: []
    suboptions:
      registry:
        description:
          - The registry as image references name it, host or host:port.
        type: str
        required: true
      ca:
        description:
          - The PEM text of the CA certificate; required with O(registry_cas[].state=present).
        type: str
      state:
        description:
          - V(absent) removes the registry directory.
        type: str
        choices: [present, absent]
        default: present
  certs_dir:
    description:
      - The directory dockerd reads registry certificates from.
    type: path
    default: /etc/docker/certs.d
  group:
    description:
      - The group of the Docker socket, created as a system group when missing.
    type: str
    default: docker
  users:
    description:
      - Existing users to add to O(group). Membership is root-equivalent.
    type: list
    elements: str
    default: []
notes:
  - Runs as root on the managed host; the files are owned by root with mode C(0644).
"""

EXAMPLES = r"""
- name: Write /etc/docker/daemon.json and fill the docker group
  appfleet.docker.engine_daemon:
    config:
      live-restore: true
      log-driver: json-file
      log-opts:
        max-size: 10m
    reloadable: [debug, labels, live-restore]
    checker: /usr/local/sbin/appfleet-dockerd-config-check
    checker_settings:
      daemon_keys: {live-restore: boolean, log-driver: string, log-opts: strmap, debug: boolean, labels: strlist}
      allow_tcp: false
      host_flag_re: '(^|\s)-H'
    checker_settings_path: /etc/appfleet/engine/dockerd-config-check.json
    users: [deploy]
    registry_cas:
      - registry: registry.example.com:5000
        ca: "{{ lookup('ansible.builtin.file', 'registry-ca.pem') }}"
      - registry: old-registry.example.com
        state: absent
  register: engine_daemon
"""

RETURN = r"""
daemon:
  description: The daemon configuration file and how dockerd takes its change.
  returned: always
  type: dict
  contains:
    path:
      description: The file.
      type: str
    changed_options:
      description: The top-level options that change, sorted.
      type: list
      elements: str
    apply:
      description: V(none), V(reload) or V(restart); a reload when dockerd is not installed yet.
      type: str
    installed:
      description: Whether dockerd was installed when the module ran.
      type: bool
  sample:
    path: /etc/docker/daemon.json
    changed_options: [labels]
    apply: reload
    installed: true
group:
  description: The socket group and what changed in it.
  returned: always
  type: dict
  contains:
    name:
      description: The group.
      type: str
    created:
      description: Whether the group was (in check mode, would be) created.
      type: bool
    added:
      description: The users added (in check mode, to add).
      type: list
      elements: str
  sample:
    name: docker
    created: false
    added: [deploy]
registries:
  description: The registry CA files written and the registry directories removed (in check mode, to write or remove).
  returned: always
  type: list
  elements: str
  sample: [/etc/docker/certs.d/registry.example.com:5000/ca.crt]
"""

import os


from ansible_collections.appfleet.docker.plugins.module_utils import _engine_host as host
from ansible_collections.appfleet.docker.plugins.module_utils._docker import AppfleetModule


def plan(module):
    """Everything the module would change, checked before anything changes."""
    p = module.params
    daemon = host.FilePlan(p["path"], host.json_text(p["config"]))
    settings = host.FilePlan(p["checker_settings_path"], host.json_text(p["checker_settings"]))
    installed = module.get_bin_path("dockerd", opt_dirs=["/usr/sbin", "/usr/bin"]) is not None
    changed = host.changed_options(host.parsed_json(daemon.before), p["config"])
    create_group, add = host.group_plan(p["group"], p["users"], module.check_mode)
    if (daemon.changed or settings.changed) and (os.path.exists(p["checker"]) or not module.check_mode):
        host.checked_daemon_json(module.run_command, p["checker"], settings, daemon)
    cas, remove = host.registry_cas(p["certs_dir"], p["registry_cas"])
    return dict(
        files=[planned for planned in [settings, daemon] + cas if planned.changed], remove=remove,
        create_group=create_group, add=add,
        result=dict(
            daemon=dict(path=daemon.path, changed_options=changed, installed=installed,
                        apply=host.apply_of(changed, p["reloadable"], installed)),
            group=dict(name=p["group"], created=create_group, added=add),
            registries=[planned.path for planned in cas if planned.changed] + remove,
        ),
    )


def act(module, planned):
    group = module.params["group"]
    if planned["create_group"]:
        module.run_command(["groupadd", "--system", group], check_rc=True)
    for user in planned["add"]:
        module.run_command(["usermod", "--append", "--groups", group, user], check_rc=True)
    for file_plan in planned["files"]:
        file_plan.write()
    host.remove_all(planned["remove"])


def run(am):
    module = am.module
    planned = plan(module)
    if not module.check_mode:
        act(module, planned)
    result = dict(planned["result"], changed=bool(planned["files"] or planned["remove"] or planned["add"])
                  or planned["create_group"])
    if module._diff:
        result["diff"] = [file_plan.diff() for file_plan in planned["files"]]
    return result


def main():
    AppfleetModule(
        argument_spec=dict(
            config=dict(type="dict", required=True),
            path=dict(type="path", default="/etc/docker/daemon.json"),
            reloadable=dict(type="list", elements="str", default=[]),
            checker=dict(type="path", required=True),
            checker_settings=dict(type="dict", required=True),
            checker_settings_path=dict(type="path", required=True),
            registry_cas=dict(type="list", elements="dict", default=[], options=dict(
                registry=dict(type="str", required=True),
                ca=dict(type="str"),
                state=dict(type="str", choices=["present", "absent"], default="present"),
            ), required_if=[("state", "present", ("ca",))]),
            certs_dir=dict(type="path", default="/etc/docker/certs.d"),
            group=dict(type="str", default="docker"),
            users=dict(type="list", elements="str", default=[]),
        ),
        docker_sdk=False,
        docker_options=False,
        supports_check_mode=True,
    ).run(run)


if __name__ == "__main__":
    main()
