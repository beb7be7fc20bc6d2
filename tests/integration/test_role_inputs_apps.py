"""Bad input to the proxy and apps roles fails first, naming the app and the setting.

Same harness as test_role_inputs.py: the role runs against this machine in check
mode, and the run must fail in an input check with nothing changed before it;
the cases of a role run as the hosts of one ansible-playbook run (role_batch.py).
"""

from __future__ import annotations

import json
import re
import sys

import pytest

from conftest import run_playbook
from role_batch import BatchGroup, assert_refused

# One ansible-playbook run per role, one host per case (see role_batch.py).
BATCHES = BatchGroup()
APPS = BATCHES.role("apps")
PROXY = BATCHES.role("proxy")

GOOD_APP = {
    "name": "web",
    "source": {"repo": "git@git.example.com:team/web.git", "version": "main"},
    "port": 8080,
    "proxy": {"server_name": "web.example.com"},
    "health": {"path": "/health"},
}


def app(**changes):
    entry = dict(GOOD_APP)
    entry.update(changes)
    return {k: v for k, v in entry.items() if v is not None}


W0 = "appfleet_apps[0] (web): "
DIGEST = "sha256:" + "a" * 64

# Each case: the apps, and what the one problem line of the app model says.
APPS_CASES = {
    "apps not a list": ("web", ["appfleet_apps: must be a list of apps (each a mapping with name and source or image)"]),
    "app not a mapping": (["web"], ['appfleet_apps[0]: must be a mapping with name and source or image, not a string']),
    "name with metacharacters": ([app(name="web;reboot")],
                                 ['appfleet_apps[0] ("web;reboot"): name: "web;reboot" is not an app name']),
    "uppercase name": ([app(name="Web")], ['appfleet_apps[0] ("Web"): name: "Web" is not an app name']),
    "name with a dot": ([app(name="web.v2")], ['appfleet_apps[0] ("web.v2"): name: "web.v2" is not an app name',
                                               "lowercase letters, digits, _ and -"]),
    "source and image": ([app(image="registry.example.com/web:1")], [W0 + "source and image: give one of them, not both"]),
    "neither source nor image": ([app(source=None)], [W0 + "needs source or image: give source.repo (a git repository "
                                                           "to build) or image"]),
    "repo with a command": ([app(source={"repo": "git@h:x.git; rm -rf /"})],
                            [W0 + 'source.repo: "git@h:x.git; rm -rf /" holds characters a repository URL does not']),
    "version with a command": ([app(source={"repo": "git@h:x.git", "version": "main$(id)"})],
                               [W0 + 'source.version: "main$(id)" must be a branch, tag or commit']),
    "port out of range": ([app(port=70000)], [W0 + "port: 70000 is not a port: give the port 1-65535"]),
    "health path without port": ([app(port=None)],
                                 [W0 + "health.path needs port: set port to the port the app listens on inside "
                                       "its container"]),
    "unknown strategy": ([app(strategy="yolo")], [W0 + 'strategy: "yolo" is not one of start-first, stop-first']),
    "unknown key": ([app(enviroment={"A": "1"})], [W0 + "enviroment: unknown option; did you mean env?"]),
    "duplicate names": ([app(), app()], ["appfleet_apps[1] (web): name: web is also the name of appfleet_apps[0]: "
                                         "give each app its own name"]),
    "unknown state": ([app(state="gone")], [W0 + 'state: "gone" is not one of present, absent']),
    "absent app and present app with one name": ([app(), {"name": "web", "state": "absent"}],
                                                 ["appfleet_apps[1] (web): name: web is also the name of "
                                                  "appfleet_apps[0]"]),
    "health option typo": ([app(health={"path": "/health", "timout": 5})],
                           [W0 + "health.timout: unknown option; did you mean timeout?"]),
    "health timeout not a number": ([app(health={"path": "/health", "timeout": "soon"})],
                                    [W0 + 'health.timeout: must be a whole number, not a string "soon"']),
    "proxy option typo": ([app(proxy={"server_nam": "web.example.com"})],
                          [W0 + "proxy.server_nam: unknown option; did you mean server_name?"]),
    "proxy tls option typo": ([app(proxy={"server_name": "w.example.com", "tls": {"cert": "a", "key": "b"}})],
                              [W0 + "proxy.tls.cert: unknown option; did you mean certificate?"]),
    "proxy hsts not a boolean": ([app(proxy={"server_name": "w.example.com", "hsts": "sometimes"})],
                                 [W0 + 'proxy.hsts: must be true or false, not "sometimes"']),
    "repo that is a git option": ([app(source={"repo": "--upload-pack"})],
                                  [W0 + "source.repo: \"--upload-pack\" starts with '-', which git would read as an "
                                        "option"]),
    "version that is a git option": ([app(source={"repo": "git@h:x.git", "version": "--orphan"})],
                                     [W0 + "source.version: \"--orphan\" starts with '-'"]),
    "submodules not a bool": ([app(source={"repo": "git@h:x.git", "submodules": "maybe"})],
                              [W0 + 'source.submodules: must be true or false, not "maybe"']),
    "absolute build context": ([app(build={"context": "/etc"})],
                               [W0 + 'build.context: "/etc" must be a path relative to the checkout']),
    "build context with ..": ([app(build={"context": "web/../../api"})],
                              [W0 + 'build.context: "web/../../api" must be a path relative to the checkout']),
    "build context with a newline": ([app(build={"context": "web\n"})],
                                     [W0 + 'build.context: "web\\n" must be a path relative to the checkout']),
    "absolute dockerfile": ([app(build={"dockerfile": "/etc/shadow"})],
                            [W0 + 'build.dockerfile: "/etc/shadow" must be a path relative to the build.context']),
    "dockerfile with ..": ([app(build={"context": "web", "dockerfile": "../Dockerfile"})],
                           [W0 + 'build.dockerfile: "../Dockerfile" must be a path relative to the build.context']),
    "image without a tag": ([app(source=None, build=None, image="registry.example.com/team/web")],
                            [W0 + 'image: "registry.example.com/team/web" names no tag or digest',
                             "registry.example.com/team/web:1.4"]),
    "image on a registry port without a tag": ([app(source=None, build=None, image="registry:5000/web")],
                                               [W0 + 'image: "registry:5000/web" names no tag or digest']),
    "image with a tag and a digest": ([app(source=None, image="web:1@" + DIGEST)],
                                      [W0 + 'image: "web:1@%s" names both a tag and a digest, which image_pull '
                                            'refuses: write web@%s' % (DIGEST, DIGEST)]),
    "string where a list is expected": ([app(command="serve --port 8080")],
                                        [W0 + 'command: must be a list, not a string: write it as '
                                              '["serve --port 8080"]']),
    "relative key_file that does not exist": (
        [app(source={"repo": "git@h:x.git", "key_file": "keys/web"})],
        [W0 + "source.key_file: no such file on the controller: /",
         "/keys/web (a relative path is read from the inventory directory /"]),
    "two problems of one app": ([app(port=None, keep_images=0)],
                                [W0 + "health.path needs port", W0 + "keep_images: 0 keeps no image to roll back to"]),
    "memory not a size": ([app(memory="1 GB")],
                          [W0 + 'memory: "1 GB" is not a size: write a whole number with b, k, m or g, for example '
                                '512m or 1g (null for no limit)']),
    "bad secret key, its value kept out": ([app(secret_env={"DB-PASS": "pw-secret-kept-out"})],
                                           [W0 + 'secret_env: key "DB-PASS" is not a variable name']),
}


for _case, (_apps, _) in APPS_CASES.items():
    APPS.add(("definitions", _case), {"appfleet_apps": _apps})


@pytest.mark.parametrize("case", sorted(APPS_CASES))
def test_apps_refuses_bad_input(case):
    """The case's bad app definition fails an apps check, named in its message: no spec dump, no traceback,
    no secret value."""
    outcome = APPS.outcome(("definitions", case))
    assert_refused(outcome, *APPS_CASES[case][1])
    for needle in ("argument_spec", "Traceback", "pw-secret-kept-out", "apps_definitions"):
        assert needle not in outcome.log, (needle, outcome.log[-3000:])


# Variables beside appfleet_apps: the selection and the version pins.
SELECTION_CASES = {
    "unknown app name": ({"apps_only": "wbe"}, ['apps_only: unknown app "wbe"', "name one of web, api, cache"]),
    "unknown app in a list": ({"apps_only": ["web", "apii"]}, ['apps_only: unknown app "apii"', "name one of web, api"]),
    "pin for an unknown app": ({"appfleet_versions": {"wbe": "abc123"}},
                               ['appfleet_versions: unknown app "wbe": pin one of web, api, cache']),
    "pin that is a git option": ({"appfleet_versions": {"web": "--orphan"}},
                                 ['appfleet_versions: the pin of web, "--orphan", must be a branch, tag or commit']),
    "pin with a command": ({"appfleet_versions": {"api": "main;id"}},
                           ['appfleet_versions: the pin of api, "main;id", must be a branch, tag or commit']),
    "pin for an image app": ({"appfleet_versions": {"cache": "v2"}},
                             ["appfleet_versions: cache runs an image, not a git source: change its image instead"]),
    "pins not a dict": ({"appfleet_versions": ["web=abc"]}, ["apps_versions"]),
    "shared upstream dir with ..": ({"appfleet_upstream_dir": "/etc/nginx/../../tmp"},
                                    ['apps_upstream_dir: "/etc/nginx/../../tmp" must be an absolute path']),
    "relative source dir": ({"apps_src_dir": "srv/appfleet/src"},
                            ['apps_src_dir: "srv/appfleet/src" must be an absolute path']),
    "registry login for a URL": ({"apps_registry_logins": [{"registry": "https://reg.example.com/v2",
                                                            "username": "u", "password": "pw-login-url"}]},
                                 ['apps_registry_logins[0]: registry: "https://reg.example.com/v2" must be the host or '
                                  'host:port']),
    "registry login without password": ({"apps_registry_logins": [{"registry": "reg.example.com", "username": "u",
                                                                   "password": ""}]},
                                        ["apps_registry_logins[0] (reg.example.com): password: required, a non-empty "
                                         "string"]),
    "build registry without a host": ({"apps_build_registry": "team/web"},
                                      ['apps_build_registry: "team/web" must be a registry host',
                                       "registry.example.com:5000/team"]),
    "build registry as a URL": ({"apps_build_registry": "https://reg.example.com/team"},
                                ['apps_build_registry: "https://reg.example.com/team" must be a registry host']),
    "default memory not a size": ({"apps_default_memory": "lots"},
                                  ['apps_default_memory: "lots" is not a size', "for example 512m or 1g"]),
    "build registry with a tag": ({"apps_build_registry": "reg.example.com/team:1"},
                                  ["apps_build_registry", "without scheme, tag or digest"]),
}


SELECTION_APPS = [app(), app(name="api", proxy={"server_name": "api.example.com"}),
                  app(name="cache", source=None, image="redis:7", proxy=None, health=None)]
for _case, (_extra, _) in SELECTION_CASES.items():
    APPS.add(("selection", _case), dict({"appfleet_apps": SELECTION_APPS}, **_extra))


@pytest.mark.parametrize("case", sorted(SELECTION_CASES))
def test_apps_refuses_unknown_names_and_bad_pins(case):
    """Good apps web, api and cache; the case's selection or pins fail the selection check."""
    assert_refused(APPS.outcome(("selection", case)), *SELECTION_CASES[case][1])


# Per-app proxy settings (merged into the app's `proxy` dict; None drops a key).
# Every rule has its unit test (tests/unit/plugins/module_utils/test_proxy_settings.py); these
# show the role runs the check first, on the controller, and names the app as written.
PROXY_CASES = {
    "server name with metacharacters": ({"server_name": "web.example.com;"},
                                        ["appfleet_apps[0] (web): proxy.server_name must be host names",
                                         "web.example.com;"]),
    "listen on the https port": ({"listen": 443}, ["appfleet_apps[0] (web): proxy.listen is the HTTPS port 443"]),
    "tls certificate missing on the controller": (
        {"tls": {"certificate": "/nonexistent/web.crt", "key": "/etc/hostname"}},
        ["appfleet_apps[0] (web): proxy.tls.certificate: no such file on the controller", "/nonexistent/web.crt"]),
    "relative tls certificate missing in the inventory directory": (
        {"tls": {"certificate": "certs/web.crt", "key": "/etc/hostname"}},
        ["appfleet_apps[0] (web): proxy.tls.certificate: no such file on the controller", "/certs/web.crt",
         "a relative path is read from the inventory directory"]),
    "read timeout with an injected directive": (
        {"read_timeout": "60s; proxy_pass http://evil.example.com"},
        ["appfleet_apps[0] (web): proxy.read_timeout must be an nginx time", "proxy_pass http://evil.example.com"]),
    "unknown setting": ({"redirect_https": False},
                        ["appfleet_apps[0] (web): unknown proxy setting(s) redirect_https", "known: server_name"]),
}


for _case, (_proxy, _) in PROXY_CASES.items():
    _settings = {k: v for k, v in dict(GOOD_APP["proxy"], **_proxy).items() if v is not None}
    PROXY.add(("app settings", _case), {"appfleet_apps": [app(proxy=_settings)]})


@pytest.mark.parametrize("case", sorted(PROXY_CASES))
def test_proxy_refuses_bad_input(case):
    """App web with the case's proxy settings fails a proxy check, naming app and setting."""
    assert_refused(PROXY.outcome(("app settings", case)), *PROXY_CASES[case][1])


PROXY_FLEET_CASES = {
    "proxied app without a name": ([app(name=None)], ["appfleet_apps[0]: an app with proxy settings needs a name"]),
    "duplicate server name": (
        [app(), app(name="api", proxy={"server_name": ["api.example.com", "WEB.example.com"]})],
        ["appfleet_apps[1] (api): apps web and api both claim server_name web.example.com (port 80)"]),
}


for _case, (_apps, _) in PROXY_FLEET_CASES.items():
    PROXY.add(("fleet", _case), {"appfleet_apps": _apps})


@pytest.mark.parametrize("case", sorted(PROXY_FLEET_CASES))
def test_proxy_refuses_bad_fleet(case):
    """The case's apps, together, fail a proxy check (names, server names)."""
    assert_refused(PROXY.outcome(("fleet", case)), *PROXY_FLEET_CASES[case][1])


def test_proxy_accepts_good_input():
    """The checks pass what nginx takes: wildcards, several names, per-app options, one name on two ports."""
    good = [
        app(proxy={"server_name": ["web.example.com", "*.web.example.com", "WWW.Example.COM"],
                   "tls": {"certificate": "/etc/hostname", "key": "/etc/hostname"},
                   "redirect_http": False, "hsts": True, "hsts_max_age": 0,
                   "connect_timeout": "500ms", "read_timeout": "1h30m", "send_timeout": 90,
                   "client_max_body_size": "512k"}),
        app(name="admin", proxy={"server_name": "web.example.com", "listen": "8080"}),
        app(name="worker", proxy=None),
    ]
    play = [{
        "name": "Good input", "hosts": "localhost", "connection": "local", "gather_facts": False,
        # Only the checks run (tasks_from: assert), so only the OS facts are needed.
        "vars": {"appfleet_apps": good, "ansible_python_interpreter": sys.executable},
        "pre_tasks": [{"name": "Pretend to be Debian 12",
                       "ansible.builtin.set_fact": {"distribution": "Debian", "distribution_major_version": "12",
                                                    "cacheable": True}}],
        "tasks": [{"name": "Run the proxy role's input checks",
                   "ansible.builtin.include_role": {"name": "appfleet.docker.proxy", "tasks_from": "assert"}}],
    }]
    proc = run_playbook(json.dumps(play, indent=1), inventory="localhost,", check=False)
    out = re.sub(r"\s+", " ", proc.stdout)
    assert proc.returncode == 0, out[-3000:]
    assert "TASK [appfleet.docker.proxy : Check the proxy settings] " in out, out[-2000:]
    assert re.search(r"Check the proxy settings\] \** ok: \[localhost\]", out), out[-2000:]
    assert re.search(r"localhost\s*: ok=\d+ changed=0 unreachable=0 failed=0", out), out[-2000:]


@pytest.mark.parametrize("inventory", ["lab", "production"])
def test_shipped_inventories_pass_the_typed_app_options(inventory, tmp_path):
    """The apps and registry logins of inventories/lab and inventories/production pass
    the app model (health, proxy, tls ...), their values templated as in a run."""
    lab_dir = tmp_path / "lab"
    (lab_dir / "ssh").mkdir(parents=True)
    (lab_dir / "ssh" / "id_ed25519.pub").write_text("ssh-ed25519 AAAA test\n")
    (lab_dir / "ssh" / "git_known_hosts").write_text("git ssh-ed25519 AAAA\n")
    # What labctl makes for the lab registry: its CA and password.
    (lab_dir / "registry").mkdir()
    (lab_dir / "registry" / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    (lab_dir / "registry" / "password").write_text("test-registry-password\n")
    play = [{
        "name": "Validate the inventory's apps", "hosts": "vm1", "connection": "local", "gather_facts": False,
        "vars": {"ansible_python_interpreter": sys.executable},
        "tasks": [{
            "name": "Check the apps with the app model",
            "ansible.builtin.assert": {
                # The example's key and certificate files are not shipped: only their existence is not checked.
                "that": "apps_test_problems | length == 0",
                "fail_msg": "{{ apps_test_problems | join('\\n') }}",
                "quiet": True},
            "vars": {"apps_test_problems": "{{ (appfleet_apps | appfleet.docker.app_model({'registry_logins': "
                                           "apps_registry_logins | default([]), 'base_dir': inventory_dir, 'defaults': "
                                           "{'strategy': 'start-first', 'keep_images': 3}})).problems "
                                           "| reject('search', 'no such file on the controller') | list }}"},
        }],
    }]
    args = ["-i", "inventories/%s" % inventory]
    if inventory == "production":
        args += ["--vault-password-file", "inventories/production/vault-password.example"]
    proc = run_playbook(json.dumps(play, indent=1), *args, check=False, env={"APPFLEET_LAB_DIR": lab_dir})
    out = re.sub(r"\s+", " ", proc.stdout)
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-2000:]
    assert re.search(r"vm1\s*: ok=1 changed=0 unreachable=0 failed=0", out), out[-2000:]


MAINTENANCE_CASES = {
    "unknown app": (["-e", "app=wbe", "-e", "state=on"], ["unknown app wbe", "one of: web"]),
    "app without proxy settings": (["-e", "app=worker", "-e", "state=on"], ["unknown app worker"]),
    "no app": (["-e", "state=on"], ["give -e app=NAME"]),
    "bad state": (["-e", "app=web", "-e", "state=maybe"], ["-e state=on or -e state=off"]),
    "no state": (["-e", "app=web"], ["-e state=on or -e state=off"]),
}


@pytest.mark.parametrize("case", sorted(MAINTENANCE_CASES))
def test_maintenance_refuses_bad_input_before_logging_in(case, tmp_path):
    args, needles = MAINTENANCE_CASES[case]
    inventory = tmp_path / "hosts.json"
    # A documentation address: any login attempt would fail as unreachable.
    inventory.write_text(json.dumps({"all": {"children": {"fleet": {"hosts": {"vm1": {"ansible_host": "192.0.2.1"}}}}}}))
    apps = tmp_path / "apps.json"
    worker = app(name="worker", source=None, image="w:1", proxy=None, health=None)
    apps.write_text(json.dumps({"appfleet_apps": [app(), worker]}))
    proc = run_playbook("playbooks/maintenance.yml", "-i", str(inventory), "-e", "@%s" % apps, *args,
                        check=False)
    out = re.sub(r"\s+", " ", proc.stdout)
    assert proc.returncode != 0, out[-3000:]
    for needle in needles:
        assert needle in out, (needle, out[-3000:])
    assert re.search(r"vm1\s*: ok=0 changed=0 unreachable=0 failed=1", out), out[-2000:]
