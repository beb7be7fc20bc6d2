"""_engine_host: how dockerd takes a new daemon.json, the files the engine role owns, the docker group."""

from __future__ import annotations

import os

import pytest
from ansible.plugins.filter.core import to_nice_json

from ansible_collections.appfleet.docker.plugins.module_utils import _engine_host as host
from ansible_collections.appfleet.docker.plugins.module_utils._docker import AppfleetError
from ansible_collections.appfleet.docker.plugins.module_utils._engine_settings import PATHS

RELOADABLE = ["debug", "labels", "live-restore"]


@pytest.mark.parametrize("before, after, changed", [
    ({}, {}, []),
    ({"debug": True}, {"debug": True}, []),
    ({"debug": True}, {"debug": False}, ["debug"]),
    ({}, {"icc": False, "debug": True}, ["debug", "icc"]),
    ({"icc": False}, {}, ["icc"]),
    ({"log-opts": {"max-size": "10m"}}, {"log-opts": {"max-size": "1m"}}, ["log-opts"]),
])
def test_changed_options(before, after, changed):
    assert host.changed_options(before, after) == changed


@pytest.mark.parametrize("changed, installed, apply", [
    ([], True, "none"),
    (["labels"], True, "reload"),
    (["debug", "labels"], True, "reload"),
    (["icc", "labels"], True, "restart"),
    (["userland-proxy"], True, "restart"),
    # A fresh install starts dockerd with the file in place.
    (["icc"], False, "reload"),
])
def test_apply_of(changed, installed, apply):
    assert host.apply_of(changed, RELOADABLE, installed) == apply


@pytest.mark.parametrize("data", [
    {"log-opts": {"max-size": "10m", "max-file": "3"}, "live-restore": True, "labels": ["a=b", "c=\u00e9"]},
    {"daemon_keys": {"icc": "boolean"}, "allow_tcp": False, "host_flag_re": "(^|\\s)-H"},
])
def test_json_text_is_what_the_role_wrote_before(data):
    """Hosts converged by earlier versions (template with to_nice_json) keep their files byte for byte."""
    assert host.json_text(data) == to_nice_json(data, indent=2, sort_keys=True) + "\n"


@pytest.mark.parametrize("text, parsed", [(None, {}), ("", {}), ("{", {}), ("[1]", {}), ('{"a": 1}', {"a": 1})])
def test_parsed_json(text, parsed):
    assert host.parsed_json(text) == parsed


def test_file_plan(tmp_path):
    path = str(tmp_path / "sub" / "file.json")
    plan = host.FilePlan(path, "x\n")
    assert plan.changed and plan.before is None
    assert plan.diff() == {"before_header": path, "after_header": path, "before": "", "after": "x\n"}
    plan.write()
    assert open(path).read() == "x\n" and os.stat(path).st_mode & 0o777 == 0o644
    assert not host.FilePlan(path, "x\n").changed
    os.chmod(path, 0o600)
    assert host.FilePlan(path, "x\n").changed


def test_group_plan_with_the_real_user_database():
    # root's primary group is root: already a member.
    assert host.group_plan("root", ["root"], False) == (False, [])
    assert host.group_plan("afc-no-such-group", ["root"], False) == (True, ["root"])
    assert host.group_plan("root", ["afc-no-such-user"], True) == (False, [])
    with pytest.raises(AppfleetError, match=r'no such user\(s\) on this host: \["afc-no-such-user"\]'):
        host.group_plan("root", ["root", "afc-no-such-user"], False)


def test_dropin_runs_the_program_with_its_settings():
    text = host.dropin_text(PATHS["rules_program"], PATHS["rules_settings"])
    assert "[Service]\nExecStartPre=%s --settings %s\n" % (PATHS["rules_program"], PATHS["rules_settings"]) in text


def test_registry_cas(tmp_path):
    (tmp_path / "old.example").mkdir()
    files, remove = host.registry_cas(str(tmp_path), [
        {"registry": "reg.example:5000", "ca": "-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n\n"},
        {"registry": "old.example", "state": "absent"},
        {"registry": "gone.example", "state": "absent"},
    ])
    assert [(f.path, f.content) for f in files] == [
        (str(tmp_path / "reg.example:5000" / "ca.crt"), "-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n")]
    assert remove == [str(tmp_path / "old.example")]
    host.remove_all(remove)
    assert not (tmp_path / "old.example").exists()


def test_paths_have_one_owner():
    """The programs' paths are data of _engine_settings; deploy_state checks the same program."""
    from ansible_collections.appfleet.docker.plugins.filter.engine import engine_path
    from ansible_collections.appfleet.docker.plugins.module_utils import _deploy_state

    assert engine_path("rules_program") == PATHS["rules_program"]
    assert _deploy_state.firewall_state.__defaults__ == (PATHS["rules_program"],)
