"""appfleet-dockerd-config-check: the daemon.json refusals, with the settings the role writes."""

from __future__ import annotations

import json
import re

import pytest

from ansible_collections.appfleet.docker.plugins.module_utils._engine_settings import PATHS

# `systemctl show docker.service --property=LoadState --property=ExecStart` of
# Debian's docker.io unit, and of a unit whose drop-in cleared -H.
UNIT_WITH_H = ("ExecStart={ path=/usr/sbin/dockerd ; argv[]=/usr/sbin/dockerd -H fd:// "
               "--containerd=/run/containerd/containerd.sock ; ignore_errors=no ; start_time=[n/a] }\n"
               "LoadState=loaded\n")
UNIT_WITHOUT_H = ("ExecStart={ path=/usr/sbin/dockerd ; argv[]=/usr/sbin/dockerd "
                  "--containerd=/run/containerd/containerd.sock ; ignore_errors=no ; start_time=[n/a] }\n"
                  "LoadState=loaded\n")
UNIT_NOT_FOUND = "LoadState=not-found\nExecStart=\n"
TLS = {"tlsverify": True, "tlscacert": "/etc/docker/ca.pem", "tlscert": "/etc/docker/cert.pem",
       "tlskey": "/etc/docker/key.pem"}


@pytest.fixture(name="settings")
def fixture_settings(role_vars):
    """What the role's "Write the daemon.json checker's settings" task writes (allow_tcp off)."""
    return {"daemon_keys": role_vars["_engine_daemon_keys"], "allow_tcp": False,
            "host_flag_re": role_vars["_engine_host_flag_re"]}


def errors_of(checker, settings, config, unit_show=UNIT_WITH_H, allow_tcp=None):
    if allow_tcp is not None:
        settings = dict(settings, allow_tcp=allow_tcp)
    keys, allow, host_flag = checker.load_settings(json.dumps(settings))
    return checker.config_errors(config, keys, allow, host_flag, unit_show)


def test_role_defaults_pass(checker, settings, role_vars):
    assert errors_of(checker, settings, role_vars["engine_daemon_defaults"]) == []


@pytest.mark.parametrize("config, message", [
    ({"no-such-option": True}, "unknown dockerd option 'no-such-option'"),
    ({"live-restore": "yes"}, "option 'live-restore' must be of type boolean, got 'yes'"),
    ({"log-opts": {"max-file": 3}}, "option 'log-opts' must be of type strmap"),
    ({"hosts": [2375]}, "option 'hosts' must be of type strlist"),
    ({"max-concurrent-downloads": True}, "option 'max-concurrent-downloads' must be of type integer"),
    ({"dns": "1.1.1.1"}, "option 'dns' must be of type strlist"),
    ({"log-driver": "journald", "log-opts": {"max-size": "10m"}},
     "option 'log-opts' has max-size, which log-driver 'journald' refuses"),
    ({"hosts": ["tcp://0.0.0.0:2375"]}, "option 'hosts' has 'tcp://0.0.0.0:2375', a TCP listener"),
    ({"hosts": ["fd://", "0.0.0.0:2375"]}, "reads it as 'tcp://0.0.0.0:2375'"),
    ({"hosts": [" tcp://0.0.0.0:2375"]}, "has ' tcp://0.0.0.0:2375', a TCP listener"),
    ({"hosts": [""], "tlsverify": False}, "reads it as 'tcp://localhost:2376'"),
    ({"hosts": ["ssh://root@host"]}, "'ssh://root@host', which dockerd cannot listen on"),
    ({"hosts": ["UNIX:///run/docker.sock"]}, "which dockerd cannot listen on"),
    ({"hosts": ["unix:///var/run/docker.sock"]},
     "conflicts with docker.service, which starts dockerd with /usr/sbin/dockerd -H fd://"),
])
def test_refusals(checker, settings, config, message):
    errors = errors_of(checker, settings, config)
    assert any(message in error for error in errors), errors


def test_type_errors_come_alone(checker, settings):
    """A wrong type stops the checks: the hosts checks would misread the value."""
    assert errors_of(checker, settings, {"hosts": "tcp://0.0.0.0:2375", "debug": 1}) == [
        "option 'debug' must be of type boolean, got 1",
        "option 'hosts' must be of type strlist, got 'tcp://0.0.0.0:2375'"]


@pytest.mark.parametrize("unit_show, said", [(None, "-H fd:// (the packaged unit)"),
                                             (UNIT_NOT_FOUND, "-H fd:// (the packaged unit)"),
                                             (UNIT_WITH_H, "/usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock")])
def test_hosts_refused_while_the_unit_passes_h(checker, settings, unit_show, said):
    errors = errors_of(checker, settings, {"hosts": ["unix:///run/docker.sock"]}, unit_show)
    assert errors == ["option 'hosts' conflicts with docker.service, which starts dockerd with %s: "
                      "dockerd would not start; remove 'hosts'" % said]


@pytest.mark.parametrize("config, allow_tcp, ok", [
    ({"hosts": ["unix:///run/docker.sock", "fd://"]}, False, True),
    (dict(TLS, hosts=["tcp://0.0.0.0:2376"]), True, True),
    (dict(TLS, hosts=["tcp://0.0.0.0:2376"]), False, False),
    (dict(TLS, hosts=["tcp://0.0.0.0:2376"], tlsverify=False), True, False),
    (dict(TLS, hosts=["tcp://0.0.0.0:2376"], tlskey=""), True, False),
    ({"hosts": ["tcp://0.0.0.0:2376"], "tls": True, "tlscacert": "/ca", "tlscert": "/c", "tlskey": "/k"}, True, False),
])
def test_tcp_needs_allow_tcp_and_client_verification(checker, settings, config, allow_tcp, ok):
    errors = errors_of(checker, settings, config, UNIT_WITHOUT_H, allow_tcp=allow_tcp)
    assert (errors == []) is ok, errors


@pytest.mark.parametrize("entry, tls_on, host", [
    ("unix:///run/docker.sock", False, "unix:///run/docker.sock"),
    ("  fd:// ", False, "fd://"),
    ("0.0.0.0:2375", False, "tcp://0.0.0.0:2375"),
    ("", False, "unix:///var/run/docker.sock"),
    ("", True, "tcp://localhost:2376"),
])
def test_hosts_read_as_dockerd_reads_them(checker, entry, tls_on, host):
    assert checker.dockerd_host(entry, tls_on) == host


@pytest.mark.parametrize("argv, passes", [
    ("/usr/sbin/dockerd -H fd://", True),
    ("/usr/sbin/dockerd --host=unix:///run/docker.sock", True),
    ("/usr/sbin/dockerd --host fd://", True),
    ("/usr/sbin/dockerd -DH fd://", True),
    ("/usr/sbin/dockerd --containerd=/run/containerd/containerd.sock", False),
    ("/usr/sbin/dockerd --hostname-x", False),
])
def test_host_flag_pattern_of_the_role(checker, settings, argv, passes):
    host_flag = checker.load_settings(json.dumps(settings))[2]
    assert bool(checker.unit_conflict_errors(argv, host_flag)) is passes


@pytest.mark.parametrize("text, message", [
    ("{", "is not valid JSON"),
    ("[]", "must hold a JSON object"),
    ('{"allow_tcp": false, "host_flag_re": "-H"}', '"daemon_keys"'),
    ('{"daemon_keys": {"debug": "bool"}, "allow_tcp": false, "host_flag_re": "-H"}', '"daemon_keys"'),
    ('{"daemon_keys": {}, "allow_tcp": "no", "host_flag_re": "-H"}', '"allow_tcp", true or false'),
    ('{"daemon_keys": {}, "allow_tcp": false, "host_flag_re": "("}', '"host_flag_re", a regular expression'),
    ('{"daemon_keys": {}, "allow_tcp": false}', '"host_flag_re"'),
])
def test_malformed_settings(checker, text, message):
    with pytest.raises(checker.SettingsError, match=re.escape(message)):
        checker.load_settings(text)


def test_settings_path_is_the_roles(checker):
    """The role passes --settings; a hand-run check without it reads the same file."""
    assert checker.SETTINGS == PATHS["checker_settings"]


@pytest.fixture(name="host")
def fixture_host(checker, settings, tmp_path, monkeypatch):
    """main() on this machine, without dockerd and with a docker.service that passes -H."""
    (tmp_path / "settings.json").write_text(json.dumps(settings))
    monkeypatch.setattr(checker.shutil, "which", lambda name: None)
    monkeypatch.setattr(checker, "read_unit", lambda: UNIT_WITH_H)

    def check(text, settings_path=tmp_path / "settings.json"):
        (tmp_path / "daemon.json").write_text(text)
        return checker.main(["appfleet-dockerd-config-check", "--settings", str(settings_path),
                             str(tmp_path / "daemon.json")])
    return check


@pytest.mark.parametrize("text, status, message", [
    ('{"debug": true}', 0, ""),
    ('{"log-driver": "json-file",', 1, "daemon.json refused: %s is not valid JSON"),
    ('["debug"]', 1, "daemon.json refused: %s must hold a JSON object"),
    ('{"hosts": ["fd://"]}', 1, "daemon.json refused: option 'hosts' conflicts with docker.service"),
    ('{"icc": "false"}', 1, "daemon.json refused: option 'icc' must be of type boolean"),
])
def test_main_exit_status_and_message(host, tmp_path, capsys, text, status, message):
    assert host(text) == status
    assert (message % (tmp_path / "daemon.json") if "%s" in message else message) in capsys.readouterr().err


def test_main_refuses_without_its_settings(host, tmp_path, capsys):
    assert host('{"debug": true}', settings_path=tmp_path / "missing.json") == 2
    assert "cannot read the checker's settings %s" % (tmp_path / "missing.json") in capsys.readouterr().err


def test_main_asks_dockerd_where_it_validates(checker, host, monkeypatch, capsys):
    calls = []

    class Proc:  # pylint: disable=too-few-public-methods
        def __init__(self, returncode, stdout, stderr=""):
            self.returncode, self.stdout, self.stderr = returncode, stdout, stderr

    def run(argv):
        calls.append(argv)
        if argv[1:] == ["--help"]:
            return Proc(0, "  --validate   Validate daemon configuration and exit\n")
        return Proc(1, "", "unable to configure the Docker daemon: max-concurrent-downloads must be >= 0")

    monkeypatch.setattr(checker.shutil, "which", lambda name: "/usr/bin/dockerd")
    monkeypatch.setattr(checker, "run", run)
    assert host('{"max-concurrent-downloads": -1}') == 1
    assert calls[-1][:3] == ["/usr/bin/dockerd", "--validate", "--config-file"]
    assert "dockerd --validate refused it: unable to configure" in capsys.readouterr().err


def test_user_namespace_remapping_is_an_option_the_checker_takes(checker, settings, role_vars):
    """docs/security.md, CIS 2.9: `engine_daemon_options: {"userns-remap": "default"}` passes the
    check (a wrong type does not), so the role writes it."""
    config = dict(role_vars["engine_daemon_defaults"], **{"userns-remap": "default"})
    assert errors_of(checker, settings, config) == []
    assert errors_of(checker, settings, dict(config, **{"userns-remap": True})) == [
        "option 'userns-remap' must be of type string, got True"]
