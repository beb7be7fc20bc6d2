"""bench/build.py, bench/build_floor.py and the build section of bench/report.py, without the lab.

The figures and the report section come from made-up runs; the VM-side floor script runs
here against a real git repository and a stand-in `docker` (a script on PATH that starts a
small HTTP server for `docker run`), so no engine and no lab VM is involved.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from .scripts import load_script

build = load_script("build.py", "bench_build")
floor = load_script("build_floor.py", "bench_build_floor")
report = load_script("report.py", "bench_report")

RAW, APPFLEET = build.RAW, build.APPFLEET


def run(repetition, raw_s, app_s, reused=True, ok=True, cached=2):
    """One repetition as bench/build.py records it."""
    layers = ["sha256:base", "sha256:top%d" % repetition]
    return {
        "repetition": repetition, "commit": "%012d" % repetition, "version_new": "1.0.0+bench.build.x.%d" % repetition,
        "order": build.order(repetition),
        RAW: {"ok": True, "error": None, "ready_s": raw_s, "build_s": raw_s - 1.0, "run_s": raw_s - 0.5,
              "healthy_s": raw_s + 2.0, "clone_s": 0.4, "ssh_wall_s": raw_s + 3.0, "cached_steps": cached,
              "layers": layers},
        APPFLEET: {"ok": ok, "error": None if ok else "boom", "seconds": app_s, "tasks": 30, "changed": 4,
                   "layers": layers if reused else ["sha256:base", "sha256:other"]},
        "cache": {"second": build.order(repetition)[1], "second_reused_layers": reused},
    }


def test_the_order_alternates_raw_first():
    assert build.order(1) == [RAW, APPFLEET]
    assert build.order(2) == [APPFLEET, RAW]
    assert build.order(3) == build.order(1)


def test_cache_check_compares_the_layers_of_both_images():
    assert build.cache_check(run(1, 5.0, 20.0, reused=True)) is True
    assert build.cache_check(run(1, 5.0, 20.0, reused=False)) is False
    missing = run(1, 5.0, 20.0)
    missing[APPFLEET]["layers"] = None
    assert build.cache_check(missing) is None


def test_summarise_overhead_and_ratio_per_repetition():
    runs = [run(1, 4.0, 20.0), run(2, 5.0, 30.0, reused=False, cached=0), run(3, 8.0, 24.0),
            run(4, 1.0, 99.0, ok=False)]
    summary = build.summarise(runs)
    # The failed repetition counts in none of the figures.
    assert summary["repetitions"] == 3
    assert summary["seconds"][RAW] == {"median": 5.0, "min": 4.0, "max": 8.0, "runs": [4.0, 5.0, 8.0]}
    assert summary["seconds"][APPFLEET]["median"] == 24.0
    # Overhead and ratio are taken run by run, then summarised: 16, 25, 16 and 5, 6, 3.
    assert summary["overhead_s"] == {"median": 16.0, "min": 16.0, "max": 25.0, "runs": [16.0, 25.0, 16.0]}
    assert summary["ratio"] == {"median": 5.0, "min": 3.0, "max": 6.0, "runs": [5.0, 6.0, 3.0]}
    assert summary["raw_parts"]["build_s"]["median"] == 4.0
    assert summary["raw_parts"]["healthy_s"]["max"] == 10.0
    assert summary["tasks"] == [30, 30, 30] and summary["changed"] == [4, 4, 4]
    cache = summary["cache"]
    assert cache["raw_cached_steps"] == [2, 0, 2]
    # Repetitions 1 and 3: raw first, appfleet second (reused); 2: raw second (did not reuse).
    assert cache["second"] == {RAW: 1, APPFLEET: 2}
    assert cache["second_reused_layers"] == 2
    assert cache["second_reused_layers_by"] == {RAW: 0, APPFLEET: 2}
    assert build.summarise([run(1, 4.0, 20.0, ok=False)]) == {"repetitions": 0}


def test_floor_args_come_from_the_inventory_and_parse():
    web = next(a for a in build.inventory_apps() if a["name"] == "web")
    args = build.floor_args(web, "a" * 40, 2, "/etc/appfleet/keys")
    parsed = floor.arguments().parse_args(args)
    assert parsed.repo == web["source"]["repo"] and parsed.branch == "main" and parsed.commit == "a" * 40
    assert parsed.key == "/etc/appfleet/keys/web" and parsed.known_hosts == "/etc/appfleet/keys/web.known_hosts"
    assert parsed.dir == "/srv/bench-build/web" and parsed.tag == "bench-build/web:r2"
    assert parsed.port == 8080 and parsed.health_path == "/health" and parsed.timeout == 60
    assert parsed.build_arg == ["BASE_IMAGE=appfleet-lab/debian:bookworm"]
    assert parsed.context == "." and parsed.dockerfile == "Dockerfile"
    # The apps role's key directory, read from its defaults.
    assert build.key_dir() == "/etc/appfleet/keys"


# -- report.py ---------------------------------------------------------------------

def result(runs, repeat_asked=3, stopped=None):
    summary = build.summarise(runs)
    return {
        "benchmark": "build", "date": "2026-12-01T10:00:00+00:00", "commit": "abcdef123456",
        "machine": {"cpus": 2, "python": "3.11.7", "kernel": "6.1"}, "vm": "vm1", "app": "web",
        "repeat_asked": repeat_asked, "runs": runs, "complete": stopped is None, "stopped": stopped,
        "vm_facts": {"docker_client": "20.10.24+dfsg1", "docker_server": "20.10.24+dfsg1", "builder": "buildkit",
                     "git": "git version 2.39.5", "curl": "curl 7.88.1", "python3": "3.11.2"},
        "summary": summary, "repetitions_completed": summary["repetitions"],
    }


def test_build_section_table_overhead_ratio_and_cache(charts):
    lines = report.build_section(result([run(1, 4.0, 20.0), run(2, 5.0, 30.0, reused=False, cached=0),
                                         run(3, 8.0, 24.0)]))
    text = "\n".join(lines)
    assert lines[0] == "## Build"
    assert "| raw docker: build start to first 200, s | 5.00 | 4.00 | 8.00 |" in lines
    assert "| appfleet: deploy.yml, s | 24.00 | 20.00 | 30.00 |" in lines
    assert "| overhead appfleet − raw, s | 16.00 | 16.00 | 25.00 |" in lines
    assert "| ratio appfleet / raw | 5.00 | 3.00 | 6.00 |" in lines
    assert "| commit | `abcdef123456` |" in lines and "| repetitions | 3 of 3 asked |" in lines
    assert "Docker client 20.10.24+dfsg1" in text and "builder buildkit" in text
    assert "in 2 of 3 repetitions (raw docker second: 0 of 1, appfleet second: 2 of 2)" in text
    assert "per run: 2, 0, 2." in text and "appfleet went second once more" in text
    assert "30, 30, 30 tasks, changed 4, 4, 4" in text
    assert "![build](benchmarks/build.png)" in lines
    assert charts[0]["labels"] == ["raw docker", "appfleet", "overhead"]
    assert [f["median"] for f in charts[0]["figs"]] == [5.0, 24.0, 16.0]


def test_build_section_says_when_runs_are_missing(charts):
    short = "\n".join(report.build_section(result([run(1, 4.0, 20.0), run(2, 5.0, 30.0)], stopped=None)))
    assert "2 of 3 asked (**fewer than the 3 the rules ask for**)" in short
    failed = report.build_section(result([run(1, 4.0, 20.0, ok=False)], repeat_asked=3,
                                         stopped="repetition 1: appfleet failed: boom"))
    assert "No repetition completed: repetition 1: appfleet failed: boom" in failed
    # A chart for the two repetitions, none without any.
    assert len(charts) == 1


def test_report_without_a_build_result_has_no_build_section(charts):
    scale = {"benchmark": "scale", "date": "d", "commit": "c", "machine": {"cpus": 2}, "sizes": [2, 4],
             "seconds": {"2": {"median": 4.0, "min": 3.0, "max": 5.0}, "4": {"median": 8.0, "min": 7.0, "max": 9.0}},
             "growth": {"2": 1.0, "4": 2.0}, "changed": {"2": [0], "4": [0]}}
    (report.RESULTS / "scale-20261201T100000.json").write_text(json.dumps(scale))
    assert report.main() == 0
    assert "## Scale" in report.DOC.read_text() and "## Build" not in report.DOC.read_text()
    (report.RESULTS / "build-20261201T110000.json").write_text(json.dumps(result([run(1, 4.0, 20.0)], 1)))
    assert report.main() == 0
    assert "## Build" in report.DOC.read_text()


def test_report_keeps_the_written_section_of_a_benchmark_without_a_result(charts):
    """bench/results is not committed: on a new machine one benchmark's run must not erase the others."""
    report.DOC.write_text("# Benchmarks\n\nold header\n\n## Deploy under load\n\n| lane | failed |\n| ka | 0 |\n\n"
                          "![run 1](benchmarks/deploy-under-load-1.png)\n\n## Scale\n\nold scale 9.9\n\n"
                          "## Build\n\nold build 48.8 s\n")
    scale = {"benchmark": "scale", "date": "d", "commit": "c", "machine": {"cpus": 2}, "sizes": [2, 4],
             "seconds": {"2": {"median": 4.0, "min": 3.0, "max": 5.0}, "4": {"median": 8.0, "min": 7.0, "max": 9.0}},
             "growth": {"2": 1.0, "4": 2.0}, "changed": {"2": [0], "4": [0]}}
    (report.RESULTS / "scale-20261201T100000.json").write_text(json.dumps(scale))
    assert report.main() == 0
    text = report.DOC.read_text()
    # Kept as written, in the report's order; the measured one replaced.
    assert "| ka | 0 |\n\n![run 1](benchmarks/deploy-under-load-1.png)" in text
    assert "old build 48.8 s" in text and "old scale 9.9" not in text and "old header" not in text
    assert text.index("## Deploy under load") < text.index("## Scale") < text.index("## Build")
    assert text.count("## Scale") == 1


def test_report_keeps_notes_written_by_hand_for_the_same_run_only(charts):
    """Notes between the markers stay when the section is made again from the same result,
    and go when a new run replaces it (they were about the old one)."""
    scale = {"benchmark": "scale", "date": "2026-12-01T10:00:00+00:00", "commit": "c", "machine": {"cpus": 2},
             "sizes": [2, 4], "seconds": {"2": {"median": 4.0, "min": 3.0, "max": 5.0},
                                          "4": {"median": 8.0, "min": 7.0, "max": 9.0}},
             "growth": {"2": 1.0, "4": 2.0}, "changed": {"2": [0], "4": [0]}}
    (report.RESULTS / "scale-20261201T100000.json").write_text(json.dumps(scale))
    assert report.main() == 0
    note = [report.HAND_START, "Found in this run: the git server reset connections.", report.HAND_END]
    text = report.DOC.read_text()
    report.DOC.write_text(text.rstrip("\n") + "\n\n" + "\n".join(note) + "\n")
    assert report.main() == 0
    assert "\n".join(note) in report.DOC.read_text()
    assert report.DOC.read_text().count(report.HAND_START) == 1
    (report.RESULTS / "scale-20261202T100000.json").write_text(json.dumps(dict(scale, date="2026-12-02T10:00:00+00:00")))
    assert report.main() == 0
    assert "git server reset" not in report.DOC.read_text()


def test_scale_shows_the_idle_lab_cpu_when_recorded(charts):
    scale = {"benchmark": "scale", "date": "2026-12-01T10:00:00+00:00", "commit": "c", "machine": {"cpus": 2},
             "sizes": [2, 8], "seconds": {"2": {"median": 4.0, "min": 3.0, "max": 5.0},
                                          "8": {"median": 9.0, "min": 8.0, "max": 9.5}},
             "growth": {"2": 1.0, "8": 2.25}, "changed": {"2": [0], "8": [0]}, "idle_cores": {"2": 0.08}}
    (report.RESULTS / "scale-20261201T100000.json").write_text(json.dumps(scale))
    assert report.main() == 0
    text = report.DOC.read_text()
    assert "| idle lab CPU (cores) |" in text
    assert "| 2 | 4.00 (3.00–5.00) | 1.00× | 0 | not recorded | 0.08 |" in text
    assert "| 8 | 9.00 (8.00–9.50) | 2.25× | 0 | not recorded | not recorded |" in text


def test_report_without_any_result_writes_nothing(charts):
    report.DOC.write_text("# Benchmarks\n\n## Build\n\nold build\n")
    assert report.main() == 1
    assert report.DOC.read_text() == "# Benchmarks\n\n## Build\n\nold build\n"


# -- build_floor.py on a stand-in docker ---------------------------------------------

FAKE_DOCKER = r'''#!%(python)s
"""docker as build_floor.py uses it: images and containers are files under $FAKE_DOCKER_STATE."""
import os, subprocess, sys, time
state = os.environ["FAKE_DOCKER_STATE"]
args = sys.argv[1:]


def at(kind, name):
    return os.path.join(state, kind + "-" + name.replace("/", "_").replace(":", "_"))


def log(line):
    with open(os.path.join(state, "calls"), "a") as fh:
        fh.write(line + "\n")


log(" ".join(args) + " BUILDKIT=" + os.environ.get("DOCKER_BUILDKIT", ""))
if args[0] == "version":
    print("20.10.24+dfsg1")
elif args[0] == "build":
    with open(at("image", args[args.index("-t") + 1]), "w") as fh:
        fh.write(args[-1])
    print("#5 [1/3] FROM base\n#5 CACHED\n\n#6 [2/3] WORKDIR /app\n#6 CACHED\n\n#7 [3/3] COPY server.py VERSION ./\n#7 DONE")
elif args[0] == "run":
    name = args[args.index("--name") + 1]
    with open(at("image", args[-1])) as fh:
        context = fh.read()
    proc = subprocess.Popen([sys.executable, %(server)r, context, at("port", name)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(at("container", name), "w") as fh:
        fh.write(str(proc.pid))
    print("f00d")
elif args[0] == "port":
    for _ in range(100):
        if os.path.exists(at("port", args[1])):
            break
        time.sleep(0.05)
    with open(at("port", args[1])) as fh:
        print("127.0.0.1:" + fh.read())
elif args[0] == "inspect":
    print("healthy")
elif args[0] in ("image", "container"):
    kind = args[0]
    if not os.path.exists(at(kind, args[-1])):
        sys.exit(1)
    print('["sha256:base","sha256:app"]' if "-f" in args else "[]")
elif args[0] == "rm":
    path = at("container", args[-1])
    if os.path.exists(path):
        with open(path) as fh:
            os.kill(int(fh.read()), 15)
        os.remove(path)
elif args[0] == "rmi":
    os.remove(at("image", args[-1]))
else:
    sys.exit(2)
'''

FAKE_APP = r'''
"""The web sample app's two answers: / with the VERSION of the built context, /health."""
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

with open(sys.argv[1] + "/VERSION") as fh:
    VERSION = fh.read().strip()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = (b"ok\n" if self.path == "/health" else ("web %s hello\n" % VERSION).encode())
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", 0), Handler)
with open(sys.argv[2], "w") as fh:
    fh.write(str(server.server_address[1]))
server.serve_forever()
'''


@pytest.fixture
def vm(tmp_path, monkeypatch):
    """A git repository of the app, a stand-in docker on PATH, and the floor's arguments."""
    repo = tmp_path / "web"
    repo.mkdir()
    (repo / "VERSION").write_text("2.0.0\n")
    (repo / "Dockerfile").write_text("FROM base\n")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@localhost"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "web 2.0.0"], check=True)
    head = subprocess.run(git + ["rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    state, bin_dir = tmp_path / "docker", tmp_path / "bin"
    state.mkdir()
    bin_dir.mkdir()
    (tmp_path / "app.py").write_text(FAKE_APP)
    docker = bin_dir / "docker"
    docker.write_text(FAKE_DOCKER % {"python": sys.executable, "server": str(tmp_path / "app.py")})
    docker.chmod(0o755)
    monkeypatch.setenv("FAKE_DOCKER_STATE", str(state))
    monkeypatch.setenv("PATH", "%s:%s" % (bin_dir, os.environ["PATH"]))
    monkeypatch.setattr(floor, "POLL", 0.02)
    args = ["--repo", "file://%s" % repo, "--branch", "main", "--commit", head, "--key", "/nonexistent",
            "--known-hosts", "/nonexistent", "--dir", str(tmp_path / "scratch" / "web"), "--tag", "bench-build/web:r1",
            "--name", "bench-build-web", "--port", "8080", "--health-path", "/health", "--timeout", "10",
            "--build-arg", "BASE_IMAGE=base"]
    yield {"args": args, "state": state, "dir": tmp_path / "scratch" / "web"}
    for pidfile in state.glob("container-*"):
        os.kill(int(pidfile.read_text()), signal.SIGTERM)


def answer(capsys, args):
    assert floor.main(args) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_floor_builds_runs_waits_for_200_and_removes_all(vm, capsys):
    got = answer(capsys, vm["args"])
    assert got["error"] is None, got
    assert got["served"] == "web 2.0.0 hello"
    assert got["builder"] == "buildkit" and got["cached_steps"] == 2
    assert 0 <= got["build_s"] <= got["run_s"] <= got["ready_s"] <= got["healthy_s"]
    assert got["layers"] == ["sha256:base", "sha256:app"]
    assert got["removed"] is True and not vm["dir"].exists()
    assert not list(vm["state"].glob("container-*")) and not list(vm["state"].glob("image-*"))
    calls = (vm["state"] / "calls").read_text()
    build_call = next(line for line in calls.splitlines() if line.startswith("build "))
    assert "--build-arg BASE_IMAGE=base" in build_call and "--progress=plain" in build_call
    assert build_call.endswith("BUILDKIT=1") and "-f %s/Dockerfile " % vm["dir"] in build_call
    assert "run -d --name bench-build-web -p 127.0.0.1::8080 bench-build/web:r1" in calls


def test_floor_refuses_a_clone_at_another_commit_and_cleans_up(vm, capsys):
    args = list(vm["args"])
    args[args.index("--commit") + 1] = "0" * 40
    got = answer(capsys, args)
    assert "not at " + "0" * 40 in got["error"]
    assert "build_s" not in got and got["removed"] is True and not vm["dir"].exists()


def test_facts_say_what_the_vm_has(vm, capsys):
    got = answer(capsys, ["--facts"])
    assert got["docker_client"] == "20.10.24+dfsg1" and got["builder"] == "buildkit"
    assert got["git"].startswith("git version") and got["python3"] == sys.version.split()[0]


# -- build.py's run, with stand-ins for the lab ----------------------------------------

class Lab(object):
    """What bench/build.py asks of the lab, answered here: the git host's version, the VM, the playbooks."""

    def __init__(self, tmp_path, monkeypatch, appfleet_serves_new=True):
        self.version = "1.0.0"
        self.appfleet_serves_new = appfleet_serves_new
        self.playbooks, self.commits, self.restored, self.written = [], [], [], []
        (tmp_path / "VERSION").write_text("1.0.0\n")
        for name in ("lab_vm", "work_tree", "run_playbook", "wait_serving", "commit_version", "served_version",
                     "vm_run", "on_vm", "restore_fleet", "write_result"):
            monkeypatch.setattr(build, name, getattr(self, name))
        self.tmp_path = tmp_path

    def lab_vm(self, name):
        return {"hostname": name, "http_port": 8001, "ssh_port": 2201}

    def work_tree(self):
        return self.tmp_path

    def run_playbook(self, args, timeout=1800):
        self.playbooks.append(args)
        self.deployed = self.version
        return {"seconds": 20.0 + len(self.playbooks), "tasks": 30, "changed": 4, "hosts": {}}

    def wait_serving(self, url, host=None, timeout=60):
        return 200, "web 1.0.0 hello"

    def commit_version(self, text, message):
        self.version = text
        self.commits.append(text)
        return "%040d" % len(self.commits)

    def served_version(self, url, host=None, timeout=5):
        return 200, "web %s hello" % (self.deployed if self.appfleet_serves_new else "1.0.0")

    def vm_run(self, vm, command, timeout=600, check=True, script=None):
        out = '["sha256:base", "sha256:%s"]' % self.version if "RootFS" in command else ""
        return subprocess.CompletedProcess(command, 0, out, "")

    def on_vm(self, vm, args, timeout):
        if args == ["--facts"]:
            return {"docker_client": "20.10.24+dfsg1", "builder": "buildkit"}
        return {"error": None, "served": "web %s hello" % self.version, "build_s": 4.0, "run_s": 4.5, "ready_s": 5.0,
                "healthy_s": 7.0, "clone_s": 0.3, "cached_steps": 1, "ssh_wall_s": 8.0, "removed": True,
                "layers": ["sha256:base", "sha256:%s" % self.version]}

    def restore_fleet(self, original, hosts):
        self.restored.append(original)
        return {"vm1 web": [200, "web %s hello" % original]}

    def write_result(self, prefix, report):
        self.written.append((prefix, report))


def test_main_alternates_measures_and_restores(tmp_path, monkeypatch):
    lab = Lab(tmp_path, monkeypatch)
    assert build.main(["--repeat", "2"]) == 0
    (prefix, got), = lab.written
    assert prefix == "build" and got["complete"] and got["stopped"] is None
    # One untimed deploy of web on vm1 first, then one per repetition.
    assert lab.playbooks == [["playbooks/deploy.yml", "-l", "vm1", "-e", "apps=web"]] * 3
    assert [run["order"] for run in got["runs"]] == [[RAW, APPFLEET], [APPFLEET, RAW]]
    assert len(lab.commits) == 2 and all(c.startswith("1.0.0+bench.build.") for c in lab.commits)
    assert got["summary"]["repetitions"] == 2 and got["repetitions_completed"] == 2
    assert got["summary"]["seconds"][RAW]["median"] == 5.0
    assert got["summary"]["cache"]["second_reused_layers"] == 2
    assert got["vm_facts"]["builder"] == "buildkit"
    assert lab.restored == ["1.0.0"] and got["cleanup"]["left_on_vm"] == []


def test_a_deploy_that_does_not_serve_the_new_version_stops_the_run(tmp_path, monkeypatch):
    lab = Lab(tmp_path, monkeypatch, appfleet_serves_new=False)
    assert build.main(["--repeat", "3"]) == 1
    got = lab.written[0][1]
    assert len(got["runs"]) == 1 and not got["complete"]
    assert got["stopped"].startswith("repetition 1: appfleet failed: after the deploy nginx answered 200")
    assert got["summary"] == {"repetitions": 0} and lab.restored == ["1.0.0"]


def test_an_error_still_restores_the_lab_and_writes_the_result(tmp_path, monkeypatch):
    lab = Lab(tmp_path, monkeypatch)

    def broken(args, timeout=1800):
        raise SystemExit("bench: playbooks/deploy.yml failed (rc=2)")

    monkeypatch.setattr(build, "run_playbook", broken)
    with pytest.raises(SystemExit):
        build.main(["--repeat", "3"])
    got = lab.written[0][1]
    assert got["stopped"] == "error: bench: playbooks/deploy.yml failed (rc=2)" and got["runs"] == []
    assert lab.restored == ["1.0.0"]
