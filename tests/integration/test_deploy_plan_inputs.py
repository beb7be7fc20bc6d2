"""The apps role's plan (tasks/plan.yml) on this machine: what goes into the fingerprint.

The fingerprint decides whether deploy.yml leaves a host alone, so each input must move it:
here the proxy's certificate named in ``proxy_apps`` (not ``appfleet_apps``), renewed at the
same path, and the roles' options; a value a run registers must not.
"""

from __future__ import annotations

import json
import re
import sys

from conftest import run_playbook

PLAY = """
- hosts: localhost
  gather_facts: false
  vars:
    ansible_python_interpreter: %(python)s
  tasks:
    - name: Ask the plan
      ansible.builtin.import_role:
        name: appfleet.docker.apps
        tasks_from: plan
      vars:
        apps_plan_force: false
    - name: Show the fingerprint
      ansible.builtin.debug:
        msg: "FINGERPRINT={{ apps_plan_result.fingerprint }}"
"""


def fingerprint(tmp_path, extra):
    vars_file = tmp_path / "vars.json"
    vars_file.write_text(json.dumps(extra))
    proc = run_playbook(PLAY % {"python": sys.executable},
                        "-e", "@%s" % vars_file)
    found = re.findall(r"FINGERPRINT=([0-9a-f]{64})", proc.stdout)
    assert len(found) == 1, proc.stdout[-4000:]
    return found[0]


def test_fingerprint_moves_with_a_renewed_proxy_apps_certificate_and_an_option(tmp_path):
    cert, key = tmp_path / "web.crt", tmp_path / "web.key"
    cert.write_text("certificate one\n")
    key.write_text("key one\n")
    inputs = {"appfleet_apps": [], "proxy_apps": [
        {"name": "web", "proxy": {"server_name": "web.test", "tls": {"certificate": str(cert), "key": str(key)}}}]}
    first = fingerprint(tmp_path, inputs)
    assert fingerprint(tmp_path, inputs) == first
    # What a run registers or sets is not an input.
    assert fingerprint(tmp_path, dict(inputs, apps_checkout={"after": "x"}, apps_build={"changed": True})) == first
    cert.write_text("certificate two, renewed at the same path\n")
    renewed = fingerprint(tmp_path, inputs)
    assert renewed != first
    assert fingerprint(tmp_path, dict(inputs, proxy_read_timeout="90s")) != renewed
