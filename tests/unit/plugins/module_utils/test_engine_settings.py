"""_engine_settings: every rule of the engine role's variables, and its message."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from ansible_collections.appfleet.docker.plugins.module_utils import _engine_settings as model

ROLE = Path(__file__).resolve().parents[4] / "roles" / "engine"
VARS = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())
DEFAULTS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
DAEMON_KEYS = VARS["_engine_daemon_keys"]
HOST_FLAG_RE = VARS["_engine_host_flag_re"]
UNIT_WITH_H = ("ExecStart={ path=/usr/sbin/dockerd ; argv[]=/usr/sbin/dockerd -H fd:// "
               "--containerd=/run/containerd/containerd.sock ; ignore_errors=no }\nLoadState=loaded\n")
UNIT_WITHOUT_H = ("ExecStart={ path=/usr/sbin/dockerd ; argv[]=/usr/sbin/dockerd "
                  "--containerd=/run/containerd/containerd.sock ; ignore_errors=no }\nLoadState=loaded\n")
TLS = {"tlsverify": True, "tlscacert": "/etc/docker/ca.pem", "tlscert": "/etc/docker/cert.pem",
       "tlskey": "/etc/docker/key.pem"}
CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def settings(**changes):
    """The role's defaults (engine_plugins as templated for source docker), with changes."""
    values = dict(DEFAULTS, engine_plugins=["compose", "buildx"])
    values.update(changes)
    return {name: values[name] for name in model.SHAPES}


def problems(unit_show=UNIT_WITHOUT_H, **changes):
    return model.engine_problems(settings(**changes), DAEMON_KEYS, unit_show, HOST_FLAG_RE)


def test_defaults_pass():
    assert problems() == []


def test_inputs_of_the_role_are_the_shapes():
    """vars/main.yml passes every variable the model checks, and only those."""
    assert set(VARS["_engine_inputs"]) == set(model.SHAPES)
    assert set(model.SHAPES) == set(DEFAULTS)


def test_missing_setting_is_a_bug():
    with pytest.raises(KeyError):
        model.engine_problems({}, DAEMON_KEYS)


GOOD = {
    "distro source": {"engine_source": "distro", "engine_plugins": []},
    "pinned version": {"engine_version": "5:27.3.1*"},
    "gpg key url": {"engine_docker_gpg_key_url": "https://mirror.example.com/gpg"},
    "inline key": {"engine_docker_gpg_key": "-----BEGIN PGP PUBLIC KEY BLOCK-----\nabc"},
    "bad url ignored for distro": {"engine_source": "distro", "engine_docker_repo_url": "x y"},
    "users": {"engine_docker_users": ["deploy", "_ops-1"]},
    "networks": {"engine_allowed_networks": ["10.0.0.0/8", "192.168.1.1", "2001:db8::/32", "::/0", "fe80::1"]},
    "preload": {"engine_preload_images": [{"image": "app:1", "archive": "files/app-1.tar"}]},
    "registry ca": {"engine_registry_cas": [{"registry": "reg.example.com:5000", "ca": CERT},
                                            {"registry": "old.example.com", "state": "absent"}]},
    "local log driver": {"engine_daemon_options": {"log-driver": "local"}},
    "remote logging as a whole": {"engine_daemon_defaults": {"log-driver": "syslog"}},
    "hosts without -H": {"engine_daemon_options": {"hosts": ["unix:///run/docker.sock", "fd://"]}},
    "protected tcp": {"engine_allow_tcp": True, "engine_daemon_options": dict(TLS, hosts=["tcp://0.0.0.0:2376"])},
}


@pytest.mark.parametrize("case", sorted(GOOD))
def test_good_values_pass(case):
    assert problems(**GOOD[case]) == []


# case -> (changes, the exact problems, or the needles of the one problem)
BAD = {
    "users as a number": ({"engine_docker_users": 12},
                          ["engine_docker_users: give a list of user names, for example [deploy]; got the number 12"]),
    "users as a string": ({"engine_docker_users": "acmeops"},
                          ['engine_docker_users: give a list of user names, for example [deploy]; '
                           'got the string "acmeops"']),
    "user not a string": ({"engine_docker_users": ["deploy", 12]},
                          ["engine_docker_users: give a list of user names, for example [deploy]; "
                           "got a list with entries that are not strings: [12]"]),
    "boolean as a string": ({"engine_firewall": "no"},
                            ["engine_firewall: give true or false; got the string \"no\" "
                             "(with -e, pass JSON: -e '{\"engine_firewall\": true}')"]),
    "options as a list": ({"engine_daemon_options": ["debug"]},
                          ["engine_daemon_options: give a mapping of dockerd options, for example {debug: true}; "
                           "got a list"]),
    "unknown source": ({"engine_source": "snap"},
                       ["engine_source must be docker (Docker's apt repository) or distro (the distribution's "
                        'docker.io); got "snap"']),
    "bad version": ({"engine_version": "1.0; reboot"}, ["engine_version must be empty or an apt version"]),
    "version with a newline": ({"engine_version": "1.0\n"}, ["engine_version must be empty or an apt version"]),
    "bad repo url": ({"engine_docker_repo_url": "https://example.com/$(id)"},
                     ['engine_docker_repo_url must be an http(s) URL without spaces or shell metacharacters; '
                      'got "https://example.com/$(id)"']),
    "bad key url": ({"engine_docker_gpg_key_url": "ftp://x"}, ["engine_docker_gpg_key_url must be an http(s) URL"]),
    "bad channel": ({"engine_docker_repo_channel": "stable main"}, ["engine_docker_repo_channel must be a plain word"]),
    "key not armoured": ({"engine_docker_gpg_key": "abc"},
                         ["engine_docker_gpg_key must be empty or an ASCII-armoured PGP public key"]),
    "unknown plugin": ({"engine_plugins": ["compose", "swarm"]},
                       ['engine_plugins may only contain "compose" and "buildx"; got ["swarm"]']),
    "bad user": ({"engine_docker_users": ["bob smith"]},
                 ['engine_docker_users must hold user names', 'invalid: ["bob smith"]']),
    "bad network": ({"engine_allowed_networks": ["10.0.0.0/8; iptables -F"]},
                    ["engine_allowed_networks must hold IPv4 or IPv6 networks", "10.0.0.0/8; iptables -F"]),
    "network with a newline": ({"engine_allowed_networks": ["10.0.0.0/8\n"]},
                               ["engine_allowed_networks must hold IPv4 or IPv6 networks"]),
    "ipv6 prefix too long": ({"engine_allowed_networks": ["fd00::/129"]}, ["engine_allowed_networks", "fd00::/129"]),
    "ipv6 with a dotted quad": ({"engine_allowed_networks": ["::ffff:10.0.0.1/128"]}, ["without an embedded dotted quad"]),
    "ipv4 prefix too long": ({"engine_allowed_networks": ["10.0.0.0/33"]}, ["10.0.0.0/33"]),
    "preload image with a command": ({"engine_preload_images": [{"image": "x`id`", "archive": "/tmp/x.tar"}]},
                                     ['engine_preload_images[0]: each entry needs "image" (name:tag) and "archive"']),
    "preload entry not a mapping": ({"engine_preload_images": ["app:1"]}, ['engine_preload_images[0]', '"app:1"']),
    "preload without archive": ({"engine_preload_images": [{"image": "app:1"}]}, ["engine_preload_images[0]"]),
    "world-writable preload dir": ({"engine_preload_dir": "/var/tmp/appfleet-preload"},
                                   ["engine_preload_dir must be", "world-writable", '"/var/tmp/appfleet-preload"']),
    "preload dir in /dev/shm": ({"engine_preload_dir": "//dev/shm/x"}, ["engine_preload_dir must be"]),
    "preload dir with ..": ({"engine_preload_dir": "/var/lib/../tmp/x"}, ["engine_preload_dir must be", "without '..'"]),
    "relative preload dir": ({"engine_preload_dir": "preload"}, ["engine_preload_dir must be an absolute path"]),
    "registry CA for a URL": ({"engine_registry_cas": [{"registry": "https://reg.example.com/v2", "ca": CERT}]},
                              ["engine_registry_cas[0]: registry must name the registry", "host or host:port",
                               '"https://reg.example.com/v2"']),
    "registry CA that is no certificate": (
        {"engine_registry_cas": [{"registry": "reg.example.com:5000", "ca": "not a certificate"}]},
        ["engine_registry_cas[0] (reg.example.com:5000): ca must be the PEM text", "-----BEGIN CERTIFICATE-----"]),
    "registry CA without ca": ({"engine_registry_cas": [{"registry": "reg.example.com"}]}, ["ca must be the PEM text"]),
    "registry with metacharacters": ({"engine_registry_cas": [{"registry": "reg;reboot", "state": "absent"}]},
                                     ["engine_registry_cas[0]: registry", '"reg;reboot"']),
    "registry CA bad state": ({"engine_registry_cas": [{"registry": "r", "state": "gone"}]},
                              ['engine_registry_cas[0] (r): state must be present or absent; got "gone"']),
    "registry CA unknown key": ({"engine_registry_cas": [{"registry": "r", "state": "absent", "url": "x"}]},
                                ["engine_registry_cas[0] (r): unknown key(s) url; known: registry, ca, state"]),
    "registry CA not a mapping": ({"engine_registry_cas": ["r"]},
                                  ['engine_registry_cas[0]: give a mapping {registry, ca, state}; got "r"']),
    "unknown daemon option": ({"engine_daemon_options": {"no-such-option": True}},
                              ['engine_daemon_options: unknown dockerd option(s) ["no-such-option"]; see https://']),
    "daemon option of the wrong type": ({"engine_daemon_options": {"live-restore": "yes"}},
                                        ['engine_daemon_options: option "live-restore" must be true or false; '
                                         'got "yes"']),
    "number in log-opts": ({"engine_daemon_options": {"log-opts": {"max-file": 3}}},
                           ['engine_daemon_options: option "log-opts" must be a mapping whose values are strings']),
    "integer option as a string": ({"engine_daemon_options": {"mtu": "1500"}}, ['"mtu" must be an integer']),
    "hosts entry not a string": ({"engine_daemon_options": {"hosts": [2375]}},
                                 ['engine_daemon_options: option "hosts" must be a list of strings']),
    "remote log driver over the json-file options": (
        {"engine_daemon_options": {"log-driver": "syslog", "log-opts": {"syslog-address": "udp://192.0.2.1:514"}}},
        ['engine_daemon_options: log-driver "syslog" does not take the log-opts ["max-file", "max-size"]',
         "engine_daemon_defaults"]),
    "tcp listener": ({"engine_daemon_options": {"hosts": ["unix:///run/docker.sock", "tcp://0.0.0.0:2375"]}},
                     ['"hosts" gives dockerd a TCP listener: "tcp://0.0.0.0:2375" (dockerd reads it as '
                      '"tcp://0.0.0.0:2375")', "engine_allow_tcp: true"]),
    "scheme-less tcp listener": ({"engine_daemon_options": {"hosts": ["fd://", "0.0.0.0:2375"]}},
                                 ['"0.0.0.0:2375" (dockerd reads it as "tcp://0.0.0.0:2375")']),
    "tcp listener after a space": ({"engine_daemon_options": {"hosts": [" tcp://0.0.0.0:2375"]}},
                                   ['" tcp://0.0.0.0:2375" (dockerd reads it as "tcp://0.0.0.0:2375")']),
    "empty hosts entry with tls": ({"engine_daemon_options": {"hosts": [""], "tlsverify": False}},
                                   ['"" (dockerd reads it as "tcp://localhost:2376")']),
    "allowed tcp without tls": ({"engine_allow_tcp": True, "engine_daemon_options": {"hosts": ["tcp://0.0.0.0:2376"]}},
                                ["(engine_allow_tcp is true, but tlsverify and all three certificate options "
                                 "are needed)"]),
    "allowed tcp with an empty key": (
        {"engine_allow_tcp": True, "engine_daemon_options": dict(TLS, tlskey="", hosts=["tcp://0.0.0.0:2376"])},
        ["engine_allow_tcp is true, but tlsverify"]),
    "hosts entry dockerd cannot listen on": ({"engine_daemon_options": {"hosts": ["ssh://root@host", "UNIX:///x"]}},
                                             ['"hosts" has entries dockerd cannot listen on: '
                                              '["ssh://root@host", "UNIX:///x"]']),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_values_are_named(case):
    changes, needles = BAD[case]
    found = problems(**changes)
    assert len(found) == 1, found
    for needle in needles:
        assert needle in found[0], (needle, found[0])


@pytest.mark.parametrize("unit_show, shown", [
    (UNIT_WITH_H, "/usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock"),
    (None, "-H fd:// (the unit of the engine package to install"),
    ("LoadState=not-found\nExecStart=\n", "-H fd:// (the unit of the engine package to install"),
    ("LoadState=loaded\nExecStart={ argv[]=/usr/bin/dockerd --host=fd:// ; }", "/usr/bin/dockerd --host=fd://"),
])
def test_hosts_beside_a_unit_that_sets_them(unit_show, shown):
    found = problems(unit_show=unit_show, engine_daemon_options={"hosts": ["unix:///var/run/docker.sock"]})
    assert found == ['engine_daemon_options: "hosts" cannot be set here: docker.service starts dockerd with %s'
                     % shown + found[0].split(shown, 1)[1]]
    assert 'Remove "hosts" from engine_daemon_options' in found[0]


def test_every_problem_at_once():
    found = problems(engine_source="snap", engine_docker_users=12, engine_preload_dir="/tmp/x",
                     engine_daemon_options={"debug": "on"})
    assert [p.split(" ")[0] for p in found] == ["engine_docker_users:", "engine_source", "engine_daemon_options:",
                                                "engine_preload_dir"]


def test_a_wrong_type_skips_that_variable_s_rules():
    """A string of networks is named once, not once per character."""
    found = problems(engine_allowed_networks="10.0.0.0/8", engine_preload_images="app:1")
    assert len(found) == 2 and all("give a list" in p for p in found)


def test_unknown_or_mistyped_options_skip_the_hosts_rules():
    found = problems(engine_daemon_options={"nope": 1, "hosts": ["tcp://x"], "debug": "yes"})
    assert len(found) == 2 and "unknown dockerd option" in found[0] and '"debug" must be' in found[1]


@pytest.mark.parametrize("base, over, expected", [
    ({"a": {"b": 1, "c": 2}}, {"a": {"b": 3}}, {"a": {"b": 3, "c": 2}}),
    ({"a": {"b": 1}}, {"a": 2}, {"a": 2}),
    ({}, {"a": [1]}, {"a": [1]}),
])
def test_merged_is_recursive(base, over, expected):
    assert model.merged(base, over) == expected


def test_daemon_keys_are_known_kinds():
    assert set(DAEMON_KEYS.values()) <= set(model.DAEMON_KINDS)


def test_host_flag_re_matches_the_packaged_units():
    assert re.search(HOST_FLAG_RE, model.unit_start(UNIT_WITH_H))
    assert not re.search(HOST_FLAG_RE, model.unit_start(UNIT_WITHOUT_H))
