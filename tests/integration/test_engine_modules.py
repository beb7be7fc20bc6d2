"""The engine role's modules on this machine: engine_daemon and engine_firewall on private paths,
engine_preload against the real local engine with a tiny image of its own.

Never touches /etc/docker, the machine's groups or its iptables: every path is under tmp_path,
the group is root with root in it, and the DOCKER-USER rules program is a stand-in that
keeps its "rules" in a file (the real one is tested in tests/unit/roles/engine and molecule).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile

import pytest

from conftest import run_module, run_modules

ROLE_FILES = os.path.join(os.path.dirname(__file__), "..", "..", "roles", "engine", "files")
KEYS = {"debug": "boolean", "icc": "boolean", "labels": "strlist", "live-restore": "boolean",
        "log-driver": "string", "log-opts": "strmap"}
CA = "-----BEGIN CERTIFICATE-----\nMIIBtest\n-----END CERTIFICATE-----\n"
PRELOAD = "afa-test/afa-preload:1"


def install(path, source):
    """A host program as the role installs it: the file with a shebang, executable."""
    with open(source) as handle:
        text = handle.read()
    with open(path, "w") as handle:
        handle.write("#!%s\n%s" % (sys.executable, text))
    os.chmod(path, 0o755)


@pytest.fixture(name="daemon_args")
def fixture_daemon_args(tmp_path):
    checker = str(tmp_path / "checker")
    install(checker, os.path.join(ROLE_FILES, "appfleet-dockerd-config-check.py"))
    (tmp_path / "certs" / "old.example").mkdir(parents=True)
    return {"config": {"live-restore": True, "log-opts": {"max-size": "10m"}, "labels": ["a=1"]},
            "path": str(tmp_path / "docker" / "daemon.json"), "reloadable": ["debug", "labels", "live-restore"],
            "checker": checker, "checker_settings_path": str(tmp_path / "engine" / "checker.json"),
            "checker_settings": {"daemon_keys": KEYS, "allow_tcp": False, "host_flag_re": "(^|\\s)-H"},
            "certs_dir": str(tmp_path / "certs"), "group": "root", "users": ["root"],
            "registry_cas": [{"registry": "reg.example:5000", "ca": CA},
                             {"registry": "old.example", "state": "absent"}]}


def test_engine_daemon_check_apply_again(daemon_args, tmp_path):
    check = run_module("engine_daemon", daemon_args, check=True, diff=True)
    assert check["changed"] and not os.path.exists(daemon_args["path"])
    assert (tmp_path / "certs" / "old.example").exists()
    assert check["daemon"]["changed_options"] == ["labels", "live-restore", "log-opts"]
    assert check["group"] == {"name": "root", "created": False, "added": []}
    assert '"max-size": "10m"' in check["diff"][1]["after"]
    first = run_module("engine_daemon", daemon_args)
    assert first["changed"] and first["daemon"]["changed_options"] == check["daemon"]["changed_options"]
    # dockerd is installed on this machine: log-opts is not reloadable.
    assert first["daemon"]["installed"] and first["daemon"]["apply"] == "restart"
    assert json.load(open(daemon_args["path"])) == daemon_args["config"]
    assert json.load(open(daemon_args["checker_settings_path"])) == daemon_args["checker_settings"]
    assert open(tmp_path / "certs" / "reg.example:5000" / "ca.crt").read() == CA
    assert not (tmp_path / "certs" / "old.example").exists()
    assert sorted(first["registries"]) == [str(tmp_path / "certs" / "old.example"),
                                           str(tmp_path / "certs" / "reg.example:5000" / "ca.crt")]
    # The checker, run by hand on what the module wrote, accepts it.
    assert subprocess.run([daemon_args["checker"], "--settings", daemon_args["checker_settings_path"],
                           daemon_args["path"]], check=False).returncode == 0
    again = run_module("engine_daemon", daemon_args)
    assert not again["changed"] and again["daemon"]["apply"] == "none"


def test_engine_daemon_reload_restart_and_refusals(daemon_args):
    run_module("engine_daemon", daemon_args)
    before = open(daemon_args["path"]).read()
    reload_args = dict(daemon_args, config=dict(daemon_args["config"], labels=["a=2"], debug=True))
    restart_args = dict(daemon_args, config=dict(daemon_args["config"], icc=False))
    unknown = dict(daemon_args, config=dict(daemon_args["config"], nosuch=1))
    mistyped = dict(daemon_args, config=dict(daemon_args["config"], **{"log-opts": {"max-file": 3}}))
    no_user = dict(daemon_args, users=["root", "afc-no-such-user"])
    checks = run_modules("engine_daemon", [reload_args, restart_args, unknown, no_user], check=True)
    assert [c["daemon"]["apply"] for c in checks[:2]] == ["reload", "restart"]
    assert checks[1]["daemon"]["changed_options"] == ["icc"]
    # In check mode, the checker already refuses; a missing user is left out (an earlier role may make it).
    assert checks[2]["failed"] and "unknown dockerd option 'nosuch'" in checks[2]["msg"]
    assert not checks[3].get("failed")
    bad = run_modules("engine_daemon", [unknown, mistyped, no_user])
    assert all(r["failed"] and not r["changed"] for r in bad)
    assert "refused by %s, nothing changed" % daemon_args["checker"] in bad[1]["msg"]
    assert "'log-opts' must be of type strmap" in bad[1]["msg"]
    assert 'no such user(s) on this host: ["afc-no-such-user"]' in bad[2]["msg"]
    assert open(daemon_args["path"]).read() == before


RULES_STANDIN = r'''
import json, sys
state = sys.argv[0] + ".applied"
wanted = json.load(open(sys.argv[2]))
try:
    current = json.load(open(state))
except OSError:
    current = None
if sys.argv[3:] == ["--check"]:
    sys.exit(0 if current == wanted else 1)
json.dump(wanted, open(state, "w"))
'''


@pytest.fixture(name="firewall_args")
def fixture_firewall_args(tmp_path):
    program = tmp_path / "rules"
    program.write_text(RULES_STANDIN)
    install(str(program), str(program))
    old = tmp_path / "old.service"
    old.write_text("[Unit]\n")
    return {"program": str(program), "settings_path": str(tmp_path / "engine" / "rules.json"),
            "allowed_networks": ["127.0.0.0/8", "::1/128"], "dropin": str(tmp_path / "drop-in" / "rules.conf"),
            "absent": [str(old)]}


def applied(args):
    path = args["program"] + ".applied"
    return json.load(open(path)) if os.path.exists(path) else None


def test_engine_firewall(firewall_args):
    check = run_module("engine_firewall", firewall_args, check=True, diff=True)
    assert check["changed"] and check["rules"] == "missing"
    assert not os.path.exists(firewall_args["dropin"]) and os.path.exists(firewall_args["absent"][0])
    first = run_module("engine_firewall", firewall_args)
    assert first["changed"] and first["rules"] == "missing"
    assert applied(firewall_args) == {"allowed_networks": firewall_args["allowed_networks"]}
    assert "ExecStartPre=%s --settings %s\n" % (firewall_args["program"], firewall_args["settings_path"]) \
        in open(firewall_args["dropin"]).read()
    assert not os.path.exists(firewall_args["absent"][0])
    assert sorted(first["files"]) == sorted([firewall_args["settings_path"], firewall_args["dropin"]]
                                            + firewall_args["absent"])
    again = run_module("engine_firewall", firewall_args)
    assert not again["changed"] and again["rules"] == "in place"
    # New networks: check mode asks the program with them, and applies nothing.
    wider = dict(firewall_args, allowed_networks=["10.0.0.0/8"])
    check = run_module("engine_firewall", wider, check=True)
    assert check["changed"] and check["rules"] == "missing"
    assert applied(firewall_args) == {"allowed_networks": firewall_args["allowed_networks"]}
    assert run_module("engine_firewall", wider)["changed"]
    assert applied(firewall_args) == {"allowed_networks": ["10.0.0.0/8"]}


def docker(*args):
    return subprocess.run(["docker"] + list(args), capture_output=True, text=True, check=False)


@pytest.fixture(name="archive")
def fixture_archive(tmp_path):
    """A docker save archive of a one-file image of its own; the image itself removed."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        info = tarfile.TarInfo("hello")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"hi\n"))
    subprocess.run(["docker", "import", "-", PRELOAD], input=data.getvalue(), check=True, capture_output=True)
    path = str(tmp_path / "preload.tar")
    assert docker("save", "--output", path, PRELOAD).returncode == 0
    docker("rmi", PRELOAD)
    yield path
    docker("rmi", PRELOAD)


def test_engine_preload(archive, tmp_path):
    args = {"images": [{"image": PRELOAD, "archive": archive}], "dir": str(tmp_path / "preload")}
    plan = run_module("engine_preload", args, check=True)
    assert plan["changed"] and not os.path.exists(args["dir"])
    plan = run_module("engine_preload", args)
    want = os.path.join(args["dir"], "afa-test_afa-preload_1.tar")
    assert plan["missing"] == [dict(args["images"][0], file=want)]
    assert os.stat(args["dir"]).st_mode & 0o777 == 0o700
    # The role copies the archive here (ansible.builtin.copy); the test does it itself.
    with open(archive, "rb") as src, open(want, "wb") as dst:
        dst.write(src.read())
    load = dict(args, images=plan["missing"], step="load")
    assert run_module("engine_preload", load, check=True)["changed"] and docker("image", "inspect", PRELOAD).returncode
    loaded = run_module("engine_preload", load)
    assert loaded["changed"] and docker("image", "inspect", PRELOAD).returncode == 0
    assert not os.path.exists(want)
    again = run_module("engine_preload", args)
    assert not again["changed"] and again["missing"] == []
    # An archive that holds another image: loaded, and still missing, so the module fails.
    other = dict(image="afa-test/afa-preload:other", archive=archive)
    with open(archive, "rb") as src, open(os.path.join(args["dir"], "afa-test_afa-preload_other.tar"), "wb") as dst:
        dst.write(src.read())
    failed = run_module("engine_preload", dict(args, images=[other], step="load"))
    assert failed["failed"] and "still missing" in failed["msg"] and "afa-test/afa-preload:other" in failed["msg"]
