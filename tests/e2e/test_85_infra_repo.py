"""The collection as another infrastructure repository uses it.

An infrastructure directory of its own, made here: the built tarball installed
with ``ansible-galaxy collection install -r collections/requirements.yml``
(nothing of this checkout on its collections path), its own group name
(``webfarm``, no ``fleet``), its own play with the roles under its own tags and
a task of its own, relative deploy-key and TLS paths (read from its inventory
directory), and a variable named ``apps`` in its inventory. Against the lab
fleet, which the earlier test files converged.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import ssl
import subprocess
import textwrap

import pytest
import yaml

from conftest import BIN, REPO, ansible_env
import lab_support
from lab_support import http_get, lab  # noqa: F401  # pylint: disable=unused-import

VMS = ("vm1", "vm2")
APPS = ("web", "api")
STATE = lab_support.lab_tool.STATE
HTTPS_PORTS = {"vm%d" % i: lab_support.lab_tool.vm_spec(i)["https_port"] for i in (1, 2)}
# The task of the infrastructure repository's own, under its own tag.
OWN_FILE = "/etc/acme-infra-marker"

PLAY = """\
---
- name: Our Docker hosts
  hosts: webfarm
  become: true
  gather_facts: true
  roles:
    - role: appfleet.docker.engine
      tags: [engine]
    - role: appfleet.docker.proxy
      tags: [proxy]
    - role: appfleet.docker.apps
      tags: [apps]
  tasks:
    - name: Write our own marker
      ansible.builtin.copy:
        content: "managed by acme infra\\n"
        dest: %s
        mode: "0644"
      tags: [logrotate]
""" % OWN_FILE


def lab_group_vars():
    """The lab inventory's group variables, as data (their Jinja left as it is)."""
    return yaml.safe_load((REPO / "inventories" / "lab" / "group_vars" / "fleet.yml").read_text())


def make_cert(directory):
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
                    "-subj", "/CN=api.lab.test", "-addext", "subjectAltName=DNS:api.lab.test",
                    "-keyout", str(directory / "api.key"), "-out", str(directory / "api.crt")],
                   check=True, capture_output=True, timeout=60)
    pem = (directory / "api.crt").read_text()
    return ssl.PEM_cert_to_DER_cert(pem)


@pytest.fixture(scope="module")
def infra(lab, tmp_path_factory):  # noqa: F811  # pylint: disable=redefined-outer-name,unused-argument
    root = tmp_path_factory.mktemp("acme-infra")
    dist = root / "dist"
    build = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "build", "--force",
                            "--output-path", str(dist)], cwd=REPO, env=ansible_env(),
                           capture_output=True, text=True, check=False, timeout=300)
    assert build.returncode == 0, build.stdout + build.stderr
    tarball = next(dist.glob("appfleet-docker-*.tar.gz"))

    (root / "collections").mkdir()
    (root / "collections" / "requirements.yml").write_text(
        yaml.safe_dump({"collections": [{"name": str(tarball), "type": "file"}]}))
    (root / "ansible.cfg").write_text(textwrap.dedent("""\
        [defaults]
        collections_path = ./collections
        inventory = inventory/hosts.yml
        interpreter_python = auto_silent
        retry_files_enabled = False

        [ssh_connection]
        pipelining = True
        """))
    env = infra_env(root)
    inst = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "install", "--offline",
                           "-r", "collections/requirements.yml", "-p", "./collections"],
                          cwd=root, env=env, capture_output=True, text=True, check=False, timeout=300)
    assert inst.returncode == 0, inst.stdout + inst.stderr
    assert (root / "collections" / "ansible_collections" / "appfleet" / "docker" / "MANIFEST.json").is_file()

    inv = root / "inventory"
    (inv / "group_vars").mkdir(parents=True)
    (inv / "keys").mkdir()
    shutil.copy(STATE / "ssh" / "deploy_key", inv / "keys" / "deploy_key")
    cert = make_cert(inv / "tls")
    fleet = json.loads((STATE / "fleet.json").read_text())["vms"]
    (inv / "hosts.yml").write_text(yaml.safe_dump({"webfarm": {"hosts": {
        vm["hostname"]: {"ansible_port": vm["ssh_port"]} for vm in fleet if vm["hostname"] in VMS}}}))

    gvars = lab_group_vars()
    # The lab's own files by absolute path; the repository's own files (deploy
    # key, certificate) by paths relative to its inventory directory.
    state = str(STATE)
    gvars["lab_state_dir"] = state
    for entry in gvars["appfleet_apps"]:
        entry["source"]["key_file"] = "keys/deploy_key"
        if entry["name"] == "api":
            entry["proxy"]["tls"] = {"certificate": "tls/api.crt", "key": "tls/api.key"}
    # A variable with a generic name: none of the collection's roles reads it.
    gvars["apps"] = "not-an-app"
    (inv / "group_vars" / "webfarm.yml").write_text(yaml.safe_dump(gvars, sort_keys=False))
    (root / "site.yml").write_text(PLAY)
    return {"root": root, "cert": cert}


def infra_env(root):
    env = ansible_env(ANSIBLE_CONFIG=str(root / "ansible.cfg"))
    # Only the installed collection: nothing of this checkout's .collections link.
    env.pop("ANSIBLE_COLLECTIONS_PATH", None)
    env.pop("ANSIBLE_COLLECTIONS_PATHS", None)
    return env


def play(infra, *args, check=True):  # pylint: disable=redefined-outer-name
    root = infra["root"]
    proc = subprocess.run([str(BIN / "ansible-playbook")] + list(args), cwd=root, env=infra_env(root),
                          capture_output=True, text=True, check=False, timeout=1800)
    if check:
        assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-3000:]
    return proc


def recap(output):
    rows = re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", output, re.M)
    return {host: int(changed) for host, changed, _unr, _fail in rows}


def task_names(output):
    return re.findall(r"^TASK \[(.+?)\] \*", output, re.M)


def tls_get(vm, path="/health"):
    """(served certificate DER, HTTP status) of api over HTTPS, SNI api.lab.test."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", HTTPS_PORTS[vm]), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="api.lab.test") as tls:
            cert = tls.getpeercert(binary_form=True)
            tls.sendall(("GET %s HTTP/1.0\r\nHost: api.lab.test\r\n\r\n" % path).encode())
            head = tls.recv(64).decode(errors="replace")
    return cert, int(head.split()[1])


def test_its_own_play_serves_both_apps_then_changes_nothing(infra):  # pylint: disable=redefined-outer-name
    first = play(infra, "site.yml")
    # The role read neither the group name fleet nor the variable apps: both apps deployed.
    for app in APPS:
        assert "Run the container of %s" % app in first.stdout, first.stdout[-4000:]
    for vm in VMS:
        assert http_get(vm, "web")[0] == 200
        # api now has TLS from the relative paths: its certificate on both VMs.
        assert tls_get(vm) == (infra["cert"], 200), vm
    second = play(infra, "site.yml")
    assert recap(second.stdout) == {"vm1": 0, "vm2": 0}, second.stdout[-6000:]


def test_its_own_tag_runs_only_its_own_task(infra):  # pylint: disable=redefined-outer-name
    out = play(infra, "site.yml", "--tags", "logrotate").stdout
    ours = [t for t in task_names(out) if t.startswith("appfleet.docker.")]
    # Ansible checks each role's arguments under every tag; nothing else of the collection runs.
    assert all("Validating arguments" in t for t in ours), ours
    assert "Write our own marker" in task_names(out)


def test_skip_tags_apps_deploys_nothing(infra):  # pylint: disable=redefined-outer-name
    out = play(infra, "site.yml", "--skip-tags", "apps").stdout
    apps_tasks = [t for t in task_names(out) if t.startswith("appfleet.docker.apps :")
                  and "Validating arguments" not in t]
    assert apps_tasks == [], apps_tasks
    assert recap(out) == {"vm1": 0, "vm2": 0}, out[-4000:]


def test_status_playbook_by_fqcn_with_its_own_group(infra):  # pylint: disable=redefined-outer-name
    out = play(infra, "appfleet.docker.status", "-e", "appfleet_group=webfarm").stdout
    for name in VMS + APPS:
        assert name in out, out[-4000:]
    assert "no hosts matched" not in out
