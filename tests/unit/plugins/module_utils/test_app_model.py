"""The app model: each bad app definition gives its own exact problem line; good ones their effective facts."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.appfleet.docker.plugins.filter import apps as apps_filter
from ansible_collections.appfleet.docker.plugins.module_utils._app_model import app_model

DIGEST = "sha256:" + "a" * 64
SETTINGS = {
    "only": [],
    "versions": {},
    "base_dir": "/inv",
    "directories": {"src": "/srv/appfleet/src", "key": "/etc/appfleet/keys",
                    "upstream": "/etc/nginx/appfleet/upstreams", "secret": "/etc/appfleet/secrets"},
    "defaults": {"strategy": "start-first", "keep_images": 3, "health_timeout": 60, "drain_seconds": 5,
                 "restart_policy": "unless-stopped", "secret_delivery": "file", "read_only": False, "tmpfs": [],
                 "cap_drop": [], "pids_limit": 1024, "security_opts": ["no-new-privileges:true"],
                 "memory": "1g", "cpu_shares": 1024, "base_refresh": False},
    "image_prefix": "appfleet/",
    "registry_logins": [{"registry": "reg.example.com:5000", "username": "u", "password": "pw-secret-1"},
                        {"registry": "docker.io", "username": "d", "password": "pw-secret-2"}],
    "build_registry": "",
}
WEB = {"name": "web", "source": {"repo": "git@git.example.com:team/web.git"}, "port": 8080,
       "health": {"path": "/health"}}
W0 = "appfleet_apps[0] (web): "


def web(**changes):
    entry = copy.deepcopy(WEB)
    entry.update(changes)
    return {k: v for k, v in entry.items() if v is not None}


def settings(**changes):
    result = copy.deepcopy(SETTINGS)
    result.update(changes)
    return result


# case: (apps, settings changes, the exact problem lines)
BAD = {
    "not a list": ("web", {}, ["appfleet_apps: must be a list of apps (each a mapping with name and source or "
                               "image), not a string: see roles/apps/README.md#the-app-definition"]),
    "entry not a mapping": (["web"], {}, [
        'appfleet_apps[0]: must be a mapping with name and source or image, not a string "web"']),
    "no name": ([web(name=None)], {}, [
        "appfleet_apps[0]: name: required: give the app a name (lowercase letters, digits, _ and -, starting with a "
        "letter or digit, at most 63 characters)"]),
    "bad name": ([web(name="Web")], {}, [
        'appfleet_apps[0] ("Web"): name: "Web" is not an app name: use lowercase letters, digits, _ and -, starting '
        'with a letter or digit, at most 63 characters']),
    "name with metacharacters": ([web(name="web;reboot")], {}, [
        'appfleet_apps[0] ("web;reboot"): name: "web;reboot" is not an app name: use lowercase letters, digits, _ '
        'and -, starting with a letter or digit, at most 63 characters']),
    "name not a string": ([web(name=["web"])], {}, ['appfleet_apps[0] (["web"]): name: must be a string, not a '
                                                    'list ["web"]']),
    "duplicate names": ([web(), web(port=81)], {}, ["appfleet_apps[1] (web): name: web is also the name of "
                                                    "appfleet_apps[0]: give each app its own name"]),
    "neither source nor image": ([web(source=None)], {}, [
        W0 + "needs source or image: give source.repo (a git repository to build) or image (a registry image "
        "to run, with a tag or digest)"]),
    "source and image": ([web(image="web:1")], {}, [W0 + "source and image: give one of them, not both"]),
    "unknown option with a close name": ([web(health={"path": "/health", "timout": 5})], {},
                                         [W0 + "health.timout: unknown option; did you mean timeout?"]),
    "unknown top option": ([web(enviroment={"A": "1"})], {}, [W0 + "enviroment: unknown option; did you mean env?"]),
    "unknown option, no close name": ([web(replicas=2)], {}, [
        W0 + "replicas: unknown option; the options are build, cap_add, cap_drop, command, cpu_shares, cpus, "
        "drain_seconds, env, "
        "health, image, keep_images, labels, memory, name, networks, pids_limit, port, proxy, published_ports, "
        "read_only, restart_policy, secret_delivery, secret_env, secret_uid, security_opts, source, state, "
        "strategy, tmpfs, user, volumes"]),
    "unknown tls option": ([web(proxy={"server_name": "w.example.com", "tls": {"cert": "a", "key": "b"}})], {}, [
        W0 + "proxy.tls.cert: unknown option; did you mean certificate?",
        W0 + "proxy.tls.certificate: required: give the certificate file on the controller beside proxy.tls.key"]),
    "unknown state": ([web(state="gone")], {}, [W0 + 'state: "gone" is not one of present, absent']),
    "unknown strategy": ([web(strategy="yolo")], {}, [W0 + 'strategy: "yolo" is not one of start-first, stop-first']),
    "string where a list is expected": ([web(command="serve --port 80")], {}, [
        W0 + 'command: must be a list, not a string: write it as ["serve --port 80"]']),
    "list of a mapping": ([web(volumes=[{"a": 1}])], {}, [W0 + "volumes: must be a list of strings; item 0 is a "
                                                          "mapping"]),
    "health timeout not a number": ([web(health={"path": "/h", "timeout": "soon"})], {}, [
        W0 + 'health.timeout: must be a whole number, not a string "soon"']),
    "submodules not a bool": ([web(source={"repo": "git@h:x.git", "submodules": "maybe"})], {}, [
        W0 + 'source.submodules: must be true or false, not "maybe"']),
    "source not a mapping": ([web(source="git@h:x.git")], {}, [
        W0 + 'source: must be a mapping of settings, not a string "git@h:x.git"']),
    "source without repo": ([web(source={"version": "main"})], {}, [
        W0 + "source.repo: required: give the repository URL, for example git@git.example.com:team/web.git"]),
    "repo with a command": ([web(source={"repo": "git@h:x.git; rm -rf /"})], {}, [
        W0 + 'source.repo: "git@h:x.git; rm -rf /" holds characters a repository URL does not (spaces, quotes, ; $ '
        'and the like): give the URL, for example git@git.example.com:team/web.git']),
    "repo that is a git option": ([web(source={"repo": "--upload-pack"})], {}, [
        W0 + "source.repo: \"--upload-pack\" starts with '-', which git would read as an option: give a repository "
        "URL"]),
    "version with a command": ([web(source={"repo": "git@h:x.git", "version": "main$(id)"})], {}, [
        W0 + 'source.version: "main$(id)" must be a branch, tag or commit (letters, digits, . _ / + -)']),
    "version that is a git option": ([web(source={"repo": "git@h:x.git", "version": "--orphan"})], {}, [
        W0 + "source.version: \"--orphan\" starts with '-', which git would read as an option: give a branch, tag "
        "or commit"]),
    "port out of range": ([web(port=70000)], {}, [
        W0 + "port: 70000 is not a port: give the port 1-65535 the app listens on inside its container"]),
    "health path without port": ([web(port=None)], {}, [
        W0 + "health.path needs port: set port to the port the app listens on inside its container"]),
    "keep_images zero": ([web(keep_images=0)], {}, [W0 + "keep_images: 0 keeps no image to roll back to: give 1 "
                                                         "or more"]),
    "absolute build context": ([web(build={"context": "/etc"})], {}, [
        W0 + 'build.context: "/etc" must be a path relative to the checkout, without \'..\' and made of letters, '
        'digits and . _ - + @ /: for example services/web']),
    "dockerfile with ..": ([web(build={"context": "web", "dockerfile": "../Dockerfile"})], {}, [
        W0 + 'build.dockerfile: "../Dockerfile" must be a path relative to the build.context, without \'..\' and '
        'made of letters, digits and . _ - + @ /: for example docker/Dockerfile']),
    "image without a tag": ([web(source=None, image="registry.example.com/team/web")], {}, [
        W0 + 'image: "registry.example.com/team/web" names no tag or digest: write the version you mean, for example '
        'registry.example.com/team/web:1.4 or registry.example.com/team/web@sha256:<digest> (a bare name would run '
        'whatever latest is that day)']),
    "image with a tag and a digest": ([web(source=None, image="web:1@" + DIGEST)], {}, [
        W0 + 'image: "web:1@%s" names both a tag and a digest, which image_pull refuses: write web@%s'
        % (DIGEST, DIGEST)]),
    "image in uppercase": ([web(source=None, image="Web:1")], {}, [
        W0 + 'image: "Web:1" must be an image reference in lowercase, for example registry.example.com/team/web:1.4']),
    "secret key not a variable name": ([web(secret_env={"DB-PASS": "pw-secret-3"})], {}, [
        W0 + 'secret_env: key "DB-PASS" is not a variable name: use letters, digits and _']),
    "secret_env not a mapping": ([web(secret_env="pw-secret-4")], {}, [
        W0 + "secret_env: must be a mapping of settings, not a string"]),
    "memory not a size": ([web(memory="1 GB")], {}, [
        W0 + 'memory: "1 GB" is not a size: write a whole number with b, k, m or g, for example 512m or 1g (null for '
        'no limit)']),
    "memory in another unit": ([web(memory="1gb")], {}, [
        W0 + 'memory: "1gb" is not a size: write a whole number with b, k, m or g, for example 512m or 1g (null for '
        'no limit)']),
    "memory below what docker allows": ([web(memory="4m")], {}, [
        W0 + 'memory: "4m" is below the 6m Docker allows: give 6m or more (null for no limit)']),
    "cpu shares zero": ([web(cpu_shares=0)], {}, [
        W0 + "cpu_shares: 0 is not a CPU weight: give a whole number 2-262144 (1024 is the kernel's default weight), "
        "or null for none"]),
    "cpu shares not a number": ([web(cpu_shares="high")], {}, [
        W0 + 'cpu_shares: must be a whole number, not a string "high"']),
    "default memory not a size": ([web()], {"defaults": dict(SETTINGS["defaults"], memory="lots")}, [
        'apps_default_memory: "lots" is not a size: write a whole number with b, k, m or g, for example 512m or 1g '
        '(null for no limit)']),
    "default cpu shares too high": ([web()], {"defaults": dict(SETTINGS["defaults"], cpu_shares=300000)}, [
        "apps_default_cpu_shares: 300000 is not a CPU weight: give a whole number 2-262144 (1024 is the kernel's "
        "default weight), or null for none"]),
    "unknown app selected": ([web()], {"only": "web,wbe"}, [
        'apps_only: unknown app "wbe" (from -e apps= or apps_only): name one of web']),
    "selection not a list": ([web()], {"only": {"web": 1}}, [
        "apps_only: must be a list of app names or a comma-separated string, not a mapping"]),
    "pin for an unknown app": ([web()], {"versions": {"wbe": "v1"}}, ['appfleet_versions: unknown app "wbe": pin '
                                                                      'one of web']),
    "pin for an image app": ([web(), {"name": "cache", "image": "redis:7"}], {"versions": {"cache": "v2"}}, [
        "appfleet_versions: cache runs an image, not a git source: change its image instead of pinning it"]),
    "pins not a mapping": ([web()], {"versions": ["web=abc"]}, [
        "appfleet_versions: must be a mapping {app name: branch, tag or commit}, not a list"]),
    "pin that is a git option": ([web()], {"versions": {"web": "--orphan"}}, [
        "appfleet_versions: the pin of web, \"--orphan\", must be a branch, tag or commit (letters, digits, . _ / + "
        "-, not starting with '-')"]),
    "relative source dir": ([web()], {"directories": dict(SETTINGS["directories"], src="srv/src")}, [
        "apps_src_dir: \"srv/src\" must be an absolute path whose components are letters, digits, _ . - (none "
        "starting with '.', so no '..'): for example /srv/appfleet/src"]),
    "build registry without a host": ([web()], {"build_registry": "team/web"}, [
        'apps_build_registry: "team/web" must be a registry host (with a dot or a port, or localhost) and a '
        'repository path, without scheme, tag or digest: for example registry.example.com:5000/team']),
    "registry login for a URL": ([web()], {"registry_logins": [{"registry": "https://reg.example.com/v2",
                                                                "username": "u", "password": "pw-secret-5"}]}, [
        'apps_registry_logins[0]: registry: "https://reg.example.com/v2" must be the host or host:port as image '
        'references name it, without scheme or path: for example registry.example.com:5000, or docker.io']),
    "registry login without password": ([web()], {"registry_logins": [{"registry": "reg.example.com",
                                                                       "username": "u", "password": ""}]}, [
        "apps_registry_logins[0] (reg.example.com): password: required, a non-empty string (keep it in a vault)"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_gives_its_exact_problem(case):
    apps, changes, expected = BAD[case]
    model = app_model(apps, settings(**changes))
    assert model["problems"] == expected
    assert not any("pw-secret" in line for line in model["problems"])


def test_at_least_thirty_bad_inputs():
    assert len(BAD) >= 30


def test_every_problem_of_one_app_is_reported_once_each():
    model = app_model([web(port=0, strategy="yolo", keep_images=0)], SETTINGS)
    assert model["problems"] == [
        W0 + 'strategy: "yolo" is not one of start-first, stop-first',
        W0 + "port: 0 is not a port: give the port 1-65535 the app listens on inside its container",
        W0 + "keep_images: 0 keeps no image to roll back to: give 1 or more",
    ]
    assert model["apps"] == []


def test_source_app_effective_facts():
    app = web(source={"repo": "git@h:web.git", "version": "v1", "key_file": "keys/web",
                      "known_hosts": "h ssh-ed25519 AAAA"},
              proxy={"server_name": "web.example.com", "tls": {"certificate": "/pki/web.crt", "key": "tls/web.key"}})
    model = app_model([app], SETTINGS)
    assert model["problems"] == []
    facts = model["apps"][0]
    assert facts["kind"] == "source"
    assert facts["version"] == "v1"
    assert facts["src"] == "/srv/appfleet/src/web"
    assert facts["key"] == "/etc/appfleet/keys/web"
    assert facts["known_hosts"] == "/etc/appfleet/keys/web.known_hosts"
    assert facts["image_name"] == "appfleet/web"
    assert facts["source"]["key_file"] == "/inv/keys/web"
    assert facts["proxy"]["tls"] == {"certificate": "/pki/web.crt", "key": "/inv/tls/web.key"}
    assert facts["build"] == {"context": ".", "dockerfile": "Dockerfile", "args": {}, "base_refresh": False}
    assert facts["health"] == {"path": "/health", "timeout": 60}
    assert (facts["strategy"], facts["keep_images"], facts["drain_seconds"]) == ("start-first", 3, 5)
    assert facts["restart_policy"] == "unless-stopped" and facts["secret_delivery"] == "file"
    assert [(f["option"], f["path"], f["relative"]) for f in facts["controller_files"]] == [
        ("source.key_file", "/inv/keys/web", True), ("proxy.tls.certificate", "/pki/web.crt", False),
        ("proxy.tls.key", "/inv/tls/web.key", True)]
    assert model["selected"] == ["web"] and model["absent"] == []


@pytest.mark.parametrize("source, expected", [
    ({}, []),
    ({"key_file": "keys/web"}, [{"dest": "/etc/appfleet/keys/web", "src": "/inv/keys/web", "mode": "0600"}]),
    # One line or several: trimmed, one a line, a newline at the end.
    ({"known_hosts": " h ssh-ed25519 AAAA "}, [{"dest": "/etc/appfleet/keys/web.known_hosts",
                                                "content": "h ssh-ed25519 AAAA\n", "mode": "0644"}]),
    ({"known_hosts": ["h ssh-ed25519 AAAA", "h ssh-rsa BBBB\n"], "key_file": "/abs/key"}, [
        {"dest": "/etc/appfleet/keys/web", "src": "/abs/key", "mode": "0600"},
        {"dest": "/etc/appfleet/keys/web.known_hosts", "content": "h ssh-ed25519 AAAA\nh ssh-rsa BBBB\n",
         "mode": "0644"}]),
])
def test_source_files_the_key_from_the_controller_the_host_keys_inline(source, expected):
    model = app_model([web(source=dict(source, repo="git@h:web.git"))], SETTINGS)
    assert model["problems"] == []
    assert model["apps"][0]["source_files"] == expected


def test_image_app_has_no_source_files():
    model = app_model([{"name": "api", "image": "nginx:1.27"}], SETTINGS)
    assert model["apps"][0]["source_files"] == []


@pytest.mark.parametrize("written, pins, expected", [
    (None, {}, "main"),
    ("v1", {}, "v1"),
    ("v1", {"web": "3f2c1e9"}, "3f2c1e9"),
    (None, {"web": "release"}, "release"),
])
def test_version_precedence(written, pins, expected):
    source = {"repo": "git@h:web.git"}
    if written:
        source["version"] = written
    model = app_model([web(source=source)], settings(versions=pins))
    assert model["problems"] == []
    assert model["apps"][0]["version"] == expected


@pytest.mark.parametrize("image, registry, login", [
    ("redis:7", "docker.io", 1),
    ("library/redis@" + DIGEST, "docker.io", 1),
    ("reg.example.com:5000/team/web:1.4", "reg.example.com:5000", 0),
    ("localhost/web:1", "localhost", None),
    ("other.example.com/web:2", "other.example.com", None),
])
def test_image_registry_host_and_login_index(image, registry, login):
    model = app_model([{"name": "web", "image": image}], SETTINGS)
    assert model["problems"] == []
    facts = model["apps"][0]
    assert (facts["kind"], facts["registry"], facts["login"]) == ("image", registry, login)
    assert "pw-secret" not in str(facts)


def test_app_settings_win_over_defaults_and_strings_convert():
    model = app_model([web(port="8081", strategy="stop-first", keep_images=5, read_only="yes",
                           tmpfs=["/tmp"], cpus="0.5", build={"base_refresh": True})], SETTINGS)
    assert model["problems"] == []
    facts = model["apps"][0]
    assert (facts["port"], facts["strategy"], facts["keep_images"]) == (8081, "stop-first", 5)
    assert (facts["read_only"], facts["tmpfs"], facts["cpus"]) == (True, ["/tmp"], 0.5)
    assert facts["build"]["base_refresh"] is True


def test_resource_limits_default_override_and_opt_out():
    """Every app takes the memory and CPU defaults (which satisfy CIS 5.11 and 5.12); one sets its own; an explicit
    null turns a limit off; with no defaults in the settings an app has none."""
    apps = [web(), web(name="api", memory="512M", cpu_shares="512"), dict(web(name="big"), memory=None, cpu_shares=None)]
    model = app_model(apps, SETTINGS)
    assert model["problems"] == []
    limits = [(a["name"], a["memory"], a["cpu_shares"]) for a in model["apps"]]
    assert limits == [("web", "1g", 1024), ("api", "512M", 512), ("big", None, None)]
    bare = app_model([web()], settings(defaults=dict(SETTINGS["defaults"], memory=None, cpu_shares=None)))
    assert (bare["apps"][0]["memory"], bare["apps"][0]["cpu_shares"]) == (None, None)


def test_resource_defaults_convert_as_the_role_passes_them():
    """A role variable may arrive as a string or a number: both are taken."""
    model = app_model([web()], settings(defaults=dict(SETTINGS["defaults"], memory=1073741824, cpu_shares="2048")))
    assert model["problems"] == []
    assert (model["apps"][0]["memory"], model["apps"][0]["cpu_shares"]) == ("1073741824", 2048)


def test_absent_app_needs_only_a_name():
    model = app_model([web(), {"name": "old", "state": "absent"}], SETTINGS)
    assert model["problems"] == []
    assert model["absent"] == ["old"]
    assert model["selected"] == ["web", "old"]


@pytest.mark.parametrize("only, expected", [
    ([], ["web", "api", "cache"]),
    ("api, cache", ["api", "cache"]),
    (["web"], ["web"]),
    # The role reads no tags: deploy.yml turns app tags into apps_only.
    (["cache", "web"], ["web", "cache"]),
])
def test_selection(only, expected):
    apps = [web(), web(name="api"), {"name": "cache", "image": "redis:7"}]
    model = app_model(apps, settings(only=only))
    assert model["problems"] == []
    assert model["selected"] == expected


def test_filter_reports_a_missing_controller_file(tmp_path):
    key = tmp_path / "web.key"
    key.write_text("key\n")
    good = apps_filter.app_model([web(source={"repo": "git@h:x.git", "key_file": "web.key"})],
                                 settings(base_dir=str(tmp_path)))
    assert good["problems"] == []
    assert good["apps"][0]["source"]["key_file"] == str(key)
    bad = apps_filter.app_model([web(source={"repo": "git@h:x.git", "key_file": "x"})], settings(base_dir="/inv"))
    assert bad["problems"] == [W0 + "source.key_file: no such file on the controller: /inv/x (a relative path is "
                                    "read from the inventory directory /inv)"]
    absent = apps_filter.app_model([{"name": "web", "state": "absent", "source": {"repo": "r", "key_file": "x"}}],
                                   SETTINGS)
    assert absent["problems"] == []
