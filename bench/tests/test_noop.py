"""bench/noop.py: what it reads from a playbook's output."""

from __future__ import annotations

from .scripts import load_script

noop = load_script("noop.py", "bench_noop")

# deploy.yml's plan task as the default callback prints it with callback_result_format=yaml:
# the whole result, keys sorted, a long message folded over lines, a quote written twice.
OUTPUT = """
TASK [appfleet.docker.apps : Ask whether a deploy would change this host] ******
ok: [vm1] =>
  add_group: appfleet_deploy_run
  changed: false
  converged: false
  fingerprint: 0f3a
  msg: 'deploying: the deploy''s inputs changed (inventory, versions, key or certificate
    files, or the collection)'
  parent_groups:
  - all
  reasons:
  - the deploy's inputs changed (inventory, versions, key or certificate files, or
    the collection)
  recorded: false
ok: [vm2] =>
  changed: false
  converged: true
  fingerprint: 0f3a
  msg: 'nothing to deploy: the host is as the last deploy left it'
  reasons: []
  recorded: false
ok: [vm10] =>
  add_group: appfleet_deploy_run
  changed: false
  converged: false
  fingerprint: 0f3a
  msg: 'deploying: container web: exited'
  parent_groups:
  - all
  reasons:
  - 'container web: exited'
  recorded: false

PLAY RECAP *********************************************************************
vm1                        : ok=40   changed=0    unreachable=0    failed=0    skipped=9    rescued=0    ignored=0
"""


def test_deploying_names_each_host_the_plan_sends_and_why():
    assert noop.deploying(OUTPUT) == {
        "vm1": "deploying: the deploy's inputs changed (inventory, versions, key or certificate files, "
               "or the collection)",
        "vm10": "deploying: container web: exited",
    }


def test_deploying_is_empty_for_a_converged_fleet_and_other_playbooks():
    assert noop.deploying(OUTPUT.replace("deploying", "nothing to deploy")) == {}
    assert noop.deploying("PLAY RECAP ***\nvm1 : ok=4 changed=0 unreachable=0 failed=0\n") == {}


def test_recap_rows_are_read_per_host():
    rows = {m.group(1): m.groups()[1:] for m in noop.RECAP.finditer(OUTPUT)}
    assert rows == {"vm1": ("40", "0", "0", "0")}
