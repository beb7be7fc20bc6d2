"""deploy.yml writes the server blocks again unless its plan proved them current
(deploy_servers_current, playbooks/vars/deploy.yml): only a plain deploy whose plan
named single apps leaves them alone; a reason of the whole host, a host not asked,
-e apps=, --tags and appfleet_skip_unchanged=false all write them."""

from __future__ import annotations

import json
import re
import sys

import pytest

from conftest import REPO, run_playbook

# (name, the plan's result on the host); the names are the hosts of one play.
PLANS = {
    "per-app": {"apps": ["web"], "msg": "deploying: app web: main is at 3f2a on the git server"},
    "whole-host": {"apps": None, "msg": "deploying: files changed since the last deploy: /etc/nginx/x"},
    "not-asked": {},
    "no-apps": {"apps": []},
}


def servers_current(*args):
    """{plan name: deploy_servers_current} under the command line ``args``."""
    play = [{
        "name": "Evaluate deploy_servers_current", "hosts": "localhost", "connection": "local",
        "gather_facts": False, "vars_files": [str(REPO / "playbooks/vars/deploy.yml")],
        "vars": {"ansible_python_interpreter": sys.executable,
                 "appfleet_apps": [{"name": "web", "source": {"repo": "git@h:web.git"}}]},
        "tasks": [{"name": "Say it for each plan",
                   "ansible.builtin.debug": {"msg": "SERVERS {{ item.key }}={{ deploy_servers_current | bool }}"},
                   "vars": {"apps_plan_result": "{{ item.value }}"},
                   "loop": "{{ plans | dict2items }}", "tags": ["always"]}],
    }]
    proc = run_playbook(json.dumps(play, indent=1), "-i", "localhost,", "-e", json.dumps({"plans": PLANS}), *args)
    return dict(re.findall(r"SERVERS ([\w-]+)=(True|False)", proc.stdout))


@pytest.mark.parametrize("args, expected_per_app", [
    ((), "True"),
    (("-e", "apps=web"), "False"),
    (("--tags", "web"), "False"),
    (("-e", "appfleet_skip_unchanged=false"), "False"),
])
def test_only_a_plain_deploy_of_single_app_reasons_skips_the_server_blocks(args, expected_per_app):
    said = servers_current(*args)
    assert said == {"per-app": expected_per_app, "whole-host": "False", "not-asked": "False", "no-apps": "False"}, said
