"""Bad input to the bootstrap and engine roles fails first, naming the variable.

Each case runs the role against this machine in check mode (so that even a wrong
pass could not change it) and requires: the run fails, the message names the
variable, the failing task is one of the role's input checks, and nothing was
reported changed before it. The cases of a role run as the hosts of one
ansible-playbook run, each read apart (role_batch.py).
"""

from __future__ import annotations

import pytest

from role_batch import BatchGroup, assert_refused

GOOD_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx1Q4Nn2e0Y8Yg0gQm3N1h5b8o3S7Wm0cZb2e7QH3lK op@laptop"

# One ansible-playbook run per role, one host per case (see role_batch.py).
BATCHES = BatchGroup()
BOOTSTRAP = BATCHES.role("bootstrap")
ENGINE = BATCHES.role("engine")
PROXY = BATCHES.role("proxy")
# The least each role needs besides the variable under test.
GOOD_VARS = {"bootstrap": {"bootstrap_authorized_keys": [GOOD_KEY]}, "engine": {"engine_source": "distro"}, "proxy": {}}
BY_ROLE = {"bootstrap": BOOTSTRAP, "engine": ENGINE, "proxy": PROXY}


BOOTSTRAP_CASES = {
    "malformed key": ({"bootstrap_authorized_keys": ["ssh-ed25519 not base64 at all; rm -rf /"]},
                      ["bootstrap_authorized_keys", "Malformed entries"]),
    "no key": ({"bootstrap_authorized_keys": []},
               ["bootstrap_authorized_keys must list at least one SSH public key"]),
    "user with metacharacters": ({"bootstrap_user": "deploy;reboot"}, ["bootstrap_user must be"]),
    "root as deploy user": ({"bootstrap_user": "root"}, ["bootstrap_user must be"]),
    "hostname with metacharacters": ({"bootstrap_hostname": "web$(id)"}, ["bootstrap_hostname must be"]),
    "shell with spaces": ({"bootstrap_user_shell": "/bin/sh -c id"}, ["bootstrap_user_shell must be"]),
    "package with metacharacters": ({"bootstrap_extra_packages": ["vim && reboot"]},
                                    ["bootstrap_extra_packages"]),
    "bad reboot time": ({"bootstrap_unattended_reboot_time": "25:00"},
                        ["bootstrap_unattended_reboot_time"]),
    "wrong type": ({"bootstrap_sudo_nopasswd": "perhaps"},
                   ['bootstrap_sudo_nopasswd: give true or false; got the string "perhaps"']),
    # One key given as a string, not a list: one line, not one malformed entry per character.
    "key as a string": ({"bootstrap_authorized_keys": GOOD_KEY},
                        ["bootstrap_authorized_keys: give a list of SSH public keys, one string each, for example",
                         'got the string "ssh-ed25519 AAAAC3Nza']),
    "ntp servers as a number": ({"bootstrap_ntp_servers": 7},
                                ["bootstrap_ntp_servers: give a list of host names", "got the number 7"]),
}


for _case, (_vars, _) in BOOTSTRAP_CASES.items():
    BOOTSTRAP.add(_case, dict(GOOD_VARS["bootstrap"], **_vars))
BOOTSTRAP.add("unsupported os", GOOD_VARS["bootstrap"], os_family="RedHat")
for _role, _batch in BY_ROLE.items():
    _batch.add("untested distribution", GOOD_VARS[_role], os_family="Debian", distribution="Ubuntu")


@pytest.mark.parametrize("case", sorted(BOOTSTRAP_CASES))
def test_bootstrap_refuses_bad_input(case):
    """The case's bad variable (beside a good key) fails a bootstrap check, named in its message."""
    assert_refused(BOOTSTRAP.outcome(case), *BOOTSTRAP_CASES[case][1])


def test_bootstrap_names_a_string_key_once():
    """A string is not read as a list of one-character keys."""
    assert "Malformed entries" not in BOOTSTRAP.outcome("key as a string").message


def test_bootstrap_refuses_unsupported_os():
    """A host that says it is RedHat is refused, its family named."""
    assert_refused(BOOTSTRAP.outcome("unsupported os"), "appfleet.docker.bootstrap supports the releases it is tested on",
                   "this host is RedHat")


@pytest.mark.parametrize("role", ["bootstrap", "engine", "proxy"])
def test_roles_refuse_an_untested_distribution(role):
    """Ubuntu is of the Debian os family, and untested: refused, not half-supported."""
    assert_refused(BY_ROLE[role].outcome("untested distribution"),
                   "appfleet.docker.%s supports the releases it is tested on" % role, "this host is Ubuntu")


ENGINE_CASES = {
    "unknown daemon option": ({"engine_daemon_options": {"no-such-option": True}},
                              ["engine_daemon_options: unknown dockerd option", "no-such-option"]),
    "daemon option of the wrong type": ({"engine_daemon_options": {"live-restore": "yes"}},
                                        ["engine_daemon_options: option", "live-restore", "true or false"]),
    "number in log-opts": ({"engine_daemon_options": {"log-opts": {"max-file": 3}}},
                           ["engine_daemon_options: option", "log-opts", "values are strings"]),
    "tcp listener": ({"engine_daemon_options": {"hosts": ["unix:///run/docker.sock", "tcp://0.0.0.0:2375"]}},
                     ["engine_daemon_options", "tcp://0.0.0.0:2375", "engine_allow_tcp"]),
    # The defaults' json-file max-size/max-file stay merged in: syslog refuses them.
    "remote log driver over the json-file options": (
        {"engine_daemon_options": {"log-driver": "syslog", "log-opts": {"syslog-address": "udp://192.0.2.1:514"}}},
        ["engine_daemon_options: log-driver", "syslog", "max-size", "engine_daemon_defaults"]),
    "bad network": ({"engine_allowed_networks": ["10.0.0.0/8; iptables -F"]}, ["engine_allowed_networks"]),
    "network with a trailing newline": ({"engine_allowed_networks": ["10.0.0.0/8\n"]},
                                        ["engine_allowed_networks must hold IPv4 or IPv6 networks"]),
    "ipv6 network with a prefix too long": ({"engine_allowed_networks": ["fd00::/129"]},
                                            ["engine_allowed_networks", "fd00::/129"]),
    # dockerd trims each "hosts" entry and reads one without a scheme as TCP.
    "scheme-less tcp listener beside fd://": (
        {"engine_daemon_options": {"hosts": ["fd://", "0.0.0.0:2375"]}},
        ["engine_daemon_options", "0.0.0.0:2375", "(dockerd reads it as", "tcp://0.0.0.0:2375", "engine_allow_tcp"]),
    "tcp listener after a space": (
        {"engine_daemon_options": {"hosts": [" tcp://0.0.0.0:2375"]}},
        ["engine_daemon_options", " tcp://0.0.0.0:2375", "(dockerd reads it as", "engine_allow_tcp"]),
    "empty hosts entry with tls": (
        {"engine_daemon_options": {"hosts": [""], "tlsverify": False}},
        ["engine_daemon_options", "tcp://localhost:2376", "engine_allow_tcp"]),
    "allowed tcp listener without tls": (
        {"engine_allow_tcp": True, "engine_daemon_options": {"hosts": ["tcp://0.0.0.0:2376"]}},
        ["engine_daemon_options", "tcp://0.0.0.0:2376", "tlsverify", "tlscacert", "tlscert", "tlskey"]),
    "allowed tcp listener with tls but no client verification": (
        {"engine_allow_tcp": True,
         "engine_daemon_options": {"hosts": ["tcp://0.0.0.0:2376"], "tls": True, "tlscacert": "/etc/docker/ca.pem",
                                   "tlscert": "/etc/docker/cert.pem", "tlskey": "/etc/docker/key.pem"}},
        ["engine_daemon_options", "tcp://0.0.0.0:2376", "tlsverify"]),
    "hosts entry dockerd cannot listen on": ({"engine_daemon_options": {"hosts": ["ssh://root@host"]}},
                                             ["engine_daemon_options", "ssh://root@host", "cannot listen on"]),
    "hosts entry that is not a string": ({"engine_daemon_options": {"hosts": [2375]}},
                                         ["engine_daemon_options: option", "hosts", "a list of strings"]),
    # Any "hosts" conflicts with the packaged unit's `dockerd -H fd://`.
    "hosts with the default unit": ({"engine_daemon_options": {"hosts": ["unix:///var/run/docker.sock"]}},
                                    ["engine_daemon_options", "cannot be set here", "-H fd://",
                                     "dockerd does not start", "from engine_daemon_options"]),
    "protected tcp listener with the default unit": (
        {"engine_allow_tcp": True,
         "engine_daemon_options": {"hosts": ["fd://", "tcp://0.0.0.0:2376"], "tlsverify": True,
                                   "tlscacert": "/etc/docker/ca.pem", "tlscert": "/etc/docker/cert.pem",
                                   "tlskey": "/etc/docker/key.pem"}},
        ["engine_daemon_options", "cannot be set here", "-H fd://"]),
    "bad preload image": ({"engine_preload_images": [{"image": "x`id`", "archive": "/tmp/x.tar"}]},
                          ["engine_preload_images"]),
    "world-writable preload dir": ({"engine_preload_dir": "/var/tmp/appfleet-preload"},
                                   ["engine_preload_dir must be", "world-writable", "/var/tmp/appfleet-preload"]),
    "preload dir with ..": ({"engine_preload_dir": "/var/lib/../tmp/x"}, ["engine_preload_dir must be", "without '..'"]),
    "registry CA for a URL": ({"engine_registry_cas": [{"registry": "https://reg.example.com/v2", "ca": "x"}]},
                              ["engine_registry_cas", "host or", "https://reg.example.com/v2"]),
    "registry CA that is no certificate": (
        {"engine_registry_cas": [{"registry": "reg.example.com:5000", "ca": "not a certificate"}]},
        ["engine_registry_cas", "-----BEGIN CERTIFICATE-----", "reg.example.com:5000"]),
    "registry name with metacharacters": ({"engine_registry_cas": [{"registry": "reg;reboot", "state": "absent"}]},
                                          ["engine_registry_cas", "reg;reboot"]),
    "bad repo url": ({"engine_docker_repo_url": "https://example.com/$(id)"}, ["engine_docker_repo_url"]),
    "bad version": ({"engine_version": "1.0; reboot"}, ["engine_version"]),
    "unknown source": ({"engine_source": "snap"}, ["engine_source must be docker", 'got "snap"']),
    "firewall as a string": ({"engine_firewall": "no"}, ['engine_firewall: give true or false; got the string "no"']),
    "bad user": ({"engine_docker_users": ["bob smith"]}, ["engine_docker_users"]),
    # The argument spec converts these for its own check only; the role reads them as given.
    "users as a number": ({"engine_docker_users": 12},
                          ["engine_docker_users: give a list of user names, for example [deploy]; got the number 12"]),
    "users as a string": ({"engine_docker_users": "acmeops"},
                          ['engine_docker_users: give a list of user names, for example [deploy]; '
                           'got the string "acmeops"']),
    "user that is not a string": ({"engine_docker_users": ["deploy", 12]},
                                  ["engine_docker_users: give a list of user names", "entries that are not strings: [12]"]),
    "networks as a string": ({"engine_allowed_networks": "10.0.0.0/8"},
                             ["engine_allowed_networks: give a list of networks in CIDR form", 'the string "10.0.0.0/8"']),
}


for _case, (_vars, _) in ENGINE_CASES.items():
    ENGINE.add(_case, _vars)
ENGINE.add("unsupported os", GOOD_VARS["engine"], os_family="Archlinux")


@pytest.mark.parametrize("case", sorted(ENGINE_CASES))
def test_engine_refuses_bad_input(case):
    """The case's bad variable fails an engine check, named in its message."""
    assert_refused(ENGINE.outcome(case), *ENGINE_CASES[case][1])


def test_engine_refuses_unsupported_os():
    """A host that says it is Archlinux is refused, its distribution named."""
    assert_refused(ENGINE.outcome("unsupported os"), "appfleet.docker.engine supports the releases it is tested on",
                   "this host is Archlinux")


PROXY_CASES = {
    "listen port with a trailing newline": ({"proxy_listen_port": "80\n"}, ["proxy_listen_port must be a port 1-65535"]),
    "tls port out of range": ({"proxy_tls_listen_port": 0}, ["proxy_tls_listen_port must be a port 1-65535"]),
    "one port for http and https": ({"proxy_tls_listen_port": 80},
                                    ["proxy_listen_port and proxy_tls_listen_port must differ"]),
    "read timeout with an injected directive": ({"proxy_read_timeout": "60s; include /etc/shadow"},
                                                ["proxy_read_timeout must be an nginx time", "/etc/shadow"]),
    "connect timeout with a trailing newline": ({"proxy_connect_timeout": "5s\n"},
                                                ["proxy_connect_timeout must be an nginx time"]),
    "body size with a block": ({"proxy_client_max_body_size": "10m; } server { listen 8080"},
                               ["proxy_client_max_body_size must be an nginx size"]),
    "relative sites dir": ({"proxy_sites_dir": "appfleet/sites"}, ["proxy_sites_dir must be an absolute path"]),
    "upstream dir with ..": ({"proxy_upstream_dir": "/etc/nginx/../../tmp"}, ["proxy_upstream_dir must be an absolute path"]),
    "shared upstream dir with ..": ({"appfleet_upstream_dir": "/etc/nginx/../../tmp"},
                                    ["proxy_upstream_dir must be an absolute path"]),
    "tls dir with a space": ({"proxy_tls_dir": "/etc/nginx/appfleet tls"}, ["proxy_tls_dir must be an absolute path"]),
    "sites and upstreams in one dir": ({"proxy_sites_dir": "/etc/nginx/appfleet/upstreams"},
                                       ["proxy_upstream_dir, proxy_sites_dir and proxy_tls_dir must be three different"]),
    "hsts max-age not a number": ({"proxy_hsts_max_age": "1y"}, ["proxy_hsts_max_age"]),
    "hsts not a boolean": ({"proxy_hsts": "perhaps"}, ['proxy_hsts: give true or false; got the string "perhaps"']),
    "maintenance state not on or off": ({"proxy_maintenance_state": "yes"},
                                        ['proxy_maintenance_state: give one of "", "on", "off"']),
    "package with a command": ({"proxy_package": "nginx; reboot"}, ["proxy_package must be a Debian package name"]),
}


for _case, (_vars, _) in PROXY_CASES.items():
    PROXY.add(_case, _vars)


@pytest.mark.parametrize("case", sorted(PROXY_CASES))
def test_proxy_refuses_bad_settings(case):
    """The case's bad proxy role setting fails a proxy check, named in its message."""
    assert_refused(PROXY.outcome(case), *PROXY_CASES[case][1])


# Values the argument specs refused before, printing the whole spec (5-20 KB):
# the specs declare the variables raw, the roles' checks name them in a line.
SPEC_CASES = [("bootstrap", "wrong type", "bootstrap_sudo_nopasswd"), ("engine", "unknown source", "engine_source"),
              ("engine", "users as a number", "engine_docker_users"), ("proxy", "hsts not a boolean", "proxy_hsts"),
              ("proxy", "maintenance state not on or off", "proxy_maintenance_state")]


@pytest.mark.parametrize("role, case, name", SPEC_CASES)
def test_a_wrong_type_is_told_in_a_short_message(role, case, name):
    """The failure names the variable in under 2 KB, and no argument spec is printed."""
    outcome = BY_ROLE[role].outcome(case)
    assert name in outcome.message
    assert len(outcome.message) < 2048, outcome.message
    assert "argument_spec" not in outcome.log, outcome.log[-3000:]
