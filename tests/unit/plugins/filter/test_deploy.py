"""The deploy plan: the filters deploy.yml computes the fingerprint with."""

from __future__ import annotations

import os

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.appfleet.docker.plugins.filter import deploy
from ansible_collections.appfleet.docker.plugins.module_utils._app_model import app_model


APPS = [
    {"name": "web", "source": {"repo": "git@git:/srv/git/web.git", "version": "main", "key_file": "/k/deploy",
                               "known_hosts": "git ssh-ed25519 AAAA"},
     "proxy": {"server_name": "web.test", "tls": {"certificate": "/c/web.crt", "key": "/c/web.key"}}},
    {"name": "api", "source": {"repo": "https://git.example/api.git"}},
    {"name": "cache", "image": "redis:7"},
    {"name": "db", "image": "postgres@sha256:" + "a" * 64},
    {"name": "old", "source": {"repo": "git@git:/srv/git/old.git"}, "state": "absent"},
]


def effective(apps, versions=None, base_refresh=False):
    """The app model's effective apps, as the role passes them to deploy_plan."""
    model = app_model(apps, {"directories": {"src": "/srv/src", "key": "/etc/keys"}, "versions": versions or {},
                             "defaults": {"strategy": "start-first", "keep_images": 3,
                                          "base_refresh": base_refresh}})
    assert model["problems"] == []
    return model["apps"]


def test_plan_lists_sources_mutable_images_and_controller_files():
    plan = deploy.deploy_plan(effective(APPS, {"api": "v2.0"}))
    assert plan["sources"] == [
        {"app": "web", "checkout": "/srv/src/web", "repo": "git@git:/srv/git/web.git", "version": "main",
         "key_file": "/etc/keys/web", "known_hosts": "/etc/keys/web.known_hosts"},
        # The pin wins; without version the role deploys main.
        {"app": "api", "checkout": "/srv/src/api", "repo": "https://git.example/api.git", "version": "v2.0"},
    ]
    # By digest: nothing a registry can move. Absent apps: nothing to compare.
    assert plan["mutable_images"] == [{"app": "cache", "image": "redis:7"}]
    assert plan["files"] == ["/k/deploy", "/c/web.crt", "/c/web.key"]
    assert plan["refresh_bases"] == []


@pytest.mark.parametrize("default, web, expected", [
    (False, None, []),
    (True, None, ["web", "api"]),
    (False, True, ["web"]),
    (True, "no", ["api"]),
    (True, False, ["api"]),
])
def test_plan_lists_the_apps_that_refresh_their_bases(default, web, expected):
    """An app's build.base_refresh wins over the role's default; image apps have no base to refresh."""
    apps = [dict(app) for app in APPS]
    if web is not None:
        apps[0]["build"] = {"base_refresh": web}
    assert deploy.deploy_plan(effective(apps, base_refresh=default))["refresh_bases"] == expected


def test_plan_refuses_apps_that_are_not_a_list():
    with pytest.raises(deploy.AnsibleFilterError, match="effective apps of appfleet.docker.app_model"):
        deploy.deploy_plan({"name": "web"})


def test_fingerprint_depends_on_content_not_key_order():
    one = deploy.deploy_fingerprint({"vars": {"a": 1, "b": [1, 2]}, "files": ["x"]})
    assert one == deploy.deploy_fingerprint({"files": ["x"], "vars": {"b": [1, 2], "a": 1}})
    assert one != deploy.deploy_fingerprint({"vars": {"a": 1, "b": [2, 1]}, "files": ["x"]})
    assert one != deploy.deploy_fingerprint({"vars": {"a": 1, "b": [1, 2]}, "files": ["y"]})


def test_collection_digest_follows_every_file_of_the_collection(tmp_path):
    (tmp_path / "roles" / "proxy" / "templates").mkdir(parents=True)
    template = tmp_path / "roles" / "proxy" / "templates" / "site.conf.j2"
    template.write_text("server {}\n")
    (tmp_path / "plugins" / "__pycache__").mkdir(parents=True)
    (tmp_path / "galaxy.yml").write_text("version: 1.0.0\n")
    first = deploy.collection_digest(str(tmp_path))
    # Byte code is not the collection.
    (tmp_path / "plugins" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    assert deploy.collection_digest(str(tmp_path)) == first
    template.write_text("server { listen 81; }\n")
    second = deploy.collection_digest(str(tmp_path))
    assert second != first
    template.rename(tmp_path / "roles" / "proxy" / "templates" / "other.conf.j2")
    assert deploy.collection_digest(str(tmp_path)) not in (first, second)


def test_deploy_input_names_are_the_roles_options_less_the_listed_non_inputs():
    names = deploy.deploy_input_names(["apps", "proxy"])
    assert names == sorted(names)
    for expected in ("apps_definitions", "apps_versions", "apps_default_strategy", "apps_registry_logins",
                     "proxy_apps", "proxy_listen_port", "proxy_tls_dir"):
        assert expected in names
    assert not set(names) & deploy.NOT_INPUTS
    # Each listed non-input is an option of the apps role: the list names nothing stale.
    with open(os.path.join(deploy._ROOT, "roles", "apps", "meta", "argument_specs.yml")) as handle:
        apps_options = set(yaml.safe_load(handle)["argument_specs"]["main"]["options"])
    assert deploy.NOT_INPUTS <= apps_options
    every = set()
    for role in ("apps", "proxy"):
        every.update(deploy.deploy_input_names([role]))
    assert every == set(names)


def test_deploy_input_names_names_a_role_without_a_spec():
    with pytest.raises(AnsibleFilterError, match="role nosuch"):
        deploy.deploy_input_names(["nosuch"])
