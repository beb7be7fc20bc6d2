#!/usr/bin/env python
"""The lab fleet as an Ansible inventory: the VMs `labctl.py up` last made.

`tests/lab/labctl.py up --vms N` writes .lab/fleet.json (APPFLEET_LAB_DIR);
this script turns it into the group `fleet`: vm1..vmN, each reached by SSH on
127.0.0.1:(2200+N), its nginx published on 127.0.0.1:(8000+N) (HTTP) and
127.0.0.1:(8440+N) (HTTPS). Without a lab it lists the default vm1 and vm2.
"""

from __future__ import annotations

import json
import os
import sys


def fleet():
    here = os.path.dirname(os.path.abspath(__file__))
    state = os.environ.get("APPFLEET_LAB_DIR") or os.path.join(here, "..", "..", ".lab")
    path = os.path.join(state, "fleet.json")
    if os.path.exists(path):
        with open(path) as handle:
            return json.load(handle)["vms"]
    return [{"hostname": "vm%d" % i, "suite": "bookworm", "ssh_port": 2200 + i,
             "http_port": 8000 + i, "https_port": 8440 + i} for i in (1, 2)]


def inventory():
    vms = fleet()
    hostvars = {}
    for vm in vms:
        hostvars[vm["hostname"]] = {
            "ansible_port": vm["ssh_port"],
            "lab_http_port": vm["http_port"],
            "lab_https_port": vm["https_port"],
            "lab_suite": vm["suite"],
        }
    return {
        "all": {"children": ["fleet", "ungrouped"]},
        "fleet": {"hosts": [vm["hostname"] for vm in vms]},
        "_meta": {"hostvars": hostvars},
    }


def main(argv):
    if len(argv) > 1 and argv[1] == "--host":
        print(json.dumps(inventory()["_meta"]["hostvars"].get(argv[2], {})))
    else:
        print(json.dumps(inventory(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
