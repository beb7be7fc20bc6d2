"""The lab's fleet description: what `labctl up --vms N --suites ...` asks for,
and the inventory the lab's hosts.py makes of it (no containers involved)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from .fresh import fresh_labtool

REPO = Path(__file__).resolve().parents[4]
HOSTS = REPO / "inventories" / "lab" / "hosts.py"


@pytest.fixture()
def labctl(tmp_path, monkeypatch):
    """The lab tool (tests/lab/labtool) with its state in a temporary directory."""
    monkeypatch.setenv("APPFLEET_LAB_DIR", str(tmp_path))
    with fresh_labtool() as module:
        yield module


def args(vms=None, suites=None):
    return argparse.Namespace(vms=vms, suites=suites)


def test_default_fleet_is_two_bookworm_vms(labctl):
    vms = labctl.fleet_spec(args())
    assert [(v["hostname"], v["suite"], v["ssh_port"], v["http_port"], v["https_port"]) for v in vms] == [
        ("vm1", "bookworm", 2201, 8001, 8441), ("vm2", "bookworm", 2202, 8002, 8442)]
    assert vms[0]["publish"] == ["127.0.0.1:8001:80", "127.0.0.1:8441:443"]


def test_suites_are_cycled_over_the_vms(labctl):
    vms = labctl.fleet_spec(args(vms=5, suites="bookworm,trixie"))
    assert [v["suite"] for v in vms] == ["bookworm", "trixie", "bookworm", "trixie", "bookworm"]
    assert vms[-1]["ssh_port"] == 2205


def test_up_without_options_keeps_the_last_fleet(labctl):
    vms = labctl.fleet_spec(args(vms=3, suites="trixie"))
    labctl.FLEET_FILE.write_text(json.dumps({"vms": vms}))
    again = labctl.fleet_spec(args())
    assert [(v["hostname"], v["suite"]) for v in again] == [("vm1", "trixie"), ("vm2", "trixie"), ("vm3", "trixie")]


@pytest.mark.parametrize("vms, suites", [(0, None), (17, None), (2, "bookworm,sid"), (2, ",")])
def test_bad_fleet_requests_are_refused(labctl, vms, suites, capsys):
    with pytest.raises(SystemExit):
        labctl.fleet_spec(args(vms=vms, suites=suites))
    assert "lab: error:" in capsys.readouterr().err


def run_inventory(state, *extra):
    proc = subprocess.run([sys.executable, str(HOSTS)] + list(extra), capture_output=True, text=True,
                          check=True, env={"APPFLEET_LAB_DIR": str(state), "PATH": "/usr/bin:/bin"})
    return json.loads(proc.stdout)


def test_inventory_without_a_lab_lists_vm1_and_vm2(tmp_path):
    inv = run_inventory(tmp_path, "--list")
    assert inv["fleet"]["hosts"] == ["vm1", "vm2"]
    assert inv["_meta"]["hostvars"]["vm2"] == {
        "ansible_port": 2202, "lab_http_port": 8002, "lab_https_port": 8442, "lab_suite": "bookworm"}


def test_inventory_follows_the_fleet_file(labctl, tmp_path):
    vms = labctl.fleet_spec(args(vms=4, suites="bookworm,trixie"))
    (tmp_path / "fleet.json").write_text(json.dumps({"vms": vms}))
    inv = run_inventory(tmp_path, "--list")
    assert inv["fleet"]["hosts"] == ["vm1", "vm2", "vm3", "vm4"]
    assert inv["_meta"]["hostvars"]["vm4"]["ansible_port"] == 2204
    assert inv["_meta"]["hostvars"]["vm4"]["lab_suite"] == "trixie"
    assert run_inventory(tmp_path, "--host", "vm3")["lab_http_port"] == 8003


def test_known_hosts_entries_are_replaced_per_host(labctl, tmp_path):
    path = tmp_path / "known_hosts"
    labctl.record_host_keys(["[127.0.0.1]:2201"], ["ssh-ed25519 AAAAold1"], path)
    labctl.record_host_keys(["[127.0.0.1]:2202"], ["ssh-ed25519 AAAAother"], path)
    labctl.record_host_keys(["[127.0.0.1]:2201"], ["ssh-ed25519 AAAAnew1", "ssh-rsa AAAAnew2"], path)
    assert path.read_text().splitlines() == [
        "[127.0.0.1]:2202 ssh-ed25519 AAAAother",
        "[127.0.0.1]:2201 ssh-ed25519 AAAAnew1", "[127.0.0.1]:2201 ssh-rsa AAAAnew2"]
    labctl.forget_host_keys(["[127.0.0.1]:2202"], path)
    assert "2202" not in path.read_text()
