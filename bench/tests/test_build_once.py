"""bench/build_once.py and the "Build once" section of bench/report.py, without the lab.

The per-host task results are read from a default-callback output written after the task names
of roles/apps/tasks/app.yml and archive_load.yml (deploy.yml, serial 1, two VMs); the figures and
the report section come from made-up runs; main() runs against stand-ins for the lab.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .scripts import BENCH, load_script

once = load_script("build_once.py", "bench_build_once")
report = load_script("report.py", "bench_report_once")

BEFORE, AFTER = once.BEFORE, once.AFTER

# deploy.yml -e apps=web on vm1 and vm2 (serial 1: a batch, and its task headers, per host), build
# once on: vm1 builds and shares, vm2 loads vm1's image and its image_build finds the tag.
ONCE_OUTPUT = """
PLAY [Plan the deploy] *********************************************************

TASK [appfleet.docker.apps : Ask whether a deploy would change this host] ******
ok: [vm1] =>
  add_group: appfleet_deploy_run
  changed: false
  converged: false
  msg: 'deploying: the plan is off for this run (force): a selection of apps or tags,
    or appfleet_skip_unchanged=false'
ok: [vm2] =>
  add_group: appfleet_deploy_run
  changed: false
  converged: false
  msg: 'deploying: the plan is off for this run (force): a selection of apps or tags,
    or appfleet_skip_unchanged=false'

PLAY [Deploy the apps, one host at a time] *************************************

TASK [Gather the facts the roles read] *****************************************
ok: [vm1]

TASK [appfleet.docker.apps : Deploy each selected app] *************************
included: /work/wt-once/roles/apps/tasks/app.yml for vm1 => (item=web)

TASK [appfleet.docker.apps : Check out the source of web] **********************
changed: [vm1]

TASK [appfleet.docker.apps : Take from an earlier host the image of web] *******
skipping: [vm1]

TASK [appfleet.docker.apps : Build the image of web] ***************************
changed: [vm1]

TASK [appfleet.docker.apps : Run the container of web] *************************
changed: [vm1]

TASK [appfleet.docker.apps : Share with the later hosts the image of web] ******
included: /work/wt-once/roles/apps/tasks/archive_export.yml for vm1

TASK [appfleet.docker.apps : Save the image archive of web] ********************
changed: [vm1]

TASK [appfleet.docker.apps : Fetch to the controller the image archive of web] ***
changed: [vm1]

PLAY [Deploy the apps, one host at a time] *************************************

TASK [Gather the facts the roles read] *****************************************
ok: [vm2]

TASK [appfleet.docker.apps : Check out the source of web] **********************
changed: [vm2]

TASK [appfleet.docker.apps : Take from an earlier host the image of web] *******
included: /work/wt-once/roles/apps/tasks/archive_load.yml for vm2

TASK [appfleet.docker.apps : Copy from the controller the image archive of web] ***
changed: [vm2]

TASK [appfleet.docker.apps : Load the image of web built on vm1] ***************
changed: [vm2]

TASK [appfleet.docker.apps : Remove from the host the image archive of web] ****
changed: [vm2]

TASK [appfleet.docker.apps : Build the image of web] ***************************
ok: [vm2]

TASK [appfleet.docker.apps : Build the image of webhooks] **********************
changed: [vm2]

TASK [appfleet.docker.apps : Run the container of web] *************************
changed: [vm2]

PLAY RECAP *********************************************************************
vm1                        : ok=41   changed=6    unreachable=0    failed=0    skipped=12   rescued=0    ignored=0
vm2                        : ok=44   changed=6    unreachable=0    failed=0    skipped=10   rescued=0    ignored=0
"""

# The same on four VMs with build once off: every VM builds, nothing is loaded; vm4 failed.
EACH_OUTPUT = "\n".join(
    "PLAY [Deploy the apps, one host at a time] ****\n\n"
    "TASK [appfleet.docker.apps : Take from an earlier host the image of web] ****\nskipping: [%s]\n\n"
    "TASK [appfleet.docker.apps : Build the image of web] ****\n%s: [%s]%s\n" % (
        vm, "fatal" if vm == "vm4" else "changed", vm, ": FAILED! => changed=false" if vm == "vm4" else "")
    for vm in ("vm1", "vm2", "vm3", "vm4"))


def test_build_and_load_results_per_host_from_the_default_callback():
    assert once.task_results(ONCE_OUTPUT, once.BUILD_TASK) == {"vm1": "changed", "vm2": "ok"}
    assert once.task_results(ONCE_OUTPUT, once.LOAD_TASK, prefix=True) == {"vm2": "changed"}
    assert once.loaded_from(ONCE_OUTPUT) == {"vm2": "vm1"}
    # A task of another name that starts the same is not the build of web.
    assert once.task_results(ONCE_OUTPUT, "Build the image of webhooks") == {"vm2": "changed"}
    assert once.changed_hosts(once.task_results(ONCE_OUTPUT, once.BUILD_TASK)) == ["vm1"]
    # Without build once: a build per VM, no load; a failed build says so.
    assert once.task_results(EACH_OUTPUT, once.BUILD_TASK) == {
        "vm1": "changed", "vm2": "changed", "vm3": "changed", "vm4": "fatal"}
    assert once.task_results(EACH_OUTPUT, once.LOAD_TASK, prefix=True) == {}
    assert once.loaded_from(EACH_OUTPUT) == {}
    assert once.task_results("", once.BUILD_TASK) == {}


def test_order_alternates_and_what_each_variant_should_show():
    assert once.order(1) == [BEFORE, AFTER] and once.order(2) == [AFTER, BEFORE] and once.order(3) == once.order(1)
    assert once.expected(AFTER, 4) == (1, 3) and once.expected(BEFORE, 4) == (4, 0)
    assert once.BUILD_ONCE == {BEFORE: "false", AFTER: "true"}


@pytest.mark.parametrize("argv, message", [
    (["--sizes", "4,2"], "smallest first"),
    (["--sizes", "1,2"], "each at least 2"),
    (["--sizes", "2,2"], "smallest first"),
    (["--sizes", "two"], "whole numbers"),
    (["--sizes", ""], "at least one size"),
    (["--repeat", "2"], "from 3 to 20"),
    (["--max-minutes", "0"], "more than 0"),
])
def test_arguments_are_checked(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        once.main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_help_runs_as_a_script():
    proc = subprocess.run([sys.executable, str(BENCH / "build_once.py"), "--help"], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    assert "--sizes" in proc.stdout and "--max-minutes" in proc.stdout


# -- figures -----------------------------------------------------------------------

def variant_run(seconds, size, variant, ok=True, same=True):
    builds, loads = once.expected(variant, size)
    vms = ["vm%d" % i for i in range(1, size + 1)]
    return {"ok": ok, "error": None if ok else "boom", "seconds": seconds, "tasks": 40 * size, "changed": 6 * size,
            "built_on": vms[:builds], "loaded_on": vms[1:1 + loads], "builds": builds, "loads": loads,
            "as_expected": True, "same_image": same,
            "image": {vm: "sha256:%s" % ("a" if same or vm == "vm1" else vm) for vm in vms}}


def rep(repetition, size, before_s, after_s, ok=True, same_after=True, same_before=True):
    return {"repetition": repetition, "order": once.order(repetition),
            BEFORE: variant_run(before_s, size, BEFORE, same=same_before),
            AFTER: variant_run(after_s, size, AFTER, ok=ok, same=same_after)}


def test_summarise_per_variant_and_the_ratio_repetition_by_repetition():
    runs = [rep(1, 4, 200.0, 150.0), rep(2, 4, 220.0, 110.0, same_before=False), rep(3, 4, 180.0, 162.0),
            rep(4, 4, 1.0, 1.0, ok=False)]
    summary = once.summarise(runs)
    # The failed repetition counts in none of the figures.
    assert summary["repetitions"] == 3
    after, before = summary["variants"][AFTER], summary["variants"][BEFORE]
    assert before["seconds"] == {"median": 200.0, "min": 180.0, "max": 220.0, "runs": [200.0, 220.0, 180.0]}
    assert after["seconds"]["median"] == 150.0
    assert after["builds"] == [1, 1, 1] and after["loads"] == [3, 3, 3]
    assert before["builds"] == [4, 4, 4] and before["loads"] == [0, 0, 0]
    assert after["same_image"] == 3 and before["same_image"] == 2 and after["as_expected"] == 3
    # 150/200, 110/220, 162/180: taken run by run, then summarised.
    assert summary["ratio"] == {"median": 0.75, "min": 0.5, "max": 0.9, "runs": [0.75, 0.5, 0.9]}
    assert once.summarise([rep(1, 2, 1.0, 1.0, ok=False)]) == {"repetitions": 0}
    assert once.summarise([]) == {"repetitions": 0}


# -- main() with stand-ins for the lab -------------------------------------------------

class Lab(object):
    """What bench/build_once.py asks of the lab: its size, the git host's version, the VMs, the playbooks."""

    def __init__(self, tmp_path, monkeypatch, serves_new=True, loads=True):
        self.size, self.version, self.deployed = 2, "1.0.0", "1.0.0"
        self.serves_new, self.loads = serves_new, loads
        self.playbooks, self.commits, self.sizes, self.restored, self.written = [], [], [], [], []
        self.tmp_path = tmp_path
        (tmp_path / "VERSION").write_text("1.0.0\n")
        for name in ("work_tree", "run_playbook", "commit_version", "served_version", "vm_run", "restore_fleet",
                     "write_result", "lab_up"):
            monkeypatch.setattr(once, name, getattr(self, name))
        monkeypatch.setattr(once.labctl, "read_fleet", self.read_fleet)

    def read_fleet(self):
        return [{"hostname": "vm%d" % i, "http_port": 8000 + i, "ssh_port": 2200 + i} for i in range(1, self.size + 1)]

    def lab_up(self, size):
        self.sizes.append(size)
        self.size = size

    def work_tree(self):
        return self.tmp_path

    def run_playbook(self, args, timeout=1800, output=False):
        self.playbooks.append(args)
        self.deployed = self.version
        vms = ["vm%d" % i for i in range(1, self.size + 1)]
        text = ""
        for vm in vms:
            shared = "apps_build_once=true" in args and vm != "vm1" and self.loads
            text += "PLAY [Deploy the apps, one host at a time] ****\n\n"
            if shared:
                text += "TASK [appfleet.docker.apps : Load the image of web built on vm1] ****\nchanged: [%s]\n\n" % vm
            text += "TASK [appfleet.docker.apps : Build the image of web] ****\n%s: [%s]\n\n" % (
                "ok" if shared else "changed", vm)
        result = {"seconds": 50.0 * self.size if "apps_build_once=false" in args else 40.0 * self.size,
                  "tasks": 40, "changed": 5, "hosts": {}, "deploying": {}}
        if output:
            result["output"] = text
        return result

    def commit_version(self, text, message):
        self.version = text
        self.commits.append(text)
        return "%040d" % len(self.commits)

    def served_version(self, url, host=None, timeout=5):
        return 200, "web %s hello" % (self.deployed if self.serves_new else "1.0.0")

    def vm_run(self, vm, command, timeout=600, check=True, script=None):
        assert command == "docker inspect --format '{{.Image}}' web"
        return subprocess.CompletedProcess(command, 0, "sha256:%s\n" % self.deployed, "")

    def restore_fleet(self, original, hosts):
        self.restored.append((original, self.size))
        return {"vm1 web": [200, "web %s hello" % original]}

    def write_result(self, prefix, result):
        self.written.append((prefix, json.loads(json.dumps(result))))


def test_main_measures_each_size_alternating_and_restores(tmp_path, monkeypatch):
    lab = Lab(tmp_path, monkeypatch)
    assert once.main(["--sizes", "2,4", "--repeat", "3"]) == 0
    (prefix, got), = lab.written
    assert prefix == "build_once" and got["complete"] and got["stopped"] is None
    assert got["benchmark"] == "build-once" and got["sizes"] == [2, 4]
    # Each size: converge (site.yml, deploy.yml), then two deploys of web per repetition.
    deploys = [p for p in lab.playbooks if "apps=web" in p]
    assert len(deploys) == 12 and lab.playbooks.count(["site.yml"]) == 2
    assert deploys[0][-1] == "apps_build_once=false" and deploys[2][-1] == "apps_build_once=true"
    assert len(lab.commits) == 12 and len(set(lab.commits)) == 12
    assert all(c.startswith("1.0.0+bench.once.") for c in lab.commits)
    assert got["fleets"] == {"2": ["vm1", "vm2"], "4": ["vm1", "vm2", "vm3", "vm4"]}
    four = got["summary"]["4"]
    assert four["repetitions"] == 3
    assert four["variants"][AFTER]["builds"] == [1, 1, 1] and four["variants"][AFTER]["loads"] == [3, 3, 3]
    assert four["variants"][BEFORE]["builds"] == [4, 4, 4] and four["variants"][BEFORE]["same_image"] == 3
    assert four["ratio"]["median"] == 0.8
    run = got["runs"]["4"][0][AFTER]
    assert run["built_on"] == ["vm1"] and run["load_from"] == {"vm2": "vm1", "vm3": "vm1", "vm4": "vm1"}
    assert run["as_expected"] and run["same_image"] and set(run["served"]) == {"vm1", "vm2", "vm3", "vm4"}
    # Restored at 4 VMs, then back to the first size.
    assert lab.sizes == [2, 4, 2] and lab.restored == [("1.0.0", 4)] and got["cleanup"]["lab_vms"] == 2


def test_a_run_that_does_not_serve_the_new_version_stops_and_restores(tmp_path, monkeypatch):
    lab = Lab(tmp_path, monkeypatch, serves_new=False)
    assert once.main(["--sizes", "2,4"]) == 1
    got = lab.written[0][1]
    assert not got["complete"] and list(got["runs"]) == ["2"] and len(got["runs"]["2"]) == 1
    assert got["stopped"].startswith("2 VMs, repetition 1: every VM builds failed: after the deploy vm1, vm2 did not")
    assert got["summary"] == {"2": {"repetitions": 0}}
    # Stopped at the first size: no resize back.
    assert lab.sizes == [2] and lab.restored == [("1.0.0", 2)]


def test_a_build_once_that_builds_everywhere_is_recorded_not_hidden(tmp_path, monkeypatch):
    lab = Lab(tmp_path, monkeypatch, loads=False)
    assert once.main(["--sizes", "2"]) == 0
    after = lab.written[0][1]["runs"]["2"][0][AFTER]
    assert after["builds"] == 2 and after["loads"] == 0 and not after["as_expected"]


def test_an_error_still_restores_the_lab_and_writes_the_result(tmp_path, monkeypatch):
    lab = Lab(tmp_path, monkeypatch)
    calls = []

    def broken(args, timeout=1800, output=False):
        calls.append(args)
        if lab.size == 4:
            raise SystemExit("bench: site.yml failed (rc=2)")
        return lab.run_playbook(args, timeout, output)

    monkeypatch.setattr(once, "run_playbook", broken)
    with pytest.raises(SystemExit):
        once.main(["--sizes", "2,4"])
    got = lab.written[0][1]
    assert got["stopped"] == "error: bench: site.yml failed (rc=2)" and len(got["runs"]["2"]) == 3
    assert got["summary"]["2"]["repetitions"] == 3
    assert lab.sizes == [2, 4, 2] and lab.restored == [("1.0.0", 4)]


def test_max_minutes_starts_no_more_repetitions(tmp_path, monkeypatch):
    lab = Lab(tmp_path, monkeypatch)
    clock = iter(range(0, 100000, 1000))
    monkeypatch.setattr(once, "now", lambda: next(clock))
    assert once.main(["--sizes", "2,4", "--max-minutes", "30"]) == 0
    got = lab.written[0][1]
    assert got["stopped"].startswith("--max-minutes 30: stopped before") and not got["complete"]
    assert lab.restored


# -- report.py ---------------------------------------------------------------------

def result(runs_by_size, repeat_asked=3, stopped=None):
    return {
        "benchmark": "build-once", "date": "2026-12-01T10:00:00+00:00", "commit": "abcdef123456",
        "machine": {"cpus": 2, "python": "3.11.7", "kernel": "6.1"}, "app": "web",
        "sizes": [int(s) for s in runs_by_size], "repeat_asked": repeat_asked, "max_minutes": 60.0,
        "runs": runs_by_size, "summary": {s: once.summarise(r) for s, r in runs_by_size.items()},
        "complete": stopped is None, "stopped": stopped,
    }


def test_build_once_section_table_ratio_and_chart(charts):
    made = result({"2": [rep(1, 2, 100.0, 90.0), rep(2, 2, 110.0, 88.0), rep(3, 2, 96.0, 96.0)],
                   "4": [rep(1, 4, 200.0, 150.0), rep(2, 4, 220.0, 110.0, same_before=False),
                         rep(3, 4, 180.0, 162.0)]})
    lines = report.build_once_section(json.loads(json.dumps(made)))
    text = "\n".join(lines)
    assert lines[0] == "## Build once"
    assert "| date | 2026-12-01T10:00:00+00:00 |" in lines and "| commit | `abcdef123456` |" in lines
    assert "| repetitions | 2 VMs: 3 of 3 asked, 4 VMs: 3 of 3 asked |" in lines
    assert "| 2 | every VM builds | 100.00 (96.00–110.00) | 2, 2, 2 | 0, 0, 0 | 3 of 3 runs |" in lines
    assert "| 2 | build once | 90.00 (88.00–96.00) | 1, 1, 1 | 1, 1, 1 | 3 of 3 runs |" in lines
    assert "| 4 | every VM builds | 200.00 (180.00–220.00) | 4, 4, 4 | 0, 0, 0 | 2 of 3 runs |" in lines
    assert "| 4 | build once | 150.00 (110.00–162.00) | 1, 1, 1 | 3, 3, 3 | 3 of 3 runs |" in lines
    assert "2 VMs **0.90 (0.80–1.00)**; 4 VMs **0.75 (0.50–0.90)**." in text
    assert "![build once](benchmarks/build-once.png)" in lines
    assert charts[0]["filename"] == "build-once.png"
    assert charts[0]["labels"] == ["2 VMs\nevery VM builds", "2 VMs\nbuild once", "4 VMs\nevery VM builds",
                                   "4 VMs\nbuild once"]
    assert [f["median"] for f in charts[0]["figs"]] == [100.0, 90.0, 200.0, 150.0]


def test_build_once_section_says_when_runs_are_missing(charts):
    short = "\n".join(report.build_once_section(result({"2": [rep(1, 2, 100.0, 90.0)], "4": []},
                                                       stopped="--max-minutes 60: stopped before repetition 1")))
    assert "2 VMs: 1 of 3 asked, 4 VMs: 0 of 3 asked (**fewer than the 3 the rules ask for**: --max-minutes" in short
    assert "| 2 | build once |" in short and "| 4 |" not in short and "2 VMs **0.90 (0.90–0.90)**." in short
    failed = report.build_once_section(result({"2": [rep(1, 2, 1.0, 1.0, ok=False)]}, stopped="boom"))
    assert "No repetition completed: boom" in failed
    assert len(charts) == 1


def test_report_writes_the_build_once_section_last_and_keeps_it_without_a_result(charts):
    (report.RESULTS / "build_once-20261201T100000.json").write_text(json.dumps(result(
        {"2": [rep(1, 2, 100.0, 90.0), rep(2, 2, 110.0, 88.0), rep(3, 2, 96.0, 96.0)]})))
    report.DOC.write_text("# Benchmarks\n\n## Build\n\nold build 48.8 s\n")
    assert report.main() == 0
    text = report.DOC.read_text()
    assert text.index("## Build\n") < text.index("## Build once") and "old build 48.8 s" in text
    # A build result alone on another machine: the build once section stays as written.
    (report.RESULTS / "build_once-20261201T100000.json").unlink()
    scale = {"benchmark": "scale", "date": "d", "commit": "c", "machine": {"cpus": 2}, "sizes": [2, 4],
             "seconds": {"2": {"median": 4.0, "min": 3.0, "max": 5.0}, "4": {"median": 8.0, "min": 7.0, "max": 9.0}},
             "growth": {"2": 1.0, "4": 2.0}, "changed": {"2": [0], "4": [0]}}
    (report.RESULTS / "scale-20261201T100000.json").write_text(json.dumps(scale))
    assert report.main() == 0
    kept = report.DOC.read_text()
    assert "| 2 | build once | 90.00 (88.00–96.00) | 1, 1, 1 | 1, 1, 1 | 3 of 3 runs |" in kept
    assert kept.count("## Build once") == 1 and "## Scale" in kept
