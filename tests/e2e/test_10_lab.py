"""The lab fleet as made by `labctl up`: fresh VMs that Ansible reaches."""

from __future__ import annotations

import re
import subprocess

from conftest import REPO
from lab_support import ansible_adhoc, lab, lab_host, labctl, vm  # noqa: F401  # pylint: disable=unused-import


def test_both_vms_answer_ansible_over_ssh(lab):
    proc = ansible_adhoc("fleet", "ansible.builtin.ping")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in ("vm1", "vm2"):
        assert re.search(r"^%s \| SUCCESS" % name, proc.stdout, re.M), proc.stdout


def test_ssh_is_published_on_loopback_only(lab):
    out = subprocess.run(["docker", "port", "appfleet-vm1", "22"], capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["127.0.0.1:2201"]


def test_systemd_is_running(vm):
    assert vm.run("systemctl is-system-running").stdout.strip() == "running"
    assert vm.service("ssh").is_running


def test_vm_is_fresh_without_docker(vm):
    assert vm.exists("python3") and vm.exists("sudo")
    assert not vm.exists("docker")
    assert not vm.exists("dockerd")
    assert not vm.package("docker.io").is_installed


def test_git_ls_remote_from_vm1_with_deploy_key(lab):
    key = "/root/.ssh/lab_deploy_key"
    copy = ansible_adhoc("vm1", "ansible.builtin.copy",
                         "src=%s dest=%s mode=0600" % (REPO / ".lab/ssh/deploy_key", key))
    assert copy.returncode == 0, copy.stdout
    vm1 = lab_host("vm1")
    try:
        res = vm1.run("GIT_SSH_COMMAND='ssh -i %s -o IdentitiesOnly=yes -o StrictHostKeyChecking=no' "
                      "git ls-remote git@git:/srv/git/web.git refs/heads/main" % key)
    finally:
        vm1.run("rm -f %s" % key)
    assert res.rc == 0, res.stderr
    head = subprocess.run(["git", "-C", str(REPO / ".lab/work/web"), "rev-parse", "HEAD"],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert res.stdout.split() == [head, "refs/heads/main"]


def test_git_host_gives_the_deploy_key_no_shell(lab):
    # git-shell: the deploy key may fetch and push, not run commands on the git host.
    res = subprocess.run(["ssh", "-F", str(REPO / ".lab/ssh/config"), "-i",
                          str(REPO / ".lab/ssh/deploy_key"), "git@git", "id"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode != 0
    assert "unrecognized command 'id'" in res.stderr


def test_second_up_reuses_the_base_image(lab):
    image = "appfleet-lab/debian:bookworm"
    before = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", image],
                            capture_output=True, text=True, check=True).stdout
    again = labctl("up")
    assert again.returncode == 0, again.stderr
    assert "base image %s present, reused" % image in again.stderr
    assert "created" not in again.stderr
    after = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", image],
                           capture_output=True, text=True, check=True).stdout
    assert before == after
    assert (REPO / ".lab/images/debian-bookworm.tar").stat().st_size > 50_000_000
