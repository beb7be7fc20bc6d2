"""The lab fleet as made by `labctl up`: fresh VMs that look like a Debian cloud
image as cloud-init leaves it, reached by Ansible with checked host keys."""

from __future__ import annotations

import json
import re
import subprocess

from conftest import REPO
from lab_support import SSH_CONFIG, SUITES, VMS, ansible_adhoc, lab, lab_host, labctl, vm  # noqa: F401  # pylint: disable=unused-import

KNOWN_HOSTS = REPO / ".lab" / "ssh" / "known_hosts"


def ssh(user, name, *command, key=None):
    cmd = ["ssh", "-F", str(SSH_CONFIG), "-o", "BatchMode=yes", "-l", user]
    if key:
        cmd += ["-i", str(key)]
    return subprocess.run(cmd + [name] + list(command), capture_output=True, text=True,
                          timeout=60, check=False)


def test_both_vms_answer_ansible_over_ssh_as_the_initial_user(lab):
    proc = ansible_adhoc("fleet", "ansible.builtin.ping")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in VMS:
        assert re.search(r"^%s \| SUCCESS" % name, proc.stdout, re.M), proc.stdout


def test_the_inventory_lists_the_fleet_labctl_made(lab):
    fleet = json.loads(labctl("fleet").stdout)
    assert [vm["hostname"] for vm in fleet] == list(VMS)
    assert [vm["suite"] for vm in fleet] == list(SUITES)
    proc = subprocess.run([str(REPO / "inventories" / "lab" / "hosts.py"), "--list"],
                          capture_output=True, text=True, check=True)
    inventory = json.loads(proc.stdout)
    assert inventory["fleet"]["hosts"] == list(VMS)
    assert inventory["_meta"]["hostvars"]["vm2"]["ansible_port"] == 2202


def test_ssh_is_published_on_loopback_only(lab):
    out = subprocess.run(["docker", "port", "appfleet-vm1", "22"], capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["127.0.0.1:2201"]


def test_systemd_is_running(vm):
    assert vm.run("systemctl is-system-running").stdout.strip() == "running"
    assert vm.service("ssh").is_running


def test_vm_runs_the_debian_release_of_its_suite(lab):
    for name, suite in zip(VMS, SUITES):
        codename = lab_host(name).check_output(". /etc/os-release && echo $VERSION_CODENAME")
        assert codename == suite


def test_vm_is_a_fresh_cloud_image(vm):
    """What the collection needs, its roles install: none of it is on a fresh VM."""
    assert vm.exists("python3") and vm.exists("sudo")
    for tool in ("git", "docker", "dockerd", "nginx"):
        assert not vm.exists(tool), tool
    for package in ("git", "docker.io", "nginx", "nginx-light"):
        assert not vm.package(package).is_installed, package
    assert vm.file("/etc/ssh/sshd_config.d/50-cloud-init.conf").contains("^PasswordAuthentication no")
    assert vm.file("/etc/sudoers.d/90-cloud-init-users").contains("^debian ALL=.*NOPASSWD:ALL")
    # As on a VM's kernel, not a container's (Docker gives those 0): ports below 1024 are root's.
    assert vm.file("/proc/sys/net/ipv4/ip_unprivileged_port_start").content_string.strip() == "1024"


def test_initial_user_logs_in_and_root_is_refused(lab):
    proc = ssh("debian", "vm1", "id", "-un")
    assert proc.returncode == 0 and proc.stdout.strip() == "debian", proc.stderr
    assert ssh("debian", "vm1", "sudo", "-n", "id", "-u").stdout.strip() == "0"
    # As cloud-init's disable_root: the key is accepted, the login is not.
    root = ssh("root", "vm1", "id")
    assert root.returncode == 142, (root.returncode, root.stdout, root.stderr)
    assert 'Please login as the user "debian"' in root.stdout
    assert "uid=0" not in root.stdout


def test_host_keys_are_recorded_and_checked(lab):
    lines = KNOWN_HOSTS.read_text().splitlines()
    for name in VMS:
        port = 2200 + int(name[2:])
        recorded = sorted(" ".join(ln.split()[1:3]) for ln in lines
                          if ln.startswith("[127.0.0.1]:%d " % port))
        actual = subprocess.run(["docker", "exec", "appfleet-" + name, "sh", "-c",
                                 "cat /etc/ssh/ssh_host_*_key.pub"], capture_output=True,
                                text=True, check=True).stdout.splitlines()
        assert recorded == sorted(" ".join(ln.split()[:2]) for ln in actual)
    # Ansible no longer turns host key checking off.
    cfg = (REPO / "ansible.cfg").read_text()
    assert "host_key_checking" not in cfg


def test_lab_network_has_ipv6(vm):
    addrs = vm.check_output("ip -6 -o addr show dev eth0 scope global")
    assert re.search(r"inet6 fd00:af1:1ab::[0-9a-f]+/64", addrs), addrs


def test_git_host_gives_the_deploy_key_no_shell(lab):
    # git-shell: the deploy key may fetch and push, not run commands on the git host.
    res = subprocess.run(["ssh", "-F", str(SSH_CONFIG), "-i",
                          str(REPO / ".lab/ssh/deploy_key"), "git@git", "id"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode != 0
    assert "unrecognized command 'id'" in res.stderr


def test_second_up_reuses_the_base_image(lab):
    images = ["appfleet-lab/debian:" + suite for suite in SUITES]
    before = [subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", image],
                             capture_output=True, text=True, check=True).stdout for image in images]
    again = labctl("up")
    assert again.returncode == 0, again.stderr
    for image in images:
        assert "base image %s present, reused" % image in again.stderr
    assert "created" not in again.stderr
    after = [subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", image],
                            capture_output=True, text=True, check=True).stdout for image in images]
    assert before == after
    assert (REPO / ".lab/images/debian-bookworm.tar").stat().st_size > 50_000_000
    # The same fleet: `up` without --vms/--suites keeps what the last `up` made.
    assert [vm["suite"] for vm in json.loads(labctl("fleet").stdout)] == list(SUITES)
