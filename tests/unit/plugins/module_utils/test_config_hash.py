"""The config hash: schema v2 (non-default settings only) and the upgrade from v1 labels."""

from __future__ import annotations

import pytest

from ansible_collections.appfleet.docker.plugins.module_utils import _config_hash, _container_spec

# The params app_container passes for this task (every option, module defaults applied):
#   name: web, image: web:1, port: 8080, env: {LOG_LEVEL: info}, secret_env: {API_TOKEN: ...},
#   log_options: {max-size: 10m, max-file: "3"}, health: {path: /health}
MODULE_PARAMS = dict(
    name="web", image="web:1", state="present", rollback=False, container_name=None, command=None,
    env={"LOG_LEVEL": "info"}, secret_env={"API_TOKEN": "x"}, secret_delivery="file",
    secret_dir="/etc/appfleet/secrets", secret_uid=None, secret_env_file=None, user=None, read_only=False,
    tmpfs=None, cap_drop=None, cap_add=None, pids_limit=1024, security_opts=["no-new-privileges:true"],
    port=8080, published_ports=None, volumes=None, networks=None, restart_policy="unless-stopped",
    labels=None, healthcheck=None, health={"path": "/health", "timeout": 60.0, "interval": 1.0, "settle": 2.0},
    log_driver=None, log_options={"max-size": "10m", "max-file": "3"}, memory=None, cpus=None,
    stop_timeout=10, strategy="start-first", drain_seconds=5,
    proxy={"enabled": True, "upstream_file": None, "test_command": ["nginx", "-t"],
           "reload_command": ["nginx", "-s", "reload"]},
    lock_dir="/run/appfleet/locks", lock_timeout=300)

# The io.appfleet.config-hash label the release before schema v2 (commit 1335f36) put on the
# container of MODULE_PARAMS. Made with that commit's code:
#   _rollout.config_hash(_rollout.desired_config(MODULE_PARAMS))
# run from tests/unit on a checkout of 1335f36. Never regenerate it with the current code.
V1_LABEL = "48f71f48e9d8ffa6333aa4501e6c32113c00b236104c10376f37dfad4a1274db"


def cfg(**over):
    params = dict(MODULE_PARAMS)
    params.update(over)
    return _container_spec.desired_config(params)


def test_v1_label_of_the_previous_release_still_matches():
    assert _config_hash.config_hash_v1(cfg()) == V1_LABEL
    assert _config_hash.hash_matches(V1_LABEL, cfg())
    # A real change is still one.
    assert not _config_hash.hash_matches(V1_LABEL, cfg(env={"LOG_LEVEL": "debug"}))
    # An option added since (cpu_shares), unset, keeps the match; set, it is a change.
    assert "cpu_shares" in cfg() and _config_hash.hash_matches(V1_LABEL, cfg(cpu_shares=None))
    assert not _config_hash.hash_matches(V1_LABEL, cfg(cpu_shares=1024))


def test_v2_label_format_and_match():
    label = _config_hash.config_hash(cfg())
    assert label.startswith("v2:") and len(label) == 3 + 64
    assert _config_hash.hash_matches(label, cfg())
    assert not _config_hash.hash_matches(label, cfg(memory="256m"))


@pytest.mark.parametrize("label", [None, "", "v9:abc", "not-a-hash"])
def test_unknown_labels_do_not_match(label):
    assert not _config_hash.hash_matches(label, cfg())


def test_v2_leaves_out_defaults_and_none():
    base = cfg()
    # An option a later release adds, left unset or at the default, changes nothing.
    assert _config_hash.config_hash(dict(base, some_new_option=None)) == _config_hash.config_hash(base)
    assert _config_hash.config_hash(dict(base, read_only=False)) == _config_hash.config_hash(base)
    # The same container asked for with and without the module's defaults spelled out.
    bare = _container_spec.desired_config({"name": "web", "port": 8080, "env": {"LOG_LEVEL": "info"},
                                           "secret_env": {"API_TOKEN": "x"},
                                           "log_options": {"max-size": "10m", "max-file": "3"},
                                           "pids_limit": 1024, "stop_timeout": 10,
                                           "security_opts": ["no-new-privileges:true"]})
    assert _config_hash.config_hash(bare) == _config_hash.config_hash(base)


@pytest.mark.parametrize("over", [
    {"pids_limit": None},  # no limit is not the default limit
    {"pids_limit": 2048},
    {"security_opts": []},
    {"stop_timeout": 30},
    {"restart_policy": "always"},
    {"read_only": True},
    {"port": 9090},
])
def test_v2_settings_that_change_the_container_change_the_hash(over):
    assert _config_hash.config_hash(cfg(**over)) != _config_hash.config_hash(cfg())
