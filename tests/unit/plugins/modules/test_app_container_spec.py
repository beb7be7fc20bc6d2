"""docs/security.md, CIS §5: "no option for it". app_container has no option that would give a
container the host's namespaces, devices, privileges or ulimits, and Ansible refuses an unknown
option, so a fleet cannot ask for one. What a container gets instead is observed on a real one in
tests/integration/test_cis_runtime.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ansible_collections.appfleet.docker.plugins.modules.app_container import ARGUMENT_SPEC

# CIS row -> option names Docker's own tools use for the control (docker run, community.docker).
ABSENT = {
    "5.5 privileged": ["privileged"],
    "5.10 host network": ["network_mode", "network", "net"],
    "5.16 host PID": ["pid_mode", "pid"],
    "5.17 host IPC": ["ipc_mode", "ipc"],
    "5.18 host devices": ["devices", "device", "device_cgroup_rules"],
    "5.19 ulimits": ["ulimits", "ulimit"],
    "5.21 host UTS": ["uts", "uts_mode"],
    "5.25 cgroup parent": ["cgroup_parent", "cgroupns_mode"],
    "5.31 host user namespace": ["userns_mode", "userns"],
}


@pytest.mark.parametrize("row", sorted(ABSENT))
def test_no_option_for_the_control(row):
    assert [name for name in ABSENT[row] if name in ARGUMENT_SPEC] == []


def test_hardening_defaults_are_the_documented_ones():
    """5.15, 5.26, 5.29: the module's defaults (the role passes its own, equal, apps_default_*)."""
    assert ARGUMENT_SPEC["security_opts"]["default"] == ["no-new-privileges:true"]
    assert ARGUMENT_SPEC["pids_limit"]["default"] == 1024
    assert ARGUMENT_SPEC["restart_policy"]["default"] == "unless-stopped"


ROOT = Path(__file__).resolve().parents[4]
# Ways to run a command in a container: the Docker SDK, the CLI, community.docker's module.
EXEC = re.compile(r"exec_create|exec_run|exec_start|docker\s+exec\b|docker_container_exec|/exec\b")


# Ways to turn swarm mode on: the SDK, the CLI, community.docker's module.
SWARM = re.compile(r"swarm\.init|swarm\.join|init_swarm|join_swarm|docker\s+swarm\s+(init|join)|docker_swarm\b")


def _code_matching(pattern):
    """`file: match` for each match of ``pattern`` in the collection's code (plugins/, roles/)."""
    found = []
    for top in ("plugins", "roles"):
        for path in sorted((ROOT / top).rglob("*")):
            if path.is_file() and path.suffix in (".py", ".yml", ".yaml", ".j2", ".sh"):
                text = path.read_text(encoding="utf-8", errors="replace")
                found += ["%s: %s" % (path.relative_to(ROOT), m.group(0)) for m in pattern.finditer(text)]
    return found


@pytest.mark.parametrize("pattern, sample", [(EXEC, "client.api.exec_create(cid, cmd)"),
                                             (SWARM, "docker swarm init --advertise-addr 10.0.0.1")])
def test_the_scans_find_what_they_look_for(pattern, sample):
    assert pattern.search(sample)


def test_the_collection_never_execs_into_a_container():
    """5.23, 5.24: nothing in plugins/ or roles/ runs a command in a container."""
    assert _code_matching(EXEC) == []


def test_the_collection_never_enables_swarm():
    """5.1: nothing in plugins/ or roles/ initialises or joins a swarm."""
    assert _code_matching(SWARM) == []
