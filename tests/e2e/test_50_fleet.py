"""The whole mission on the lab: site.yml from fresh VMs, then deploys,
failures, rollback, status and restarts. Tests run in order and build on
each other (one fleet, converged once: the heavy lab work is done once)."""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import threading
import time

import pytest
import yaml

import conftest
from conftest import REPO, run_playbook
import lab_support
from lab_support import HTTP_PORTS, commit_and_push, http_get, lab, lab_host, read_work_file  # noqa: F401  # pylint: disable=unused-import
from probe import Probe, SlowProbe

VMS = ("vm1", "vm2")
APPS = ("web", "api")
# Both VMs in one batch, for runs whose tests are not about the order of the
# hosts (those about serial: 1 keep the default).
BOTH = ("-e", "appfleet_serial=2")
SECRET = "lab-token-not-a-real-secret"


def recap(output):
    """{host: (changed, failed, unreachable)} from the PLAY RECAP."""
    rows = re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)",
                      output, re.M)
    return {host: (int(ch), int(fail), int(unr)) for host, ch, unr, fail in rows}


def served_version(vm, app):
    status, body = http_get(vm, app, "/" if app == "web" else "/version")
    assert status == 200, (vm, app, status, body)
    return body.split()[1]


def wait_serving(vm, app, timeout=120):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            status, body = http_get(vm, app, "/health", timeout=3)
            if status == 200:
                return
            last = status
        except OSError as exc:
            last = exc
        time.sleep(1)
    pytest.fail("%s on %s not serving after %s s: %s" % (app, vm, timeout, last))


def app_container_ids(vm):
    host = lab_host(vm)
    out = host.check_output("sudo docker ps --filter label=io.appfleet.app --format '{{.ID}} {{.Names}}'")
    # An old container still draining after a swap (<app>--draining-<deadline>) is on its way out.
    return sorted(cid for cid, name in (line.split() for line in out.splitlines()) if "--draining-" not in name)


INITIAL_LOGIN = "the deploy user deploy cannot log in yet; bootstrapping as the initial user debian"


@pytest.fixture(scope="module")
def fleet(lab):
    """The lab converged by site.yml, once per session (other modules import this)."""
    proc = lab_support.converged_fleet()
    assert proc.returncode == 0, proc.stdout[-10000:] + proc.stderr[-3000:]
    return proc


def ssh_login(user, vm):
    return subprocess.run(["ssh", "-F", str(REPO / ".lab/ssh/config"), "-o", "BatchMode=yes",
                           "-l", user, vm, "id", "-un"],
                          capture_output=True, text=True, timeout=60, check=False)


def test_fresh_vms_are_bootstrapped_through_the_initial_user(fleet):
    out = re.sub(r"\s+", " ", fleet.stdout)
    for vm in VMS:
        assert "%s: %s" % (vm, INITIAL_LOGIN) in out, out[-6000:]


def test_root_login_is_refused_after_bootstrap_and_deploy_logs_in(fleet):
    root = ssh_login("root", "vm1")
    assert root.returncode == 255 and "Permission denied" in root.stderr, root
    deploy = ssh_login("deploy", "vm1")
    assert deploy.returncode == 0 and deploy.stdout.strip() == "deploy", deploy.stderr
    # The cloud image had no git: the apps role installed it.
    assert lab_host("vm2").package("git").is_installed


def test_site_yml_serves_both_apps_on_both_vms(fleet):
    for vm in VMS:
        for app in APPS:
            assert served_version(vm, app) == read_work_file(app, "VERSION").strip()
    # Apps are reachable through nginx only: their own ports are on loopback.
    for vm in VMS:
        ports = lab_host(vm).check_output("sudo docker ps --format '{{.Ports}}'")
        assert "0.0.0.0" not in ports and ":::" not in ports, ports


def test_unknown_host_name_gets_404(fleet):
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", 8001, timeout=5)
    conn.request("GET", "/", headers={"Host": "nobody.lab.test"})
    assert conn.getresponse().status == 404


def test_second_site_run_changes_nothing_and_logs_no_secret(fleet, tmp_path):
    """Also: site.yml's deploy plays on the converged fleet (deploy.yml's plain run): the plan
    finds nothing to do on either VM and the serial play runs no task."""
    ids_before = {vm: app_container_ids(vm) for vm in VMS}
    log = tmp_path / "ansible.log"
    try:
        proc = run_playbook("site.yml", "-i", "inventories/lab", "-vvv", env={"ANSIBLE_LOG_PATH": log})
    finally:
        # The fleet's heavy start is over: the suite's molecule stream may begin.
        lab_support.mark_fleet_converged()
    said = plan_lines(proc.stdout)
    assert set(said) == set(VMS) and all(m.startswith("nothing to deploy") for m in said.values()), said
    assert deploy_play_matched_no_host(proc.stdout), proc.stdout[-3000:]
    rows = recap(proc.stdout)
    assert set(rows) == set(VMS)
    for vm, (changed, failed, unreachable) in rows.items():
        assert (changed, failed, unreachable) == (0, 0, 0), (vm, proc.stdout[-6000:])
    assert {vm: app_container_ids(vm) for vm in VMS} == ids_before
    assert SECRET not in proc.stdout + proc.stderr
    assert SECRET not in log.read_text()
    # Hardening turned root login off: this run logged in as the deploy user.
    assert INITIAL_LOGIN not in re.sub(r"\s+", " ", proc.stdout)


def test_secret_is_a_file_the_app_reads_and_inspect_never_shows(fleet):
    for vm in VMS:
        host = lab_host(vm)
        files = host.check_output("ls -d /etc/appfleet/secrets/web/*/WEB_API_TOKEN").split()
        assert len(files) == 1, files
        secret = host.file(files[0])
        # 0400, owned by the user the web image runs as (nobody).
        assert secret.mode == 0o400 and secret.uid == 65534
        assert SECRET not in host.check_output("docker inspect web")
        assert not host.file("/etc/appfleet/env/web.env").exists
        # The app reads it through WEB_API_TOKEN_FILE: /private takes the token.
        conn = http.client.HTTPConnection("127.0.0.1", HTTP_PORTS[vm], timeout=5)
        conn.request("GET", "/private", headers={"Host": "web.lab.test",
                                                 "Authorization": "Bearer " + SECRET})
        assert conn.getresponse().status == 200
        conn.close()
        conn = http.client.HTTPConnection("127.0.0.1", HTTP_PORTS[vm], timeout=5)
        conn.request("GET", "/private", headers={"Host": "web.lab.test",
                                                 "Authorization": "Bearer wrong"})
        assert conn.getresponse().status != 200
        conn.close()


def test_check_mode_on_converged_fleet_changes_nothing(fleet):
    """deploy.yml --check on the converged fleet: changed=0. (The roles of
    hosts.yml are checked the same way by their molecule scenarios.)"""
    proc = run_playbook("playbooks/deploy.yml", *BOTH, "-i", "inventories/lab", "--check")
    for vm, row in recap(proc.stdout).items():
        assert row == (0, 0, 0), (vm, proc.stdout[-6000:])


def task_names(output):
    return re.findall(r"^TASK \[([^\]]+)\]", output, re.M)


def deploy_play_matched_no_host(output):
    """The serial deploy play had no host: the plan put none in its group."""
    return re.search(r"^PLAY \[Deploy the apps, one host at a time\] \*+\nskipping: no hosts matched$",
                     output, re.M) is not None and "Deploy the selected apps" not in task_names(output)


def plan_lines(stdout):
    """{vm: what deploy.yml's plan said for it} from the plan task's output."""
    # The YAML result format may fold a long message over lines: compare with spaces normalised.
    flat = re.sub(r"\s+", " ", stdout)
    # A single-quoted YAML scalar writes a quote as two.
    # The plan task prints its whole result, keys sorted: msg comes after keys with no quote in them.
    found = re.findall(r"ok: \[(vm\d)\] =>(?:(?!ok: \[)[^'])*? msg: '((?:nothing to deploy|deploying)(?:[^']|'')*)'", flat)
    return {vm: msg.replace("''", "'") for vm, msg in found}


def test_plain_deploy_repairs_drift(fleet):
    """A server block removed by hand on vm1 makes vm1 (only) deploy, which puts it back; then
    both are left alone again. (deploy.yml on the converged fleet leaving both alone: the
    second site.yml run, whose deploy plays are deploy.yml's.)"""
    site = "/etc/nginx/appfleet/sites/web.conf"
    lab_host("vm1").check_output("sudo rm %s" % site)
    proc = run_playbook("playbooks/deploy.yml", "-i", "inventories/lab")
    said = plan_lines(proc.stdout)
    assert said["vm2"].startswith("nothing to deploy"), said
    assert said["vm1"] == "deploying: files changed since the last deploy: %s" % site, said
    assert recap(proc.stdout)["vm1"][0] > 0 and recap(proc.stdout)["vm2"] == (0, 0, 0), proc.stdout[-4000:]
    assert lab_host("vm1").file(site).exists
    assert served_version("vm1", "web") == read_work_file("web", "VERSION").strip()
    proc = run_playbook("playbooks/deploy.yml", "-i", "inventories/lab")
    said = plan_lines(proc.stdout)
    assert all(m.startswith("nothing to deploy") for m in said.values()) and len(said) == 2, said


def test_check_mode_with_a_new_app_reports_it_and_changes_nothing(fleet, tmp_path):
    """A new app in the inventory: --check previews it (no key on the host yet)."""
    inventory = yaml.safe_load((REPO / "inventories/lab/group_vars/fleet.yml").read_text())
    apps = inventory["appfleet_apps"]
    extra_app = dict(next(a for a in apps if a["name"] == "web"), name="web-preview",
                     proxy={"server_name": "web-preview.lab.test"})
    extra = tmp_path / "apps.json"
    extra.write_text(json.dumps({"appfleet_apps": apps + [extra_app]}))
    proc = run_playbook("playbooks/deploy.yml", *BOTH, "-i", "inventories/lab", "--check", "-e",
                        "@%s" % extra, "-e", "apps=web-preview", check=False)
    assert proc.returncode == 0, proc.stdout[-6000:]
    out = re.sub(r"\s+", " ", proc.stdout)
    assert "check mode: web-preview is not on this host yet" in out, out[-4000:]
    for vm, (changed, failed, _unreachable) in recap(proc.stdout).items():
        assert changed > 0 and failed == 0, (vm, proc.stdout[-4000:])
        host = lab_host(vm)
        assert not host.file("/etc/appfleet/keys/web-preview").exists
        assert not host.file("/srv/appfleet/src/web-preview").exists
        assert "web-preview" not in host.check_output("docker ps -a --format '{{.Names}}'")


def test_changed_host_key_stops_the_run_for_that_host(fleet, tmp_path):
    """vm1's recorded key replaced by another: nothing is sent to vm1, and with
    serial 1 nothing after it either; the run names the host."""
    known_hosts = REPO / ".lab/ssh/known_hosts"
    saved = known_hosts.read_text()
    vm2_keys = [ln.split(" ", 1)[1] for ln in saved.splitlines() if ln.startswith("[127.0.0.1]:2202 ")]
    forged = [ln for ln in saved.splitlines() if not ln.startswith("[127.0.0.1]:2201 ")]
    forged += ["[127.0.0.1]:2201 " + key for key in vm2_keys]
    old = read_work_file("web", "VERSION").strip()
    commit_and_push("web", {"VERSION": old + "-hk\n"}, "web: release after a host key change")
    known_hosts.write_text("\n".join(forged) + "\n")
    try:
        # A new connection (no ControlPersist socket of an earlier run): the
        # key is checked as an attacker's host would be met.
        proc = run_playbook("playbooks/deploy.yml", "-i", "inventories/lab", check=False,
                            env={"ANSIBLE_SSH_CONTROL_PATH_DIR": tmp_path / "cp"})
    finally:
        known_hosts.write_text(saved)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert re.search(r"fatal: \[vm1\]: UNREACHABLE!", out), out[-4000:]
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in out or "Host key verification failed" in out
    assert recap(proc.stdout)["vm1"][2] == 1
    for vm in VMS:
        assert served_version(vm, "web") == old
    # With the right key back, the next run (the next test's, under load) deploys both VMs.


def nginx_workers(vm):
    """The pids of nginx's worker processes on the VM: a reload replaces them."""
    out = lab_host(vm).check_output("sudo pgrep -P \"$(cat /run/nginx.pid)\"")
    return sorted(int(pid) for pid in out.split())


def test_new_commit_rolls_out_with_zero_failed_requests(fleet):
    """Also the run after the host key test's refused one (the key restored), and build once
    through the lab's registry (the inventory's apps_build_registry): vm1 builds and, once
    healthy, pushes; vm2 pulls by digest and builds nothing."""
    # The commit the host key test pushed is not served yet: the version served is the old one.
    old = served_version("vm1", "web")
    new = read_work_file("web", "VERSION").strip() + "-2"
    commit_and_push("web", {"VERSION": new + "\n"}, "web: release " + new)
    # --check first: it says what would change, and changes nothing.
    dry = run_playbook("playbooks/deploy.yml", "-i", "inventories/lab", "--check", "--diff", "-e", "apps=web")
    for vm, (changed, failed, _unreachable) in recap(dry.stdout).items():
        assert changed > 0 and failed == 0, (vm, dry.stdout[-4000:])
        assert served_version(vm, "web") == old
    # Per VM 8 clients, half on kept-alive connections, none retrying (about 200 requests/s
    # asked per VM: an nginx reload at the switch made such clients fail), and on vm1 long
    # requests one after another, so that some are in flight when traffic moves.
    workers = {vm: nginx_workers(vm) for vm in VMS}
    probes = {vm: [Probe(vm, "web", rate=25, keepalive=ka) for ka in (True, False) * 4] for vm in VMS}
    # Three long-request clients a second apart: whenever traffic moves, two or three are in flight.
    slow = [SlowProbe("vm1", seconds=3, delay=i) for i in range(3)]
    everyone = [p for ps in probes.values() for p in ps] + slow
    for probe in everyone:
        probe.start()
    try:
        proc = run_playbook("playbooks/deploy.yml", "-i", "inventories/lab", check=False)
    finally:
        for probe in everyone:
            probe.stop()
    assert proc.returncode == 0, proc.stdout[-8000:]
    for vm in VMS:
        # The swap moved only the slot flag: nginx was not reloaded (same worker processes).
        assert nginx_workers(vm) == workers[vm], vm
        failures = [f for p in probes[vm] for f in p.failures]
        assert failures == [], (vm, failures[:5])
        assert sum(p.ok for p in probes[vm] if p.keepalive) > 100, vm
        assert sum(p.ok for p in probes[vm] if not p.keepalive) > 100, vm
        assert any(new in body for p in probes[vm] for body in p.bodies), vm
        assert served_version(vm, "web") == new
    # Each long request completed with 200; one served by the old version ended after the new
    # version had answered: it was in flight at the switch and drained.
    done = [d for probe in slow for d in probe.done]
    assert done and all(status == 200 for _s, _e, status, _b in done), done
    switched = min(t for p in probes["vm1"] for body, t in p.first_seen.items() if new in body)
    assert any(body.split()[1:2] == [old] and end > switched + 0.5 for _s, end, _st, body in done), (switched, done)
    # The other app was not touched: same version.
    for vm in VMS:
        assert served_version(vm, "api") == read_work_file("api", "VERSION").strip()
    # Built once, on vm1, and pulled by digest on vm2; not through the controller.
    out = proc.stdout
    assert task_results(out, "Build the image of web") == {"vm1": "changed", "vm2": "ok"}, out[-8000:]
    assert task_results(out, "Push to the build registry the image of web") == {"vm1": "changed"}, out[-8000:]
    assert task_results(out, "Pull the image of web built on vm1") == {"vm2": "changed"}, out[-8000:]
    assert task_results(out, "Save the image archive of web") == {}, out[-8000:]
    ids = {vm: running_image_id(vm, "web") for vm in VMS}
    assert ids["vm1"].startswith("sha256:") and ids["vm1"] == ids["vm2"], ids
    builds = build_registry()
    digests = {vm: [d for d in image_info(vm, ids[vm])[1] if d.startswith(builds + "/web@")] for vm in VMS}
    assert digests["vm2"] and digests["vm2"] == digests["vm1"], digests


def test_two_deploys_at_once_take_turns_on_each_host(fleet):
    """Two deploy.yml runs started a second apart (two quick pushes in CI): on each host the
    second waits for the first's deploy lock (checkout to record), so the image of the new
    commit holds that commit's files; both runs succeed and the fleet ends converged."""
    new = read_work_file("web", "VERSION").strip() + "-two"
    head = commit_and_push("web", {"VERSION": new + "\n"}, "web: release " + new)
    cmd = [str(REPO / ".venv" / "bin" / "ansible-playbook"), "playbooks/deploy.yml", "-i", "inventories/lab", "-v"]
    env = conftest.ansible_env()
    first = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(1)
    second = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    outs = [proc.communicate(timeout=1200)[0] for proc in (first, second)]
    assert first.returncode == 0, outs[0][-6000:]
    assert second.returncode == 0, outs[1][-6000:]
    # One run waited on some host for the other's lock (which one first is the scheduler's
    # choice; each run's output, at -v, gives the seconds it waited on each host).
    waited = [float(w) for w in re.findall(r"waited_seconds: ([0-9.]+)", outs[0] + outs[1])]
    assert len(waited) >= 4 and max(waited) > 0, (waited, outs[1][-6000:])
    for vm in VMS:
        assert served_version(vm, "web") == new, vm
        assert running_commit(vm, "web") == head, vm
        # The files in the image are the commit's (not another run's checkout).
        assert lab_host(vm).check_output("sudo docker exec web cat /app/VERSION").strip() == new, vm
        # Both runs gave the lock back.
        assert lab_host(vm).run("sudo test -e /var/lib/appfleet/deploy.lock").rc != 0, vm


def test_commit_of_an_ignored_file_deploys_nothing(fleet):
    """A commit touching only a file web's .dockerignore excludes (*.md): the plan sees the
    branch move and runs the deploy, which builds nothing and swaps nothing (same source id):
    changed=0 on both VMs, same containers, same version; the next run finds both converged."""
    version = read_work_file("web", "VERSION").strip()
    before = {vm: app_container_ids(vm) for vm in VMS}
    commit_and_push("web", {"NOTES.md": "notes for %s\n" % version}, "web: notes only")
    proc = run_playbook("playbooks/deploy.yml", "-i", "inventories/lab")
    said = plan_lines(proc.stdout)
    assert len(said) == 2 and all(m.startswith("deploying") for m in said.values()), said
    assert all(row == (0, 0, 0) for row in recap(proc.stdout).values()), proc.stdout[-6000:]
    for vm in VMS:
        assert app_container_ids(vm) == before[vm], vm
        assert served_version(vm, "web") == version
    proc = run_playbook("playbooks/deploy.yml", "-i", "inventories/lab")
    said = plan_lines(proc.stdout)
    assert len(said) == 2 and all(m.startswith("nothing to deploy") for m in said.values()), said


def task_results(stdout, name):
    """{host: status} of the task NAME (ok, changed, skipping, fatal) in a default-callback output,
    over every time the task ran (one host per batch under serial: 1)."""
    found = {}
    for section in re.split(r"^TASK \[", stdout, flags=re.M)[1:]:
        header = section.split("\n", 1)[0]
        if re.search(r"(^|: )%s\] \*" % re.escape(name), header):
            for status, host in re.findall(r"^(ok|changed|skipping|fatal|failed): \[(\S+?)\]", section, re.M):
                found[host] = status
    return found


def running_image_id(vm, app):
    return lab_host(vm).check_output("sudo docker inspect --format '{{.Image}}' %s" % app).strip()


def image_info(vm, ref):
    """(id, RepoDigests) of an image on a VM, (None, []) when absent."""
    out = lab_host(vm).run("sudo docker image inspect --format '{{json .}}' %s" % ref)
    if out.rc != 0:
        return None, []
    info = json.loads(out.stdout)
    return info["Id"], info.get("RepoDigests") or []


def build_registry():
    """The lab inventory's apps_build_registry (build once through the lab's registry)."""
    inventory = yaml.safe_load((REPO / "inventories/lab/group_vars/fleet.yml").read_text())
    return inventory["apps_build_registry"]


def test_new_commit_is_built_on_vm1_and_loaded_on_vm2(fleet, tmp_path):
    """Build once without a registry (the lab's apps_build_registry emptied): a commit that changes
    what web's builder sees is built on vm1 alone; vm2 loads vm1's image from the archive the controller fetched, so both run
    the same image id; the controller's copy is gone at the end, and so are the hosts' archives.
    After the ignored-file test (converged fleet); the rolling-failure test reads VERSION afresh."""
    new = read_work_file("web", "VERSION").strip() + "-once"
    head = commit_and_push("web", {"VERSION": new + "\n"}, "web: release " + new)
    archives = tmp_path / "archives"
    proc = run_playbook("playbooks/deploy.yml", "-i", "inventories/lab",
                        "-e", "apps_archive_controller_dir=%s" % archives, "-e", "apps_build_registry=",
                        check=False)
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-2000:]
    out = proc.stdout
    # The plan asked the git server once for the fleet (on vm1, the first host); each host's
    # check found the new commit in that answer (tests/integration/test_deploy_state.py shows
    # that a check given an answer does not ask the server itself).
    assert task_results(out, "Ask the git servers once for the whole fleet") == {"vm1": "ok"}, out[-8000:]
    said = plan_lines(out)
    assert all(re.search(r"app web: \S+ is at %s on the git server" % head[:12], said.get(vm, ""))
               for vm in VMS), said
    # vm1 built it and shared it; vm2 loaded it, and its image_build found the tag: no build.
    assert task_results(out, "Build the image of web") == {"vm1": "changed", "vm2": "ok"}, out[-8000:]
    assert task_results(out, "Load the image of web built on vm1") == {"vm2": "changed"}, out[-8000:]
    assert task_results(out, "Fetch to the controller the image archive of web") == {"vm1": "changed"}, out[-8000:]
    # api did not change: nothing of it was shared or loaded.
    assert not any(s == "changed" for s in task_results(out, "Build the image of api").values()), out[-8000:]
    assert task_results(out, "Load the image of api built on vm1") == {}, out[-8000:]
    # One image id on both VMs, serving the new version.
    ids = {vm: running_image_id(vm, "web") for vm in VMS}
    assert ids["vm1"].startswith("sha256:") and ids["vm1"] == ids["vm2"], ids
    for vm in VMS:
        assert served_version(vm, "web") == new
    # No archive left: the controller directory was made (vm1 fetched into it) and emptied by vm2,
    # the last host; the hosts removed theirs.
    assert archives.is_dir(), out[-8000:]
    assert sorted(p.name for p in archives.rglob("*")) == [], sorted(archives.rglob("*"))
    assert archives.stat().st_mode & 0o777 == 0o700, oct(archives.stat().st_mode)
    for vm in VMS:
        host = lab_host(vm)
        left = host.check_output("sudo find /var/cache/appfleet -type f")
        assert left.strip() == "", (vm, left)
        # Only root makes, replaces or removes an archive there (docs/security.md); the
        # checkouts, whose .git/config may hold a URL's token, are root's alone.
        assert host.check_output("sudo stat -c '%U:%G %a' /var/cache/appfleet /srv/appfleet/src").split("\n") == [
            "root:root 711", "root:root 700"], vm


def test_rolling_deploy_where_the_second_vm_fails(fleet):
    """vm1 gets the new version; vm2 fails its health check and keeps the old one."""
    old = read_work_file("web", "VERSION").strip()
    new = old + "-r"
    commit_and_push("web", {"VERSION": new + "\n"}, "web: release " + new)
    inventory = yaml.safe_load((REPO / "inventories/lab/group_vars/fleet.yml").read_text())
    apps = inventory["appfleet_apps"]
    for entry in apps:
        if entry["name"] == "web":
            entry["env"] = dict(entry.get("env", {}), HEALTHY="0")
    host_vars = REPO / "inventories/lab/host_vars/vm2.yml"
    host_vars.parent.mkdir(exist_ok=True)
    host_vars.write_text(yaml.safe_dump({"appfleet_apps": apps}))
    try:
        proc = run_playbook("playbooks/deploy.yml", "-i", "inventories/lab", "-e", "apps=web",
                            check=False)
    finally:
        host_vars.unlink()
        host_vars.parent.rmdir()
    assert proc.returncode != 0
    out = re.sub(r"\s+", " ", proc.stdout)
    assert "host vm2, app web" in out and "host vm1, app web" not in out, out[-4000:]
    assert served_version("vm1", "web") == new
    assert served_version("vm2", "web") == old
    # The next deploy converges vm2 too (vm1 has the new version already).
    run_playbook("playbooks/deploy.yml", "-i", "inventories/lab", "-e", "apps=web", "-l", "vm2")
    assert served_version("vm2", "web") == new


def test_failing_build_keeps_old_version_and_names_host_and_app(fleet):
    serving = read_work_file("web", "VERSION").strip()
    dockerfile = read_work_file("web", "Dockerfile")
    commit_and_push("web", {"Dockerfile": dockerfile + "RUN exit 3\n"}, "web: broken build")
    try:
        proc = run_playbook("playbooks/deploy.yml", "-i", "inventories/lab", "-e", "apps=web",
                            check=False)
        assert proc.returncode != 0
        out = proc.stdout + proc.stderr
        assert "host vm1, app web" in out, out[-6000:]
        # serial: 1 stopped at the first failed host; vm2 was not touched.
        assert "vm2" not in recap(proc.stdout) or recap(proc.stdout)["vm2"][1] == 0
        for vm in VMS:
            assert served_version(vm, "web") == serving
    finally:
        commit_and_push("web", {"Dockerfile": dockerfile}, "web: fix the build")


def test_missing_git_ref_keeps_old_version_and_names_host_and_app(fleet, tmp_path):
    serving = served_version("vm1", "web")
    inventory = yaml.safe_load((REPO / "inventories/lab/group_vars/fleet.yml").read_text())
    apps = inventory["appfleet_apps"]
    for entry in apps:
        if entry["name"] == "web":
            entry["source"]["version"] = "no-such-branch"
    extra = tmp_path / "apps.json"
    extra.write_text(json.dumps({"appfleet_apps": apps}))
    proc = run_playbook("playbooks/deploy.yml", "-i", "inventories/lab", "-e", "@%s" % extra,
                        "-e", "apps=web", check=False)
    assert proc.returncode != 0
    assert "host vm1, app web: Check out the source of web failed" in re.sub(r"\s+", " ", proc.stdout)
    for vm in VMS:
        assert served_version(vm, "web") == serving


def test_never_healthy_release_is_rolled_back(fleet):
    serving = read_work_file("web", "VERSION").strip()
    server = read_work_file("web", "server.py")
    broken = server.replace('os.environ.get("HEALTHY", "1")', 'os.environ.get("HEALTHY", "0")')
    assert broken != server
    commit_and_push("web", {"server.py": broken, "VERSION": serving + "-broken\n"}, "web: unhealthy")
    probe = Probe("vm1", "web", rate=20)
    probe.start()
    try:
        proc = run_playbook("playbooks/deploy.yml", "-i", "inventories/lab", "-e", "apps=web",
                            check=False)
    finally:
        probe.stop()
        commit_and_push("web", {"server.py": server, "VERSION": serving + "-3\n"}, "web: healthy again")
    assert proc.returncode != 0
    assert "host vm1, app web" in proc.stdout
    assert probe.failures == [], probe.failures[:5]
    for vm in VMS:
        assert served_version(vm, "web") == serving
    # No stray container is left behind on vm1: one container per app.
    names = lab_host("vm1").check_output("sudo docker ps -a --format '{{.Label \"io.appfleet.app\"}}'")
    assert sorted(names.split()) == sorted(APPS)


def test_engine_stopped_mid_deploy_names_host_app_and_step(fleet):
    """dockerd on vm1 stops while the new web container waits for health (a release that never
    gets healthy keeps it waiting): a message naming host, app and step, no traceback; with
    dockerd back, the old version serves and no --next container is left."""
    serving = served_version("vm1", "web")
    head = read_work_file("web", "VERSION").strip()
    server = read_work_file("web", "server.py")
    broken = server.replace('os.environ.get("HEALTHY", "1")', 'os.environ.get("HEALTHY", "0")')
    commit_and_push("web", {"server.py": broken, "VERSION": head + "-unhealthy\n"}, "web: never healthy")
    host = lab_host("vm1")
    result = {}

    def deploy():
        result["proc"] = run_playbook("playbooks/deploy.yml", "-i", "inventories/lab", "-e", "apps=web",
                                      "-l", "vm1", check=False, timeout=600)

    thread = threading.Thread(target=deploy)
    thread.start()
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and thread.is_alive():
            if "web--next" in host.run("sudo docker ps --format '{{.Names}}'").stdout.split():
                break
            time.sleep(0.5)
        assert thread.is_alive(), "the deploy ended before its new container ran"
        host.check_output("sudo systemctl stop docker.socket docker")
        time.sleep(3)
        host.check_output("sudo systemctl start docker")
        thread.join(600)
    finally:
        thread.join(600)
        commit_and_push("web", {"server.py": server, "VERSION": head + "-4\n"}, "web: healthy again")
    proc = result["proc"]
    out = re.sub(r"\s+", " ", proc.stdout + proc.stderr)
    assert proc.returncode != 0, out[-4000:]
    assert "Traceback" not in out, out[-6000:]
    assert re.search(r"host vm1, app web: .*docker engine", out), out[-6000:]
    wait_serving("vm1", "web")
    assert served_version("vm1", "web") == serving
    names = host.check_output("sudo docker ps -a --format '{{.Names}}'").split()
    assert "web--next" not in names, names


def running_commit(vm, app):
    """The git commit of the app's running container (its label)."""
    return lab_host(vm).check_output(
        "sudo docker inspect --format '{{index .Config.Labels \"io.appfleet.git-commit\"}}' %s" % app).strip()


def _rollback_under_probe(*extra):
    probes = [Probe(vm, "web", rate=20) for vm in VMS]
    for probe in probes:
        probe.start()
    try:
        proc = run_playbook("playbooks/rollback.yml", *BOTH, "-i", "inventories/lab", "-e", "app=web", *extra,
                            check=False)
    finally:
        for probe in probes:
            probe.stop()
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-2000:]
    for vm, probe in zip(VMS, probes):
        assert probe.failures == [], (vm, probe.failures[:5])
        assert probe.ok > 10, (vm, probe.ok)
    return proc


def _changed(proc):
    rows = recap(proc.stdout)
    assert set(rows) == set(VMS), proc.stdout[-4000:]
    assert all(failed == 0 and unreachable == 0 for _c, failed, unreachable in rows.values()), rows
    return {vm: row[0] for vm, row in rows.items()}


def test_rollback_returns_to_previous_version_without_a_build(fleet):
    """Rollback twice ends on the prior release (RELIABILITY 19, 33); a plain deploy
    does not roll forward; resume does; an unknown named release fails listing the releases; a
    named one goes to that release and, named again, forward."""
    # What serves since the rolling test (two failed releases on vm1 since: the release log
    # holds them as rolled back), then one new commit: the release to roll back from.
    prior = served_version("vm1", "web")
    assert served_version("vm2", "web") == prior
    prior_commit = running_commit("vm1", "web")
    assert running_commit("vm2", "web") == prior_commit
    newer = prior + "-rb"
    newer_commit = commit_and_push("web", {"VERSION": newer + "\n"}, "web: release " + newer)
    run_playbook("playbooks/deploy.yml", *BOTH, "-i", "inventories/lab", "-e", "apps=web")
    for vm in VMS:
        assert served_version(vm, "web") == newer
    images_before = lab_host("vm1").check_output("sudo docker images -q --no-trunc appfleet/web")

    # Rollback: the actual prior version, with zero failed requests.
    first = _rollback_under_probe()
    assert all(n > 0 for n in _changed(first).values()), first.stdout[-4000:]
    for vm in VMS:
        assert served_version(vm, "web") == prior
    # Again (as after a later host failed under serial: 1): nothing changes.
    second = _rollback_under_probe()
    assert _changed(second) == {vm: 0 for vm in VMS}, second.stdout[-4000:]
    for vm in VMS:
        assert served_version(vm, "web") == prior
    # No build, no pull.
    images_after = lab_host("vm1").check_output("sudo docker images -q --no-trunc appfleet/web")
    assert sorted(images_after.split()) == sorted(images_before.split())
    log = json.loads(lab_host("vm1").check_output("sudo cat /var/lib/appfleet/releases/web.json"))
    last = log["releases"][-1]
    assert last["kind"] == "rollback" and last["result"] == "serving" and last["git_commit"] == prior_commit
    assert any(e["git_commit"] == newer_commit and e["result"] == "rolled_back" for e in log["releases"])

    # A plain deploy of the same source is held: nothing changes, the output says how to resume.
    held = run_playbook("playbooks/deploy.yml", *BOTH, "-i", "inventories/lab", "-e", "apps=web")
    assert _changed(held) == {vm: 0 for vm in VMS}, held.stdout[-4000:]
    assert "held on release" in re.sub(r"\s+", " ", held.stdout + held.stderr), held.stdout[-4000:]
    for vm in VMS:
        assert served_version(vm, "web") == prior

    # resume: rolls forward to the newer release.
    resumed = run_playbook("playbooks/deploy.yml", *BOTH, "-i", "inventories/lab", "-e", "apps=web",
                           "-e", "appfleet_resume=web")
    assert all(n > 0 for n in _changed(resumed).values()), resumed.stdout[-4000:]
    for vm in VMS:
        assert served_version(vm, "web") == newer

    # A named rollback: an unknown release fails on the first host, listing the releases there.
    unknown = run_playbook("playbooks/rollback.yml", "-i", "inventories/lab", "-e", "app=web",
                           "-e", "release=0123456789abc", check=False)
    assert unknown.returncode != 0
    out = re.sub(r"\s+", " ", unknown.stdout)
    assert "host vm1, app web" in out and "available releases" in out and prior_commit[:12] in out, out[-4000:]
    for vm in VMS:
        assert served_version(vm, "web") == newer
    # A known one by its commit, under the probe; then forward again by name.
    for commit, version in ((prior_commit, prior), (newer_commit, newer)):
        named = _rollback_under_probe("-e", "release=%s" % commit[:12])
        assert all(n > 0 for n in _changed(named).values()), named.stdout[-4000:]
        for vm in VMS:
            assert served_version(vm, "web") == version


def docker_health(vm, app):
    return lab_host(vm).check_output("sudo docker inspect --format '{{.State.Health.Status}}' %s" % app).strip()


def test_status_shows_the_table(fleet):
    # A swap ends on the module's own health probe, often before Docker's HEALTHCHECK has run once
    # (its status is "starting" until then): the table shows what Docker says.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(docker_health(vm, app) != "healthy" for vm in VMS for app in APPS):
        time.sleep(1)
    proc = run_playbook("playbooks/status.yml", "-i", "inventories/lab")
    out = proc.stdout
    assert re.search(r"HOST\s+APP\s+STATE\s+REVISION\s+HEALTH\s+STARTED\s+PREVIOUS", out), out
    for vm in VMS:
        for app in APPS:
            assert re.search(r"%s\s+%s\s+running\s+[0-9a-f]{7,}\s+healthy" % (vm, app), out), out


# Runs on vm2 during vm1's boot: connect to vm1's published port every 0.1 s
# until stdin closes (or 240 s); print the time of each connection accepted.
_PORT_PROBE = """
import select, socket, sys, time
host, port = sys.argv[1], int(sys.argv[2])
end = time.monotonic() + 240
print("probing", flush=True)
while time.monotonic() < end:
    if select.select([sys.stdin], [], [], 0)[0] and not sys.stdin.read(1):
        break
    try:
        socket.create_connection((host, port), 0.3).close()
        print("open %.1f" % time.monotonic(), flush=True)
    except OSError:
        pass
    time.sleep(0.1)
print("done", flush=True)
"""
FW_PROBE_PORT = 18090


def _vm_address(vm):
    out = subprocess.run(["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                          "appfleet-" + vm], capture_output=True, text=True, check=True, timeout=30)
    return out.stdout.strip()


def _open_from_vm2(address):
    """True when vm2 connects to vm1's published probe port."""
    probe = "import socket; socket.create_connection(('%s', %d), 2).close()" % (address, FW_PROBE_PORT)
    return lab_host("vm2").run("python3 -c %s" % _quote(probe)).rc == 0


def _quote(text):
    return "'" + text.replace("'", "'\\''") + "'"


def test_apps_serve_again_after_dockerd_and_vm_restart(fleet):
    """Also (issue 26): the DOCKER-USER rules are in place before dockerd
    starts the containers at boot: a port published on every address of vm1
    is never reachable from vm2 while vm1 boots."""
    host = lab_host("vm1")
    host.check_output("sudo systemctl restart docker")
    for app in APPS:
        wait_serving("vm1", app)
    address = _vm_address("vm1")
    host.check_output("sudo docker rm -f fw-probe || true")
    host.check_output("sudo docker run -d --name fw-probe --restart always -p %d:8080 appfleet-lab/debian:bookworm"
                      " python3 -m http.server 8080" % FW_PROBE_PORT)
    try:
        probe = subprocess.Popen(["ssh", "-F", str(REPO / ".lab/ssh/config"), "-o", "BatchMode=yes",
                                  "vm2", "python3 -u -c %s" % _quote(_PORT_PROBE), address,
                                  str(FW_PROBE_PORT)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert probe.stdout.readline().strip() == "probing", probe.stderr.read()
        subprocess.run(["docker", "restart", "appfleet-vm1"], check=True, capture_output=True,
                       timeout=120)
        for app in APPS:
            wait_serving("vm1", app, timeout=180)
        host = lab_host("vm1")
        assert host.check_output("sudo docker inspect -f '{{.State.Running}}' fw-probe") == "true"
        time.sleep(2)
        out, err = probe.communicate(timeout=30)
        assert out.strip().endswith("done"), (out, err)
        assert "open" not in out, "vm1's published port answered vm2 during the boot: %s" % out
        # The probe can see an open port: with vm2 let through, it connects.
        assert _vm_address("vm1") == address
        assert not _open_from_vm2(address)
        host.check_output("sudo iptables -I DOCKER-USER 1 -s %s -j RETURN" % _vm_address("vm2"))
        try:
            assert _open_from_vm2(address)
        finally:
            host.check_output("sudo iptables -D DOCKER-USER -s %s -j RETURN" % _vm_address("vm2"))
    finally:
        lab_host("vm1").check_output("sudo docker rm -f fw-probe")
