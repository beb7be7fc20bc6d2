"""The life of an app on the lab fleet: an unknown name fails, tags select roles
and apps, a version pin from the command line, a new app goes live with
deploy.yml alone, maintenance mode on and off under a probe. Reuses the converged fleet of test_50_fleet (site.yml once
per session)."""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import threading
import time

import pytest
import yaml

from conftest import REPO, run_playbook
from lab_support import HTTP_PORTS, commit_and_push, http_get, lab, lab_host, lab_tool, read_work_file  # noqa: F401  # pylint: disable=unused-import
from test_50_fleet import (  # noqa: F401  # pylint: disable=unused-import
    BOTH, app_container_ids, deploy_play_matched_no_host, fleet, plan_lines, recap, served_version, task_names)

VMS = ("vm1", "vm2")
NEW_APP = "shop"
# deploy.yml's plan, tagged always, is skipped under a tag that selects no app (--skip-tags apps,
# site.yml --tags engine): neither of its tasks asks a host (plan_asked_no_host checks both).
PLAN_TASKS = ("appfleet.docker.apps : Check the app definitions",
              "appfleet.docker.apps : Check the app definitions have no problem",
              "appfleet.docker.apps : Ask the git servers once for the whole fleet",
              "appfleet.docker.apps : Ask whether a deploy would change this host")
# BOTH (from test_50_fleet): both VMs in one batch, as these tests are about what
# a run does on each host, not about the order of the hosts.


def lab_apps():
    return yaml.safe_load((REPO / "inventories/lab/group_vars/fleet.yml").read_text())["appfleet_apps"]


@pytest.fixture(scope="module")
def apps_with_shop(tmp_path_factory):
    """Extra vars: the lab's apps plus `shop`, a third app built from api's repository."""
    apps = lab_apps()
    shop = dict(next(a for a in apps if a["name"] == "api"), name=NEW_APP,
                proxy={"server_name": NEW_APP + ".lab.test"})
    path = tmp_path_factory.mktemp("lifecycle") / "apps.json"
    path.write_text(json.dumps({"appfleet_apps": apps + [shop]}))
    return "@%s" % path


def only_skipped(output, task):
    """The task ran on no host: every result line under it says `skipping`, and there is one at least."""
    blocks = re.findall(r"^TASK \[%s\] \*+\n(.*?)(?:\n\n|\Z)" % re.escape(task), output, re.M | re.S)
    lines = [line for block in blocks for line in block.splitlines() if line.strip()]
    return bool(lines) and all(line.startswith("skipping: [") for line in lines)


def plan_asked_no_host(output):
    """deploy.yml's plan asked no host: its tasks (the fleet-wide one runs once) skipped, no plan line."""
    return not plan_lines(output) and all(only_skipped(output, task) for task in PLAN_TASKS)


def test_unknown_app_name_fails_listing_the_known_ones(fleet):
    ids = {vm: app_container_ids(vm) for vm in VMS}
    proc = run_playbook("playbooks/deploy.yml", "-i", "inventories/lab", "-e", "apps=wbe", check=False)
    out = re.sub(r"\s+", " ", proc.stdout)
    assert proc.returncode != 0, out[-3000:]
    assert 'apps_only: unknown app "wbe" (from -e apps= or apps_only): name one of web, api' in out, out[-3000:]
    # It stopped at the first host, before anything changed.
    rows = recap(proc.stdout)
    assert rows and all(changed == 0 for changed, _failed, _unr in rows.values()), rows
    assert {vm: app_container_ids(vm) for vm in VMS} == ids


def test_new_app_goes_live_with_deploy_yml_alone(fleet, apps_with_shop):
    for vm in VMS:
        status, _body = http_get(vm, NEW_APP, "/version")
        assert status == 404, (vm, status)
    # Only the new app is deployed (-e apps): the server blocks of every app are written all the same.
    proc = run_playbook("playbooks/deploy.yml", *BOTH, "-i", "inventories/lab", "-e", apps_with_shop, "-e", "apps=" + NEW_APP,
                        check=False)
    assert proc.returncode == 0, proc.stdout[-8000:]
    version = read_work_file("api", "VERSION").strip()
    for vm in VMS:
        assert served_version(vm, NEW_APP) == version, vm
        host = lab_host(vm)
        site = host.file("/etc/nginx/appfleet/sites/%s.conf" % NEW_APP)
        assert site.exists and "set $appfleet_upstream appfleet_%s;" % NEW_APP in site.content_string
        # The upstream is the module's (a real port), never the proxy role's placeholder.
        upstream = host.file("/etc/nginx/appfleet/upstreams/%s.conf" % NEW_APP).content_string
        # Both slots have ports: the next deploy of the app moves only the flag.
        assert "Placeholder" not in upstream and not re.search(r"127\.0\.0\.1:9[; ]", upstream), upstream
    again = run_playbook("playbooks/deploy.yml", *BOTH, "-i", "inventories/lab", "-e", apps_with_shop, "-e", "apps=" + NEW_APP)
    rows = recap(again.stdout)
    assert set(rows) == set(VMS)
    for vm, row in rows.items():
        assert row == (0, 0, 0), (vm, again.stdout[-6000:])


def test_tags_select_one_app(fleet, apps_with_shop):
    proc = run_playbook("playbooks/deploy.yml", *BOTH, "-i", "inventories/lab", "-e", apps_with_shop, "--tags", "web")
    tasks = task_names(proc.stdout)
    assert "appfleet.docker.apps : Check out the source of web" in tasks, tasks
    assert not [t for t in tasks if t.endswith(" api") or t.endswith(" " + NEW_APP)], tasks
    for vm, row in recap(proc.stdout).items():
        assert row == (0, 0, 0), (vm, proc.stdout[-4000:])


def test_skip_tags_apps_skips_the_deploys(fleet, apps_with_shop):
    proc = run_playbook("playbooks/deploy.yml", *BOTH, "-i", "inventories/lab", "-e", apps_with_shop,
                        "--skip-tags", "apps")
    tasks = task_names(proc.stdout)
    assert not [t for t in tasks if t.startswith("appfleet.docker.") and t not in PLAN_TASKS], tasks
    assert plan_asked_no_host(proc.stdout), proc.stdout[:4000]
    assert deploy_play_matched_no_host(proc.stdout), proc.stdout[-3000:]


def test_site_tags_engine_runs_only_the_engine(fleet, apps_with_shop):
    ids = {vm: app_container_ids(vm) for vm in VMS}
    proc = run_playbook("site.yml", *BOTH, "-i", "inventories/lab", "-e", apps_with_shop, "--tags", "engine")
    tasks = task_names(proc.stdout)
    assert any(t.startswith("appfleet.docker.engine : Install") for t in tasks), tasks
    # Other roles: at most their argument checks (Ansible tags those `always`).
    others = [t for t in tasks if re.match(r"appfleet\.docker\.(bootstrap|proxy|apps) : (?!Validating arguments)", t)
              and t not in PLAN_TASKS]
    assert others == [], others
    assert plan_asked_no_host(proc.stdout), proc.stdout[-6000:]
    assert deploy_play_matched_no_host(proc.stdout), proc.stdout[-3000:]
    for vm, row in recap(proc.stdout).items():
        assert row == (0, 0, 0), (vm, proc.stdout[-4000:])
    assert {vm: app_container_ids(vm) for vm in VMS} == ids


def test_version_pin_from_the_command_line(fleet, apps_with_shop):
    work = lab_tool.STATE / "work" / "web"
    pinned = subprocess.run(["git", "-C", str(work), "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=True).stdout.strip()
    old = read_work_file("web", "VERSION").strip()
    new = old + "-pin"
    commit_and_push("web", {"VERSION": new + "\n"}, "web: release " + new)
    pin = json.dumps({"appfleet_versions": {"web": pinned}})
    proc = run_playbook("playbooks/deploy.yml", *BOTH, "-i", "inventories/lab", "-e", apps_with_shop, "-e", pin, "-e", "apps=web")
    for vm, row in recap(proc.stdout).items():
        assert row == (0, 0, 0), (vm, proc.stdout[-4000:])
    for vm in VMS:
        assert served_version(vm, "web") == old
    # The pin held for that run only: without it, main is deployed.
    run_playbook("playbooks/deploy.yml", *BOTH, "-i", "inventories/lab", "-e", apps_with_shop, "-e", "apps=web")
    for vm in VMS:
        assert served_version(vm, "web") == new


class StatusProbe(threading.Thread):
    """GET web through one VM's nginx until stopped; records (status, Retry-After) or the error."""

    def __init__(self, vm, app="web", rate=10):
        super().__init__(daemon=True)
        self.vm, self.app, self.rate = vm, app, rate
        self.results = []
        self._stop_event = threading.Event()

    def run(self):
        while not self._stop_event.is_set() and len(self.results) < 20000:
            conn = http.client.HTTPConnection("127.0.0.1", HTTP_PORTS[self.vm], timeout=5)
            try:
                conn.request("GET", "/", headers={"Host": "%s.lab.test" % self.app})
                resp = conn.getresponse()
                body = resp.read().decode(errors="replace")
                self.results.append((resp.status, resp.getheader("Retry-After"), body[:200]))
            except OSError as exc:
                self.results.append(("error", repr(exc), ""))
            finally:
                conn.close()
            time.sleep(1.0 / self.rate)

    def stop(self):
        self._stop_event.set()
        self.join(timeout=30)
        return self.results


def test_maintenance_on_then_off_under_a_probe(fleet, apps_with_shop):
    probes = [StatusProbe(vm) for vm in VMS]
    for probe in probes:
        probe.start()
    try:
        run_playbook("playbooks/maintenance.yml", "-i", "inventories/lab", "-e", apps_with_shop,
                     "-e", "app=web", "-e", "state=on")
        for vm in VMS:
            status, _body = http_get(vm, "web")
            assert status == 503, vm
            assert lab_host(vm).file("/etc/appfleet/maintenance/web").exists
            # The other apps keep serving.
            assert http_get(vm, "api", "/version")[0] == 200
        # A deploy (and its server blocks) during maintenance keeps it on.
        deploy = run_playbook("playbooks/deploy.yml", *BOTH, "-i", "inventories/lab", "-e", apps_with_shop, "-e", "apps=web")
        for vm, row in recap(deploy.stdout).items():
            assert row == (0, 0, 0), (vm, deploy.stdout[-4000:])
        for vm in VMS:
            assert http_get(vm, "web")[0] == 503, vm
        run_playbook("playbooks/maintenance.yml", "-i", "inventories/lab", "-e", apps_with_shop,
                     "-e", "app=web", "-e", "state=off")
        for vm in VMS:
            assert http_get(vm, "web")[0] == 200, vm
            assert not lab_host(vm).file("/etc/appfleet/maintenance/web").exists
        time.sleep(1)
    finally:
        results = [probe.stop() for probe in probes]
        # A failure above must not leave web in maintenance for the tests after this one.
        if any(lab_host(vm).file("/etc/appfleet/maintenance/web").exists for vm in VMS):
            run_playbook("playbooks/maintenance.yml", "-i", "inventories/lab", "-e", apps_with_shop,
                         "-e", "app=web", "-e", "state=off", check=False)
    for vm, rows in zip(VMS, results):
        errors = [r for r in rows if r[0] not in (200, 503)]
        assert errors == [], (vm, errors[:5])
        unavailable = [r for r in rows if r[0] == 503]
        assert unavailable, vm
        assert all(r[1] == "300" and "Down for maintenance" in r[2] for r in unavailable), unavailable[:3]
        # 200 before, 503 during, 200 after: one switch each way.
        statuses = [r[0] for r in rows]
        changes = [b for a, b in zip(statuses, statuses[1:]) if a != b]
        assert changes == [503, 200], (vm, changes)


def in_stages(statuses, stages, window=10):
    """True when ``statuses`` go through ``stages`` in order, starting with the first and ending
    with the last, where an answer of an earlier stage comes after the first answer of a later one
    only within ``window`` requests: a graceful nginx reload lets the old workers accept for a
    moment beside the new ones (seen in CI: 200, 410, 404, 410, 404), never for longer."""
    if not statuses or set(statuses) - set(stages) or statuses[0] != stages[0] or statuses[-1] != stages[-1]:
        return False
    firsts = [statuses.index(stage) if stage in statuses else None for stage in stages]
    if None in firsts or firsts != sorted(firsts):
        return False
    for later, first in enumerate(firsts[1:], 1):
        late = [i for i, status in enumerate(statuses) if i > first and stages.index(status) < later]
        if late and late[-1] - first > window:
            return False
    return True


def test_removed_app_leaves_nothing_behind(fleet, apps_with_shop, tmp_path):
    apps = json.loads(open(apps_with_shop[1:]).read())["appfleet_apps"]
    shop = next(a for a in apps if a["name"] == NEW_APP)
    # Only the name and the proxy settings (for the 410 on its host name) are needed.
    gone = [a for a in apps if a["name"] != NEW_APP] + [{"name": NEW_APP, "state": "absent", "proxy": shop["proxy"]}]
    extra = tmp_path / "gone.json"
    extra.write_text(json.dumps({"appfleet_apps": gone}))
    paths = ["/etc/appfleet/secrets/%s" % NEW_APP, "/etc/appfleet/keys/%s" % NEW_APP,
             "/etc/appfleet/keys/%s.known_hosts" % NEW_APP, "/srv/appfleet/src/%s" % NEW_APP,
             "/etc/nginx/appfleet/upstreams/%s.conf" % NEW_APP, "/etc/nginx/appfleet/upstreams/%s.slot-b" % NEW_APP,
             "/etc/nginx/appfleet/sites/%s.conf" % NEW_APP]
    # -e apps: only the app removed is worked on; the server blocks of every app are written all the same.
    only = "apps=" + NEW_APP
    for vm in VMS:
        assert http_get(vm, NEW_APP, "/version")[0] == 200
        assert lab_host(vm).file("/srv/appfleet/src/%s" % NEW_APP).exists
    probes = [StatusProbe(vm, NEW_APP) for vm in VMS]
    for probe in probes:
        probe.start()
    try:
        proc = run_playbook("playbooks/deploy.yml", *BOTH, "-i", "inventories/lab", "-e", "@%s" % extra, "-e", only, check=False)
        time.sleep(1)
    finally:
        results = [probe.stop() for probe in probes]
    assert proc.returncode == 0, proc.stdout[-8000:]
    for vm, rows in zip(VMS, results):
        statuses = [r[0] for r in rows]
        assert "error" not in statuses, (vm, [r for r in rows if r[0] == "error"][:3])
        # Served, then 410 Gone while it is removed, then unknown (the default server's 404).
        assert in_stages(statuses, (200, 410, 404)), (vm, statuses)
        host = lab_host(vm)
        assert NEW_APP not in host.check_output("docker ps -a --format '{{.Names}}'").split()
        assert host.check_output("docker image ls -q --filter label=io.appfleet.app=%s" % NEW_APP) == ""
        for path in paths:
            assert not host.file(path).exists, (vm, path)
        nginx = host.check_output("nginx -T 2>/dev/null")
        assert "%s.lab.test" % NEW_APP not in nginx and "appfleet_%s" % NEW_APP not in nginx
        # The other apps still serve.
        assert http_get(vm, "api", "/version")[0] == 200 and http_get(vm, "web")[0] == 200
    again = run_playbook("playbooks/deploy.yml", *BOTH, "-i", "inventories/lab", "-e", "@%s" % extra, "-e", only)
    for vm, row in recap(again.stdout).items():
        assert row == (0, 0, 0), (vm, again.stdout[-4000:])
