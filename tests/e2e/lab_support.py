"""End-to-end helpers and fixtures: the real lab fleet, made fresh once per session.

Test files run in name order: test_10_* expect fresh VMs, later files converge
them, test_99_* takes the lab down. Test modules import the fixtures from here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import testinfra

from conftest import BIN, REPO, ansible_env  # tests/conftest.py

LABCTL = [sys.executable, str(REPO / "tests" / "lab" / "labctl.py")]
SSH_CONFIG = REPO / ".lab" / "ssh" / "config"
# The e2e fleet: vm1 on Debian 12, vm2 on Debian 13, both as a cloud image
# leaves them (initial user debian, root login refused, no git/Docker/nginx).
SUITES = ("bookworm", "trixie")
VMS = ("vm1", "vm2")


def labctl(*args, timeout=1800):
    return subprocess.run(LABCTL + list(args), capture_output=True, text=True, timeout=timeout,
                          check=False)


_MADE = {}


@pytest.fixture(scope="session")
def lab():
    """A freshly made lab: down first, so the VMs are new whatever ran before.

    Each test module imports this fixture, which gives it an instance of its
    own: the lab is made once per session all the same (the first module to
    ask makes it)."""
    if "up" not in _MADE:
        down = labctl("down")
        assert down.returncode == 0, down.stderr
        up = labctl("up", "--vms", str(len(VMS)), "--suites", ",".join(SUITES))
        assert up.returncode == 0, up.stdout + up.stderr
        _MADE["up"] = up
    return _MADE["up"]


_FLEET = {}


def start_fleet_converge():
    """Start site.yml on the fresh fleet in the background, once per session.

    tests/e2e/test_30_bootstrap_guard.py starts it before its own tests, which
    run on a VM of their own (not in the fleet) after test_10_lab.py has seen
    the fresh VMs: the two overlap instead of one waiting for the other."""
    if "proc" not in _FLEET:
        # Files, not pipes: nobody reads the output until the run ends.
        out = tempfile.TemporaryFile("w+")
        err = tempfile.TemporaryFile("w+")
        cmd = [str(BIN / "ansible-playbook"), "site.yml", "-i", "inventories/lab"]
        _FLEET.update(cmd=cmd, out=out, err=err, proc=subprocess.Popen(
            cmd, cwd=REPO, env=ansible_env(), stdout=out, stderr=err, text=True))
    return _FLEET["proc"]


def converged_fleet(timeout=2400):
    """site.yml's run on the fresh fleet (started here unless it was started
    before), once it has ended: a CompletedProcess."""
    if "done" not in _FLEET:
        proc = start_fleet_converge()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.returncode != 0:
            # No fleet to run the second site.yml on: the molecule stream need not wait for it.
            mark_fleet_converged()
        streams = []
        for handle in (_FLEET["out"], _FLEET["err"]):
            handle.seek(0)
            streams.append(handle.read())
            handle.close()
        _FLEET["done"] = subprocess.CompletedProcess(_FLEET["cmd"], proc.returncode, *streams)
    return _FLEET["done"]


def mark_fleet_converged():
    """Tell the suite (tests/tools/run-suite.sh, APPFLEET_FLEET_MARK) that the fleet's
    heavy start is over (site.yml on the fresh VMs, then the second site.yml of
    tests/e2e/test_50_fleet.py): the molecule stream waits for it, so that the
    heaviest lab steps do not share the two cores with the molecule instances."""
    mark = os.environ.get("APPFLEET_FLEET_MARK")
    if mark:
        Path(mark).touch()


def lab_host(name, user=None):
    """A lab host over SSH (the lab's ssh config: recorded host keys checked), as
    the initial user `debian` or `user`, commands run with sudo."""
    spec = "ssh://%s@%s" % (user, name) if user else "ssh://" + name
    return testinfra.get_host(spec, ssh_config=str(SSH_CONFIG), sudo=True)


@pytest.fixture(scope="session", params=VMS)
def vm(request, lab):
    return lab_host(request.param)


def ansible_adhoc(pattern, module, args=None, timeout=600, user="debian"):
    """`ansible PATTERN -m MODULE` against the lab inventory, as `user`.

    Fresh lab VMs have only the initial user debian (the deploy user comes
    with bootstrap).
    """
    cmd = [str(BIN / "ansible"), pattern, "-i", str(REPO / "inventories" / "lab"),
           "-e", "ansible_user=" + user, "-m", module]
    if args:
        cmd += ["-a", args]
    return subprocess.run(cmd, cwd=REPO, env=ansible_env(), capture_output=True, text=True, check=False,
                          timeout=timeout)


sys.path.insert(0, str(REPO / "tests" / "lab"))
import labtool as lab_tool  # noqa: E402  (tests/lab/labtool)
from labtool import commit_and_push  # noqa: E402,F401  pylint: disable=unused-import  # the tests import it from here

HTTP_PORTS = {"vm%d" % i: lab_tool.vm_spec(i)["http_port"] for i in range(1, len(VMS) + 1)}


def http_get(vm, app, path="/", timeout=5):
    """GET through the VM's nginx (published on 127.0.0.1) by the app's host name."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", HTTP_PORTS[vm], timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": "%s.lab.test" % app})
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    finally:
        conn.close()


def read_work_file(app, rel):
    return (lab_tool.work_tree(app) / rel).read_text()
