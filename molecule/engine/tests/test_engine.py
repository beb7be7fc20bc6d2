"""Observable state of a host after appfleet.docker.engine (distro source)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

IMAGE = "appfleet-lab/debian:bookworm"
NET = "afc-engine-net"
CHECKER = "/usr/local/sbin/appfleet-dockerd-config-check"
RULES = "/usr/local/sbin/appfleet-docker-user"
CHECKER_SETTINGS = "/etc/appfleet/engine/dockerd-config-check.json"
RULES_SETTINGS = "/etc/appfleet/engine/docker-user.json"

# An HTTP GET run inside another VM: exit 0 when the URL answers.
PROBE = ("import sys, urllib.request\n"
         "try:\n"
         "    urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2])).read()\n"
         "except OSError:\n"
         "    sys.exit(1)\n")
# A TCP connection run inside another VM: exit 0 when it opens.
CONNECT = ("import socket, sys\n"
           "socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10).close()\n")


def docker_json(host, *args):
    return json.loads(host.check_output("docker " + " ".join(args)))


def controller_docker(*args):
    """The engine of this machine, which runs the VM containers."""
    return subprocess.run(["docker"] + list(args), capture_output=True, text=True, check=True,
                          timeout=60).stdout


def addresses(name):
    """A VM's IPv4 on Docker's default bridge, and IPv4 and IPv6 on afc-engine-net."""
    nets = json.loads(controller_docker("inspect", "-f", "{{json .NetworkSettings.Networks}}", name))
    return {"bridge4": nets["bridge"]["IPAddress"], "net4": nets[NET]["IPAddress"],
            "net6": nets[NET]["GlobalIPv6Address"]}


def vm_ip(host):
    return addresses(host.backend.get_hostname())["bridge4"]


def peer_of(host):
    """The other VM of the scenario on afc-engine-net: a host that is not allowed."""
    me = host.backend.get_hostname()
    containers = json.loads(controller_docker("network", "inspect", "-f", "{{json .Containers}}", NET))
    peers = sorted(c["Name"] for c in containers.values() if c["Name"] != me)
    assert peers, "no other VM on %s" % NET
    return peers[0]


def url(ip, port):
    return "http://%s:%d/hostname" % ("[%s]" % ip if ":" in ip else ip, port)


def served_from_controller(ip, port, timeout=5):
    try:
        with urllib.request.urlopen(url(ip, port), timeout=timeout) as resp:
            return resp.status == 200
    except OSError:
        return False


def served_from_peer(peer, ip, port, timeout=5):
    proc = subprocess.run(["docker", "exec", peer, "python3", "-c", PROBE, url(ip, port), str(timeout)],
                          capture_output=True, text=True, timeout=120, check=False)
    return proc.returncode == 0


def eventually(probe, *args):
    """Positive checks are retried (slow machine); negative ones need no retry."""
    for _attempt in range(10):
        if probe(*args):
            return True
        time.sleep(2)
    return False


def daemon_ipv6_nat(host):
    """True where dockerd publishes ports over IPv6 by NAT (Debian 13 in this scenario)."""
    config = json.loads(host.file("/etc/docker/daemon.json").content_string)
    return bool(config.get("ipv6") and config.get("ip6tables"))


def run_converge(host, extra_vars):
    """converge.yml on this host with extra vars (the project's ansible.cfg
    prints results as YAML, wrapped: search in words())."""
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    return subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
         "-i", os.environ["MOLECULE_INVENTORY_FILE"], "--limit", host.backend.get_hostname(),
         "-e", json.dumps(extra_vars),
         os.path.join(os.environ["MOLECULE_SCENARIO_DIRECTORY"], "converge.yml")],
        capture_output=True, text=True, timeout=900, env=env, check=False)


def words(text):
    return re.sub(r"\s+", " ", text)


def dockerd_pid(host):
    return host.check_output("systemctl show -p MainPID --value docker")


def test_engine_installed_enabled_running(host):
    assert host.package("docker.io").is_installed
    assert host.package("python3-docker").is_installed
    assert host.run("python3 -c 'import docker'").rc == 0
    docker = host.service("docker")
    assert docker.is_running and docker.is_enabled


def test_daemon_json_is_the_merged_config(host):
    config = json.loads(host.file("/etc/docker/daemon.json").content_string)
    expected = {
        "labels": ["appfleet.lab=molecule"],
        "live-restore": True,
        "log-driver": "json-file",
        "log-opts": {"max-file": "3", "max-size": "1m"},
        # CIS Docker Benchmark 2.2, 2.14, 2.16: the role's defaults.
        "icc": False,
        "no-new-privileges": True,
        "userland-proxy": False,
    }
    expected.update(host.ansible.get_variables().get("converge_ipv6_daemon", {}))
    assert config == expected
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


def test_registry_ca_written_and_the_untrusted_one_gone(host):
    ca = host.file("/etc/docker/certs.d/registry.lab.test:5000/ca.crt")
    assert ca.exists and ca.user == "root" and ca.mode == 0o644
    assert ca.content_string.startswith("-----BEGIN CERTIFICATE-----\n")
    assert ca.content_string.endswith("-----END CERTIFICATE-----\n")
    assert not host.file("/etc/docker/certs.d/old-registry.lab.test").exists


def test_version_is_not_held_without_a_pin(host):
    assert "hold" not in host.check_output("dpkg --get-selections docker.io")


def test_checker_refuses_bad_daemon_json(host):
    before = host.file("/etc/docker/daemon.json").content_string
    pid = dockerd_pid(host)
    cases = {
        '{"log-opts": {"max-file": 3}}': "log-opts",
        '{"no-such-option": true}': "unknown dockerd option",
        '{"live-restore": "yes"}': "live-restore",
        '{"log-driver": "json-file",': "not valid JSON",
        '{"hosts": ["tcp://0.0.0.0:2375"]}': "TCP",
        # dockerd's reading of hosts: a scheme-less entry is TCP, spaces are trimmed.
        '{"hosts": ["fd://", "0.0.0.0:2375"]}': "reads it as 'tcp://0.0.0.0:2375'",
        '{"hosts": [" tcp://0.0.0.0:2375"]}': "TCP listener",
        '{"hosts": [2375]}': "option 'hosts' must be of type strlist",
        '{"log-driver": "journald", "log-opts": {"max-size": "10m"}}': "log-driver 'journald' refuses",
        # This unit runs dockerd -H fd://: any hosts would keep dockerd from starting.
        '{"hosts": ["unix:///var/run/docker.sock"]}': "conflicts with docker.service",
    }
    for text, message in cases.items():
        host.run("printf '%%s' '%s' > /tmp/afc-daemon.json" % text)
        res = host.run("%s /tmp/afc-daemon.json" % CHECKER)
        assert res.rc == 1 and message in res.stderr, (text, res.stderr)
    assert "-H fd://" in host.run("%s /tmp/afc-daemon.json" % CHECKER).stderr
    assert host.run("%s /etc/docker/daemon.json" % CHECKER).rc == 0
    # An option value only dockerd itself can judge: refused where the engine
    # has --validate (Docker >= 23, Debian 13); Debian 12's 20.10 lacks it.
    host.run("""printf '%s' '{"max-concurrent-downloads": -1}' > /tmp/afc-daemon.json""")
    res = host.run("%s /tmp/afc-daemon.json" % CHECKER)
    if "--validate" in host.run("dockerd --help").stdout:
        assert res.rc == 1 and "dockerd --validate refused" in res.stderr, res.stderr
    else:
        assert res.rc == 0
    assert host.file("/etc/docker/daemon.json").content_string == before
    assert dockerd_pid(host) == pid


@pytest.mark.parametrize("hosts, message", [
    (["unix:///var/run/docker.sock"], "cannot be set here: docker.service starts dockerd with"),
    (["fd://", "0.0.0.0:2375"], "gives dockerd a TCP listener: "),
])
def test_role_refuses_hosts_before_anything_changes(host, hosts, message):
    """The packaged unit passes -H fd://: any "hosts" is refused, and a TCP one first."""
    before = host.file("/etc/docker/daemon.json").content_string
    pid = dockerd_pid(host)
    proc = run_converge(host, {"converge_daemon_extra": {"hosts": hosts}})
    # Failures may go to stderr (display_failed_stderr).
    out = words(proc.stdout + proc.stderr)
    assert proc.returncode != 0, out[-3000:]
    assert message in out, out[-3000:]
    assert ("-H fd://" if hosts[0].startswith("unix") else "tcp://0.0.0.0:2375") in out
    assert "changed=0" in words(proc.stdout).split("PLAY RECAP")[-1]
    assert host.file("/etc/docker/daemon.json").content_string == before
    assert dockerd_pid(host) == pid


def test_programs_read_their_settings_as_the_role_wrote_them(host):
    """The programs are the role's Python files; their settings are JSON data."""
    for program in (CHECKER, RULES):
        assert host.file(program).mode == 0o755
        assert host.file(program).content_string.startswith("#!/usr/bin/python3\n")
    settings = json.loads(host.file(RULES_SETTINGS).content_string)
    assert "192.0.2.0/24" in settings["allowed_networks"] and "::1/128" in settings["allowed_networks"]
    checker = json.loads(host.file(CHECKER_SETTINGS).content_string)
    assert checker["allow_tcp"] is False and checker["daemon_keys"]["live-restore"] == "boolean"
    assert host.file(RULES_SETTINGS).user == "root" and host.file(RULES_SETTINGS).mode == 0o644
    unit = host.check_output("systemctl show -p ExecStartPre docker")
    assert "argv[]=%s --settings %s " % (RULES, RULES_SETTINGS) in unit
    assert host.run("%s --settings %s --check" % (RULES, RULES_SETTINGS)).rc == 0
    assert host.run("%s --settings %s /etc/docker/daemon.json" % (CHECKER, CHECKER_SETTINGS)).rc == 0
    # Without its settings the checker refuses: a validate that cannot check never passes.
    res = host.run("%s --settings /nonexistent.json /etc/docker/daemon.json" % CHECKER)
    assert res.rc == 2 and "cannot read the checker's settings" in res.stderr


def test_docker_user_rules_in_place(host):
    rules = host.check_output("iptables -S DOCKER-USER")
    assert "-A DOCKER-USER -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN" in rules
    assert "-A DOCKER-USER -s 127.0.0.0/8 -j RETURN" in rules
    assert "-A DOCKER-USER -s 192.0.2.0/24 -j RETURN" in rules
    assert "-A DOCKER-USER -o docker0 -j DROP" in rules
    assert "::1" not in rules
    rules6 = host.check_output("ip6tables -S DOCKER-USER")
    assert "-A DOCKER-USER -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN" in rules6
    assert "-A DOCKER-USER -s ::1/128 -j RETURN" in rules6
    assert "-A DOCKER-USER -s fd00:af1:e::1/128 -j RETURN" in rules6
    assert "-A DOCKER-USER -o docker0 -j DROP" in rules6
    assert "-A DOCKER-USER -o br-+ -j DROP" in rules6
    assert "192.0.2.0" not in rules6
    assert host.run("%s --check" % RULES).rc == 0
    assert host.run("iptables -C FORWARD -j DOCKER-USER").rc == 0
    assert host.run("ip6tables -C FORWARD -j DOCKER-USER").rc == 0


def start_web(host, name="afc-web", port=8080):
    """A container whose port is published without a host address (0.0.0.0 and
    [::]); it listens on IPv4 and IPv6 (where the container has IPv6)."""
    host.run("docker rm -f %s" % name)
    host.check_output("docker run -d --name %s -p %d:8080 %s python3 -m http.server 8080 --bind :: --directory /etc"
                      % (name, port, IMAGE))
    assert_served_on_loopback(host, port)


def assert_served_on_loopback(host, port=8080):
    """What nginx on the host does: 127.0.0.1:PORT (with userland-proxy off, by NAT)."""
    for _attempt in range(30):
        if host.run("python3 -c \"import urllib.request; urllib.request.urlopen('http://127.0.0.1:%d/hostname', timeout=2)\""
                    % port).rc == 0:
            return
        time.sleep(1)
    pytest.fail("the test web container did not answer on 127.0.0.1:%d inside the VM" % port)


def assert_paths_work(host, me, peer):
    """Controls for the refusals below: the VM answers on each address (sshd),
    from the controller and from the other VM."""
    for ip in me.values():
        with socket.create_connection((ip, 22), timeout=10):
            pass
        proc = subprocess.run(["docker", "exec", peer, "python3", "-c", CONNECT, ip, "22"],
                              capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == 0, (peer, ip, proc.stderr)


def assert_only_allowed_sources_served(host, me, peer):
    # The controller on Docker's default bridge (172.17.0.1): not allowed.
    assert not served_from_controller(me["bridge4"], 8080)
    # The controller on afc-engine-net (its gateway, allowed by converge.yml).
    assert eventually(served_from_controller, me["net4"], 8080)
    # The other VM, on either network, over IPv4: not allowed.
    assert not served_from_peer(peer, me["net4"], 8080)
    assert not served_from_peer(peer, me["bridge4"], 8080)
    # Over IPv6: the other VM never.
    assert not served_from_peer(peer, me["net6"], 8080)
    if daemon_ipv6_nat(host):
        # dockerd NATs [::]:8080 to the container's IPv6 address: the
        # ip6tables DOCKER-USER rules let the allowed controller through.
        assert eventually(served_from_controller, me["net6"], 8080)
    else:
        # No IPv6 in dockerd and no docker-proxy: nothing relays [::]:8080,
        # not even for an allowed source.
        assert not served_from_controller(me["net6"], 8080)


def test_published_port_only_reachable_from_allowed_networks(host):
    start_web(host)
    me = addresses(host.backend.get_hostname())
    peer = peer_of(host)
    assert_paths_work(host, me, peer)
    assert_only_allowed_sources_served(host, me, peer)
    # Outbound traffic of containers still works (to the VM's sshd here).
    probe = host.run("docker run --rm %s python3 -c \"import socket; socket.create_connection(('%s', 22), timeout=5)\""
                     % (IMAGE, me["bridge4"]))
    assert probe.rc == 0, probe.stderr


def test_cis_daemon_defaults_reach_the_containers(host):
    start_web(host)
    # 2.16: no docker-proxy for the published port; 127.0.0.1 answered (start_web) by NAT.
    assert host.run("pgrep -x docker-proxy").rc == 1
    # 2.14: processes in new containers cannot gain privileges.
    status = host.check_output("docker run --rm %s grep NoNewPrivs /proc/self/status" % IMAGE)
    assert status.split() == ["NoNewPrivs:", "1"]
    # 2.2: no traffic between containers on the default bridge. Control: the
    # VM itself reaches the web container's address.
    assert host.check_output("docker network inspect bridge -f "
                             "'{{index .Options \"com.docker.network.bridge.enable_icc\"}}'") == "false"
    web_ip = host.check_output("docker inspect -f '{{.NetworkSettings.IPAddress}}' afc-web")
    assert host.run("python3 -c \"import urllib.request; urllib.request.urlopen('http://%s:8080/hostname', timeout=5)\""
                    % web_ip).rc == 0
    probe = host.run("docker run --rm %s python3 -c \"import urllib.request; "
                     "urllib.request.urlopen('http://%s:8080/hostname', timeout=5)\"" % (IMAGE, web_ip))
    assert probe.rc != 0


def test_rules_survive_a_dockerd_restart_and_containers_live_on(host):
    start_web(host)
    host.run("docker rm -f afc-sleeper")
    cid = host.check_output("docker run -d --name afc-sleeper %s sleep infinity" % IMAGE)
    started = host.check_output("docker inspect -f '{{.State.StartedAt}}' afc-sleeper")
    host.check_output("systemctl restart docker")
    for _attempt in range(30):
        if host.run("%s --check" % RULES).rc == 0:
            break
        time.sleep(1)
    assert host.run("%s --check" % RULES).rc == 0
    assert "-o docker0 -j DROP" in host.check_output("iptables -S DOCKER-USER")
    assert "-o docker0 -j DROP" in host.check_output("ip6tables -S DOCKER-USER")
    assert host.check_output("docker inspect -f '{{.Id}} {{.State.StartedAt}}' afc-sleeper") == "%s %s" % (cid, started)
    # The published port (restored by live-restore) is as closed as before.
    assert_served_on_loopback(host)
    assert_only_allowed_sources_served(host, addresses(host.backend.get_hostname()), peer_of(host))


def unit_props(host, unit, *names):
    out = host.check_output("systemctl show %s %s" % (unit, " ".join("-p " + name for name in names)))
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_rules_in_place_before_dockerd_starts(host):
    """As at boot: no DOCKER-USER chain and dockerd stopped; starting docker.service
    runs the rules program first (ExecStartPre), which makes the chain before
    dockerd's main process starts (dockerd keeps it). No unit of earlier versions."""
    assert not host.file("/etc/systemd/system/appfleet-docker-user.service").exists
    host.check_output("systemctl stop docker")
    try:
        for tool in ("iptables", "ip6tables"):
            host.run("%s -w 10 -D FORWARD -j DOCKER-USER" % tool)
            host.run("%s -w 10 -F DOCKER-USER" % tool)
            host.run("%s -w 10 -X DOCKER-USER" % tool)
            assert host.run("%s -w 10 -S DOCKER-USER" % tool).rc != 0, tool
    finally:
        host.check_output("systemctl start docker")
    # dockerd itself makes an empty chain: the rules are the program's.
    assert host.run("%s --check" % RULES).rc == 0
    assert_served_on_loopback(host)
    assert_only_allowed_sources_served(host, addresses(host.backend.get_hostname()), peer_of(host))


def test_dockerd_does_not_start_while_the_rules_fail(host):
    """Fail closed: a rules run that fails (here: its settings missing) fails the
    start of dockerd, retried by docker.service's Restart=on-failure; with the
    settings back, dockerd starts with the rules in place."""
    host.check_output("mv %s %s.aside" % (RULES_SETTINGS, RULES_SETTINGS))
    try:
        assert host.run("systemctl restart docker").rc != 0
        props = unit_props(host, "docker", "ActiveState", "NRestarts")
        assert props["ActiveState"] != "active", props
        assert host.run("docker info").rc != 0
    finally:
        host.check_output("mv %s.aside %s" % (RULES_SETTINGS, RULES_SETTINGS))
        host.run("systemctl reset-failed docker docker.socket")
        host.check_output("systemctl start docker")
    assert unit_props(host, "docker", "ActiveState")["ActiveState"] == "active"
    assert host.run("%s --check" % RULES).rc == 0
    assert_served_on_loopback(host)


def test_container_logs_stay_bounded(host):
    host.run("docker rm -f afc-chatty")
    # 60000 lines (about 8 MB of json-file log, past 3 files of 1 MB), then quiet: a
    # bounded amount of work for dockerd's logger (an endless `yes` kept both cores busy
    # until the container was removed).
    host.check_output("docker run -d --name afc-chatty %s sh -c "
                      "'yes appfleet-log-line-padding-padding-padding | head -n 60000; exec sleep 600'" % IMAGE)
    logpath = host.check_output("docker inspect -f '{{.LogPath}}' afc-chatty")
    # max-size 1m, max-file 3: wait (bounded in time: on a loaded machine each look is an
    # Ansible call of seconds) until the logs have rotated twice.
    deadline = time.monotonic() + 300
    while not host.file(logpath + ".2").exists and time.monotonic() < deadline:
        time.sleep(1)
    # What there is to see when it did not rotate: the container's state and the log files.
    seen = host.run("docker inspect -f '{{.State.Status}} exit={{.State.ExitCode}}' afc-chatty; ls -l %s*"
                    % logpath)
    assert host.file(logpath + ".2").exists, seen.stdout + seen.stderr
    time.sleep(2)
    total = int(host.check_output("du -cb %s* | tail -1 | cut -f1" % logpath))
    host.run("docker rm -f afc-chatty")
    assert total <= 3 * 1024 * 1024 + 256 * 1024, total


def test_reload_keeps_running_containers(host):
    """A reloadable option change (labels) through the role: SIGHUP, not restart."""
    host.run("docker rm -f afc-sleeper")
    cid = host.check_output("docker run -d --name afc-sleeper %s sleep infinity" % IMAGE)
    started = host.check_output("docker inspect -f '{{.State.StartedAt}}' afc-sleeper")
    pid = dockerd_pid(host)
    proc = run_converge(host, {"converge_label": "appfleet.lab=reloaded"})
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "RUNNING HANDLER [appfleet.docker.engine : Reload docker]" in proc.stdout
    assert "Restart docker" not in proc.stdout
    info = docker_json(host, "info", "--format", "'{{json .Labels}}'")
    assert "appfleet.lab=reloaded" in info
    assert dockerd_pid(host) == pid
    assert host.check_output("docker inspect -f '{{.Id}} {{.State.StartedAt}}' afc-sleeper") == "%s %s" % (cid, started)


def test_userland_proxy_change_restarts_dockerd_and_keeps_containers(host):
    """userland-proxy needs a restart: the role restarts (not reloads) dockerd,
    live-restore keeps the containers, and the 127.0.0.1 path serves either way.
    With the proxy on, a port published then is relayed from [::] by docker-proxy
    on the host, past DOCKER-USER, where dockerd has no IPv6 NAT (Debian 12
    here): the exposure that the default removes."""
    start_web(host)
    kept = host.check_output("docker inspect -f '{{.Id}} {{.State.StartedAt}}' afc-web")
    me = addresses(host.backend.get_hostname())
    peer = peer_of(host)
    relayed = not daemon_ipv6_nat(host)
    for extra, proxy in (({"userland-proxy": True}, True), ({}, False)):
        pid = dockerd_pid(host)
        proc = run_converge(host, {"converge_daemon_extra": extra})
        assert proc.returncode == 0, proc.stdout[-3000:]
        assert "RUNNING HANDLER [appfleet.docker.engine : Restart docker]" in proc.stdout
        assert "Reload docker" not in proc.stdout
        assert dockerd_pid(host) != pid
        assert host.check_output("docker inspect -f '{{.Id}} {{.State.StartedAt}}' afc-web") == kept
        assert_served_on_loopback(host)
        if proxy:
            start_web(host, "afc-web6", 8081)
        assert_served_on_loopback(host, 8081)
        assert (host.run("pgrep -x docker-proxy").rc == 0) is proxy
        if proxy and relayed:
            assert eventually(served_from_peer, peer, me["net6"], 8081)
        else:
            assert not served_from_peer(peer, me["net6"], 8081)
        assert host.run("%s --check" % RULES).rc == 0
    host.run("docker rm -f afc-web6")
    assert_only_allowed_sources_served(host, me, peer)
