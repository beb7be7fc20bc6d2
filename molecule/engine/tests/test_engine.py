"""Observable state of a host after appfleet.docker.engine (distro source)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

IMAGE = "appfleet-lab/debian:bookworm"


def docker_json(host, *args):
    return json.loads(host.check_output("docker " + " ".join(args)))


def vm_ip(host):
    name = host.backend.get_hostname()
    out = subprocess.run(["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
                          name], capture_output=True, text=True, check=True, timeout=30).stdout
    return out.split()[0]


def test_engine_installed_enabled_running(host):
    assert host.package("docker.io").is_installed
    assert host.package("python3-docker").is_installed
    assert host.run("python3 -c 'import docker'").rc == 0
    docker = host.service("docker")
    assert docker.is_running and docker.is_enabled


def test_daemon_json_is_the_merged_config(host):
    config = json.loads(host.file("/etc/docker/daemon.json").content_string)
    assert config == {
        "labels": ["appfleet.lab=molecule"],
        "live-restore": True,
        "log-driver": "json-file",
        "log-opts": {"max-file": "3", "max-size": "1m"},
    }
    assert host.file("/etc/docker/daemon.json").mode == 0o644


def test_docker_info_shows_live_restore_and_json_file_logs(host):
    info = docker_json(host, "info", "--format", "'{{json .}}'")
    assert info["LiveRestoreEnabled"] is True
    assert info["LoggingDriver"] == "json-file"
    assert "appfleet.lab=molecule" in info["Labels"]


def test_socket_is_root_docker_0660_and_no_tcp_listener(host):
    sock = host.file("/run/docker.sock")
    assert sock.is_socket
    assert sock.user == "root" and sock.group == "docker" and sock.mode == 0o660
    listening = host.check_output("ss -Hltn")
    for port in (2375, 2376):
        assert ":%d " % port not in listening
    assert "docker" in host.user("deploy").groups


def test_preloaded_image_present(host):
    assert host.run("docker image inspect %s" % IMAGE).rc == 0
    # The archive was copied into a root-only directory and removed after the load.
    preload = host.file("/var/lib/appfleet/preload")
    assert preload.is_directory and preload.user == "root" and preload.mode == 0o700
    assert not host.file("/var/lib/appfleet/preload/appfleet-lab_debian_bookworm.tar").exists


def test_version_is_not_held_without_a_pin(host):
    assert "hold" not in host.check_output("dpkg --get-selections docker.io")


def test_checker_refuses_bad_daemon_json(host):
    checker = "/usr/local/sbin/appfleet-dockerd-config-check"
    before = host.file("/etc/docker/daemon.json").content_string
    pid = host.check_output("systemctl show -p MainPID --value docker")
    cases = {
        '{"log-opts": {"max-file": 3}}': "log-opts",
        '{"no-such-option": true}': "unknown dockerd option",
        '{"live-restore": "yes"}': "live-restore",
        '{"log-driver": "json-file",': "not valid JSON",
        '{"hosts": ["tcp://0.0.0.0:2375"]}': "TCP",
    }
    for text, message in cases.items():
        host.run("printf '%%s' '%s' > /tmp/afc-daemon.json" % text)
        res = host.run("%s /tmp/afc-daemon.json" % checker)
        assert res.rc == 1 and message in res.stderr, (text, res.stderr)
    assert host.run("%s /etc/docker/daemon.json" % checker).rc == 0
    # An option value only dockerd itself can judge: refused where the engine
    # has --validate (Docker >= 23, Debian 13); Debian 12's 20.10 lacks it.
    host.run("""printf '%s' '{"max-concurrent-downloads": -1}' > /tmp/afc-daemon.json""")
    res = host.run("%s /tmp/afc-daemon.json" % checker)
    if "--validate" in host.run("dockerd --help").stdout:
        assert res.rc == 1 and "dockerd --validate refused" in res.stderr, res.stderr
    else:
        assert res.rc == 0
    assert host.file("/etc/docker/daemon.json").content_string == before
    assert host.check_output("systemctl show -p MainPID --value docker") == pid


def test_docker_user_rules_in_place(host):
    rules = host.check_output("iptables -S DOCKER-USER")
    assert "-A DOCKER-USER -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN" in rules
    assert "-A DOCKER-USER -s 127.0.0.0/8 -j RETURN" in rules
    assert "-A DOCKER-USER -s 192.0.2.0/24 -j RETURN" in rules
    assert "-A DOCKER-USER -o docker0 -j DROP" in rules
    assert host.run("/usr/local/sbin/appfleet-docker-user --check").rc == 0
    assert host.run("iptables -C FORWARD -j DOCKER-USER").rc == 0


def start_web(host):
    host.run("docker rm -f afc-web")
    host.check_output("docker run -d --name afc-web -p 8080:8080 %s python3 -m http.server 8080 --directory /etc"
                      % IMAGE)
    for _attempt in range(30):
        if host.run("python3 -c \"import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/hostname', timeout=2)\"").rc == 0:
            return
        time.sleep(1)
    pytest.fail("the test web container did not answer on 127.0.0.1:8080 inside the VM")


def reachable_from_controller(ip, port):
    try:
        with urllib.request.urlopen("http://%s:%d/hostname" % (ip, port), timeout=3) as resp:
            return resp.status == 200
    except OSError:
        return False


def test_published_port_only_reachable_from_allowed_networks(host):
    start_web(host)
    ip = vm_ip(host)
    # Control: the controller does reach the VM itself (sshd).
    with socket.create_connection((ip, 22), timeout=5):
        pass
    # Inside the VM, through loopback: allowed. From the controller (the
    # lab bridge, not in engine_allowed_networks): dropped by DOCKER-USER.
    assert not reachable_from_controller(ip, 8080)
    # Outbound traffic of containers still works (to the VM's sshd here).
    probe = host.run("docker run --rm %s python3 -c \"import socket; socket.create_connection(('%s', 22), timeout=5)\""
                     % (IMAGE, ip))
    assert probe.rc == 0, probe.stderr


def test_rules_survive_a_dockerd_restart_and_containers_live_on(host):
    host.run("docker rm -f afc-sleeper")
    cid = host.check_output("docker run -d --name afc-sleeper %s sleep infinity" % IMAGE)
    started = host.check_output("docker inspect -f '{{.State.StartedAt}}' afc-sleeper")
    host.check_output("systemctl restart docker")
    for _attempt in range(30):
        if host.run("/usr/local/sbin/appfleet-docker-user --check").rc == 0:
            break
        time.sleep(1)
    assert host.run("/usr/local/sbin/appfleet-docker-user --check").rc == 0
    assert "-o docker0 -j DROP" in host.check_output("iptables -S DOCKER-USER")
    assert host.check_output("docker inspect -f '{{.Id}} {{.State.StartedAt}}' afc-sleeper") == "%s %s" % (cid, started)
    assert not reachable_from_controller(vm_ip(host), 8080)


def test_container_logs_stay_bounded(host):
    host.run("docker rm -f afc-chatty")
    host.check_output("docker run -d --name afc-chatty %s sh -c 'yes appfleet-log-line-padding-padding-padding'"
                      % IMAGE)
    logpath = host.check_output("docker inspect -f '{{.LogPath}}' afc-chatty")
    # max-size 1m, max-file 3: wait (bounded) until the logs have rotated twice.
    for _attempt in range(90):
        if host.file(logpath + ".2").exists:
            break
        time.sleep(1)
    assert host.file(logpath + ".2").exists
    time.sleep(2)
    total = int(host.check_output("du -cb %s* | tail -1 | cut -f1" % logpath))
    host.run("docker rm -f afc-chatty")
    assert total <= 3 * 1024 * 1024 + 256 * 1024, total


def test_reload_keeps_running_containers(host):
    """A reloadable option change (labels) through the role: SIGHUP, not restart."""
    host.run("docker rm -f afc-sleeper")
    cid = host.check_output("docker run -d --name afc-sleeper %s sleep infinity" % IMAGE)
    started = host.check_output("docker inspect -f '{{.State.StartedAt}}' afc-sleeper")
    pid = host.check_output("systemctl show -p MainPID --value docker")
    name = host.backend.get_hostname()
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    proc = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
         "-i", os.environ["MOLECULE_INVENTORY_FILE"], "--limit", name,
         "-e", json.dumps({"engine_daemon_options": {"log-opts": {"max-size": "1m"},
                                                     "labels": ["appfleet.lab=reloaded"]}}),
         os.path.join(os.environ["MOLECULE_SCENARIO_DIRECTORY"], "converge.yml")],
        capture_output=True, text=True, timeout=600, env=env, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "RUNNING HANDLER [appfleet.docker.engine : Reload docker]" in proc.stdout
    assert "Restart docker" not in proc.stdout
    info = docker_json(host, "info", "--format", "'{{json .Labels}}'")
    assert "appfleet.lab=reloaded" in info
    assert host.check_output("systemctl show -p MainPID --value docker") == pid
    assert host.check_output("docker inspect -f '{{.Id}} {{.State.StartedAt}}' afc-sleeper") == "%s %s" % (cid, started)
