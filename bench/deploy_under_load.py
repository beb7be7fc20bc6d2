"""Deploy under load: the seed's manual flow, community.docker and appfleet, side by side.

Each method deploys a new commit of the sample app `web` on one lab VM (vm1)
while bench/load.py sends traffic to what that method serves; the methods run
interleaved, --repeat times (the order rotates from one repetition to the next):

- seed: the users' manual flow over SSH, in a checkout of its own on the VM
  (/srv/bench-seed/web, container seed-web on the VM's 127.0.0.1:9200):
  `git pull; docker stop seed-web; docker build -t seed-web .; docker start seed-web`.
  `docker start` restarts the old container, so the old image keeps serving.
- community.docker: bench/baselines/community-docker.yml limited to vm1 and web
  (ansible.builtin.git + docker_image build + docker_container; bench-cd-web on
  the VM's 127.0.0.1:9100).
- appfleet start-first / stop-first: playbooks/deploy.yml -l vm1 -e apps=web,
  stop-first through an extra-vars copy of appfleet_apps; load through vm1's
  nginx (127.0.0.1:8001, Host: web.lab.test).

The VM publishes only nginx and SSH, so the seed and community.docker containers
are reached through an SSH tunnel (ssh -L) to their loopback ports. For each run:
failed requests (keep-alive and fresh connections apart), longest gap between two
successful responses, the long requests (--slow-workers lanes of GET /slow?s=S,
some always in flight: how many got their 200, how many of the old version's
were in flight at the switch and completed), the window in which two versions answered, the version
served at the end, the deploy's wall time, and the nginx reloads seen on the VM
during the deploy (new nginx worker generations, polled every 0.1 s). Writes
bench/results/deploy-under-load-<stamp>.json after every run; at the end (or on
an error) removes what it made on the VM, puts the app's VERSION back and runs
deploy.yml on the whole fleet.

    APPFLEET_LAB_DIR=/work/main/.lab .venv-bench/bin/python bench/deploy_under_load.py --repeat 3

The lab must be up and converged (make demo); the bench never starts or stops it.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import os
import platform
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from load import FRESH, SLOW, Load, default_procs, summarise, version_of
from noop import INVENTORY, REPO, RESULTS, figures, git_commit, run_playbook

os.environ.setdefault("APPFLEET_LAB_DIR", str(REPO / ".lab"))
# tests/lab/labtool: the lab's keys, fleet and git host.
sys.path.insert(0, str(REPO / "tests" / "lab"))
import labtool as labctl  # noqa: E402  pylint: disable=wrong-import-position

APP = "web"
VM = "vm1"
SEED_DIR = "/srv/bench-seed"
SEED_NAME = "seed-web"
SEED_PORT = 9200
# The baseline playbook publishes its first app on 9100 (9100 + index), its root is /srv/bench-cd.
CD_NAME = "bench-cd-" + APP
CD_PORT = 9100
CD_ROOT = "/srv/bench-cd"
SEED = "seed"
CD = "community.docker"
START_FIRST = "appfleet start-first"
STOP_FIRST = "appfleet stop-first"
METHODS = (SEED, CD, START_FIRST, STOP_FIRST)
# The users' flow as they type it: no `set -e`, each step runs whatever the one before did.
SEED_FLOW = ("cd %s/%s; git pull -q; docker stop %s; docker build -q -t %s .; docker start %s"
             % (SEED_DIR, APP, SEED_NAME, SEED_NAME, SEED_NAME))
# Seconds kept for the clean-up and the final whole-fleet deploy when --deadline is given.
CLEANUP_RESERVE = 300


# -- the VM ------------------------------------------------------------------

def lab_vm(name):
    for vm in labctl.read_fleet():
        if vm["hostname"] == name:
            return vm
    raise SystemExit("bench: no %s in %s" % (name, labctl.FLEET_FILE))


def ssh_base(vm):
    """ssh to the VM as the deploy user (the lab's key, recorded host keys checked)."""
    return labctl.ssh_cmd(vm["ssh_port"], user="deploy")


def vm_run(vm, command, timeout=600, check=True, script=None):
    """Run `command` on the VM as root; `script` goes to its stdin."""
    proc = subprocess.run(ssh_base(vm) + ["sudo sh -c %s" % shlex.quote(command)], input=script,
                          capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise SystemExit("bench: on %s, %r failed (rc=%d): %s"
                         % (vm["hostname"], command[:80], proc.returncode, (proc.stderr or proc.stdout)[-1500:]))
    return proc


def seed_setup_script():
    """Root's shell script: the seed's checkout (its own deploy key copy) and its first container."""
    key = (labctl.DEPLOY_KEY).read_text()
    known = labctl.GIT_KNOWN_HOSTS.read_text()
    ssh = "ssh -i %s/deploy_key -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=%s/known_hosts" % (
        SEED_DIR, SEED_DIR)
    return "\n".join([
        "set -e",
        "install -d -m 0700 %s" % SEED_DIR,
        # Only the key is private: the checkout keeps the default umask (the image runs as nobody).
        "(umask 077; cat > %s/deploy_key) <<'KEY'\n%sKEY" % (SEED_DIR, key if key.endswith("\n") else key + "\n"),
        "cat > %s/known_hosts <<'HOSTS'\n%sHOSTS" % (SEED_DIR, known if known.endswith("\n") else known + "\n"),
        "rm -rf %s/%s" % (SEED_DIR, APP),
        "GIT_SSH_COMMAND=%s git clone -q git@git:/srv/git/%s.git %s/%s" % (shlex.quote(ssh), APP, SEED_DIR, APP),
        "git -C %s/%s config core.sshCommand %s" % (SEED_DIR, APP, shlex.quote(ssh)),
        "git -C %s/%s pull -q" % (SEED_DIR, APP),
        "docker rm -f %s >/dev/null 2>&1 || true" % SEED_NAME,
        "docker build -q -t %s %s/%s >/dev/null" % (SEED_NAME, SEED_DIR, APP),
        "docker image inspect -f '{{.Id}}' %s >> %s/images" % (SEED_NAME, SEED_DIR),
        "docker run -d --name %s --restart unless-stopped -p 127.0.0.1:%d:8080 %s >/dev/null"
        % (SEED_NAME, SEED_PORT, SEED_NAME),
        "",
    ])


CLEANUP_SCRIPT = "\n".join([
    "docker rm -f %s %s >/dev/null 2>&1 || true" % (SEED_NAME, CD_NAME),
    # The seed's images (each build untags the one before), then the baseline's (one tag per commit).
    "[ -f %s/images ] && sort -u %s/images | xargs -r docker rmi -f >/dev/null 2>&1 || true" % (SEED_DIR, SEED_DIR),
    "docker images -q bench-cd/%s | sort -u | xargs -r docker rmi -f >/dev/null 2>&1 || true" % APP,
    "rm -rf %s %s" % (SEED_DIR, CD_ROOT),
    "",
])


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Tunnel(object):
    """ssh -L 127.0.0.1:<free port> to a loopback port of the VM."""

    def __init__(self, vm, remote_port):
        self.local_port = free_port()
        base = ssh_base(vm)
        cmd = base[:-1] + ["-N", "-o", "ExitOnForwardFailure=yes",
                           "-L", "127.0.0.1:%d:127.0.0.1:%d" % (self.local_port, remote_port), base[-1]]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)  # pylint: disable=consider-using-with
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.local_port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.2)
        self.close()
        raise SystemExit("bench: the ssh tunnel to %s:%d did not open" % (vm["hostname"], remote_port))

    @property
    def url(self):
        return "http://127.0.0.1:%d/" % self.local_port

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()


# nginx's master forks a new generation of workers on each reload: print its
# children every 0.1 s (bounded in time); the loop ends with the ssh session.
RELOAD_POLL = (
    'end=$(( $(date +%%s) + %d )); '
    'while [ "$(date +%%s)" -lt "$end" ]; do '
    'm=$(cat /run/nginx.pid 2>/dev/null); '
    'echo "$m $(pgrep -P "${m:-1}" | tr "\\n" " ")"; sleep 0.1; done')


def count_reloads(lines):
    """From RELOAD_POLL's lines ("master worker..."): polls in which new worker pids showed up
    (one per reload, two reloads closer than a poll count once) and master changes (restarts)."""
    seen, master, reloads, restarts, polls = set(), None, 0, 0, 0
    for line in lines:
        fields = line.split()
        if not fields:
            continue
        polls += 1
        pids = set(fields[1:])
        if master is None:
            master, seen = fields[0], pids
            continue
        if fields[0] != master:
            restarts += 1
            master = fields[0]
        elif pids - seen:
            reloads += 1
        seen |= pids
    return {"reloads": reloads, "restarts": restarts, "polls": polls}


class ReloadCounter(object):
    def __init__(self, vm, seconds):
        self.lines = []
        self.proc = subprocess.Popen(  # pylint: disable=consider-using-with
            ssh_base(vm) + [RELOAD_POLL % int(seconds)], stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        # The first poll is the baseline: wait for it.
        deadline = time.monotonic() + 10
        while not self.lines and time.monotonic() < deadline and self.proc.poll() is None:
            time.sleep(0.05)

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)

    def stop(self):
        time.sleep(0.3)  # one more poll after the deploy
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.thread.join(timeout=5)
        return count_reloads(self.lines)


# -- the app's source on the lab git host ------------------------------------

def work_tree():
    return labctl.work_tree(APP)


def commit_version(text, message):
    """Commit VERSION = text in the lab's work tree of the app and push it to the git host."""
    return labctl.commit_and_push(APP, {"VERSION": text + "\n"}, message)


def served_version(url, host=None, timeout=5):
    """(status, version) of one GET on a new connection; (None, error name) without an answer."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request("GET", "/", headers={"Host": host or parts.netloc})
        resp = conn.getresponse()
        return resp.status, version_of(resp.read())
    except (OSError, http.client.HTTPException) as exc:
        return None, type(exc).__name__
    finally:
        conn.close()


def wait_serving(url, host=None, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        status, version = served_version(url, host)
        if status == 200 or time.monotonic() > deadline:
            return status, version
        time.sleep(0.5)


# -- one measured run ----------------------------------------------------------

SHORT = {SEED: "seed", CD: "cd", START_FIRST: "start", STOP_FIRST: "stop"}
CD_PLAYBOOK = "bench/baselines/community-docker.yml"


def inventory_apps():
    """The lab inventory's appfleet_apps."""
    return yaml.safe_load((INVENTORY / "group_vars" / "fleet.yml").read_text())["appfleet_apps"]


def extra_vars(tmp):
    """Extra-vars files: the baseline limited to web; appfleet_apps with web stop-first."""
    apps = inventory_apps()
    web_only = tmp / "community-docker-web.json"
    web_only.write_text(json.dumps({"appfleet_apps": [a for a in apps if a["name"] == APP]}))
    stop_first = tmp / "stop-first.json"
    stop_first.write_text(json.dumps({"appfleet_apps": [dict(a, strategy="stop-first") if a["name"] == APP else a
                                                        for a in apps]}))
    hosts = {a["name"]: a["proxy"]["server_name"] for a in apps if a.get("proxy")}
    return {CD: web_only, STOP_FIRST: stop_first}, hosts


def playbook_args(method, files):
    if method == CD:
        return [CD_PLAYBOOK, "-l", VM, "-e", "@%s" % files[CD]]
    args = ["playbooks/deploy.yml", "-l", VM, "-e", "apps=" + APP]
    if method == STOP_FIRST:
        args += ["-e", "@%s" % files[STOP_FIRST]]
    return args


def deploy(method, vm, files):
    """Run one method's deploy; its wall time and outcome."""
    begin = time.monotonic()
    if method == SEED:
        proc = vm_run(vm, SEED_FLOW, check=False)
        result = {"rc": proc.returncode, "output": (proc.stdout + proc.stderr)[-600:]}
    else:
        try:
            played = run_playbook(playbook_args(method, files))
            result = {"rc": 0, "tasks": played["tasks"], "changed": played["changed"]}
        except SystemExit as exc:  # run_playbook's way of saying the playbook failed
            result = {"rc": 1, "output": str(exc)[-2000:]}
    result["seconds"] = round(time.monotonic() - begin, 3)
    if method == SEED:
        # Outside the timing: remember the image just built, for the clean-up.
        vm_run(vm, "docker image inspect -f '{{.Id}}' %s >> %s/images" % (SEED_NAME, SEED_DIR), check=False)
    return result


def compact(records):
    """The requests of a run as rows (start, latency, status, version, fresh, error, slow), strings indexed."""
    versions, errors, rows = [], [], []

    def index(table, value):
        if value is None:
            return None
        if value not in table:
            table.append(value)
        return table.index(value)

    for r in sorted(records, key=lambda r: r.start):
        rows.append([round(r.start, 4), round(r.latency, 4), r.status, index(versions, r.version),
                     1 if r.mode == FRESH else 0, index(errors, r.error), 1 if r.mode == SLOW else 0])
    return {"columns": ["start_s", "latency_s", "status", "version", "fresh", "error", "slow"],
            "versions": versions, "errors": errors, "rows": rows}


def which(version, new, old):
    """'new', 'old' or 'other' for a served version string ('web <VERSION> <greeting>', or
    'web <VERSION> slow <N>s' from /slow: old when its first two words are the old one's)."""
    if version and new in version.split():
        return "new"
    if version and (version == old or (old and len(old.split()) > 1 and version.split()[:2] == old.split()[:2])):
        return "old"
    return "other"


def first_new_answer(records, new, old):
    """Seconds into the load of the end of the first successful answer of the new version
    (None: never): the switch time, as bench/report.py's switch_at reads it off the rows."""
    ends = [r.end for r in records if not r.failed and which(r.version, new, old) == "new"]
    return round(min(ends), 4) if ends else None


def measure(method, repetition, vm, ctx, args):
    new = "%s+bench.%s.%d.%s" % (ctx["base"], ctx["stamp"], repetition, SHORT[method])
    commit = commit_version(new, "%s: %s (bench deploy-under-load, %s)" % (APP, new, method))
    url, host = ctx["targets"][method]
    before = served_version(url, host)
    counter = ReloadCounter(vm, args.max_seconds)
    load = Load(url, host=host, rate=args.rate, workers=args.workers, duration=args.max_seconds,
                slow_workers=args.slow_workers, slow_seconds=args.slow_seconds, procs=args.procs).start()
    try:
        time.sleep(args.lead)
        begin = time.monotonic() - load.t0
        outcome = deploy(method, vm, ctx["files"])
        end = time.monotonic() - load.t0
        time.sleep(args.tail)
    finally:
        load.stop()
        reloads = counter.stop()
    after = served_version(url, host)
    old = before[1]
    summary = summarise(load.records, switch_at=first_new_answer(load.records, new, old),
                        is_old=lambda version: which(version, new, old) == "old")
    return {
        "method": method,
        "repetition": repetition,
        "commit": commit[:12],
        "version_new": new,
        "served_before": before[1],
        "served_after": after[1],
        "served_after_is": which(after[1], new, before[1]),
        "final_in_load_is": which(summary["final_version"], new, before[1]),
        "deploy": outcome,
        "deploy_window_s": [round(begin, 3), round(end, 3)],
        "load": summary,
        "nginx": reloads,
        "requests": compact(load.records),
    }


# -- the whole benchmark ---------------------------------------------------------

def setup(vm, files, hosts):
    print("bench: converging web on %s (appfleet), the community.docker baseline's container and the seed's"
          " checkout and container" % VM, flush=True)
    run_playbook(["playbooks/deploy.yml", "-l", VM, "-e", "apps=" + APP])
    run_playbook(playbook_args(CD, files))
    vm_run(vm, "sh -s", script=seed_setup_script())
    tunnels = [Tunnel(vm, SEED_PORT), Tunnel(vm, CD_PORT)]
    nginx = "http://127.0.0.1:%d/" % vm["http_port"]
    targets = {SEED: (tunnels[0].url, None), CD: (tunnels[1].url, None),
               START_FIRST: (nginx, hosts[APP]), STOP_FIRST: (nginx, hosts[APP])}
    for method, (url, host) in targets.items():
        status, version = wait_serving(url, host)
        if status != 200:
            raise SystemExit("bench: %s does not answer at %s (%s)" % (method, url, version))
        print("bench: %-21s serves %r at %s" % (method, version, url), flush=True)
    return tunnels, targets


def restore_fleet(original, hosts):
    """The app's VERSION back to `original` (a new commit when it differs), deploy.yml on the whole
    fleet; what each VM serves afterwards, per app of `hosts` ({app: server name})."""
    if (work_tree() / "VERSION").read_text().strip() != original:
        commit_version(original, "%s: VERSION back to %s after the bench" % (APP, original))
    run_playbook(["playbooks/deploy.yml"])
    answers = {}
    for each in labctl.read_fleet():
        for app, host in sorted(hosts.items()):
            answers["%s %s" % (each["hostname"], app)] = served_version("http://127.0.0.1:%d/" % each["http_port"], host)
    return answers


def cleanup(vm, original, hosts):
    """Remove the seed's and the baseline's work from the VM; VERSION back; deploy.yml on the whole fleet."""
    print("bench: cleaning up on %s, VERSION back to %s, deploy.yml on the whole fleet" % (VM, original), flush=True)
    vm_run(vm, "sh -s", script=CLEANUP_SCRIPT, check=False)
    answers = restore_fleet(original, hosts)
    left = vm_run(vm, "docker ps -a --format '{{.Names}}' | grep -E '^(%s|%s)$' || true" % (SEED_NAME, CD_NAME)).stdout
    return {"served": answers, "left_on_vm": left.split()}


def deadline_at(text):
    if not text:
        return None
    hour, minute = (int(x) for x in text.split(":"))
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.replace(hour=hour, minute=minute, second=0, microsecond=0)


def machine():
    model = ""
    try:
        with open("/proc/cpuinfo") as handle:
            model = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), "")
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu": model, "python": platform.python_version(), "kernel": platform.release()}


def aggregate(runs):
    """Per method: median/min/max of each figure over its runs."""
    out = {}
    for method in METHODS:
        mine = [r for r in runs if r["method"] == method]
        if not mine:
            continue
        out[method] = {
            "runs": len(mine),
            "deploy_failed": sum(1 for r in mine if r["deploy"]["rc"] != 0),
            "served_after": {kind: sum(1 for r in mine if r["served_after_is"] == kind) for kind in ("new", "old", "other")},
        }
        for key in ("requests", "rate", "failed", "failed_keepalive", "failed_fresh", "longest_gap_s", "mixed_window_s"):
            out[method][key] = figures([r["load"][key] for r in mine])
        for key in ("slow_requests", "slow_ok", "slow_failed", "slow_in_flight_at_switch", "slow_in_flight_failed"):
            # None where a run had no switch (or, in an older results file, no slow lanes).
            values = [r["load"].get(key) for r in mine if r["load"].get(key) is not None]
            if values:
                out[method][key] = figures(values)
        out[method]["deploy_s"] = figures([r["deploy"]["seconds"] for r in mine])
        out[method]["nginx_reloads"] = figures([r["nginx"]["reloads"] for r in mine])
    return out


def write(report, path):
    report["summary"] = aggregate(report["runs"])
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report) + "\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="repetitions of every method (>= 3 for the report)")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of: " + ", ".join(METHODS))
    # Each worker keeps a fixed pace and does not catch up: at ~35 ms per request under a
    # deploy on this kind of machine, 16 workers are needed for 400 requests/s.
    parser.add_argument("--rate", type=float, default=500.0, help="requests per second, all workers together")
    parser.add_argument("--workers", type=int, default=16, help="half keep-alive, half a new connection per request")
    parser.add_argument("--procs", type=int, help="bench/load.py's worker processes (default: one per core, at most --workers)")
    parser.add_argument("--slow-workers", type=int, default=2,
                        help="long-request lanes during every method (GET /slow?s=S back to back; 0: none)")
    parser.add_argument("--slow-seconds", type=float, default=3.0, help="S: seconds each long request takes")
    parser.add_argument("--lead", type=float, default=3.0, help="seconds of load before the deploy starts")
    parser.add_argument("--tail", type=float, default=3.0, help="seconds of load after the deploy ends")
    parser.add_argument("--max-seconds", type=float, default=600.0, help="upper bound of one run's load")
    parser.add_argument("--deadline", help="HH:MM (UTC): start no run that may end after it, minus the clean-up")
    parser.add_argument("--keep", action="store_true", help="no clean-up (the seed's and baseline's containers stay)")
    parser.add_argument("--cleanup-only", action="store_true", help="only the clean-up and the whole-fleet deploy")
    args = parser.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or args.repeat < 1:
        parser.error("--methods: one of %s; --repeat: at least 1" % ", ".join(METHODS))
    if args.slow_workers < 0 or not 0 < args.slow_seconds <= 30:
        parser.error("--slow-workers: at least 0; --slow-seconds: more than 0, at most 30 (the app's cap)")
    vm = lab_vm(VM)
    original = (work_tree() / "VERSION").read_text().strip().split("+bench.")[0]
    with tempfile.TemporaryDirectory() as tmp:
        files, hosts = extra_vars(Path(tmp))
        if args.cleanup_only:
            print(json.dumps(cleanup(vm, original, hosts), indent=2))
            return 0
        return run(args, methods, vm, original, files, hosts)


def run(args, methods, vm, original, files, hosts):
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    out = RESULTS / ("deploy-under-load-%s.json" % stamp)
    deadline = deadline_at(args.deadline)
    report = {
        "benchmark": "deploy-under-load",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": git_commit(),
        # The benchmarks' own output (docs/benchmarks*, written by an earlier bench of the same
        # `make bench`) does not count as a change to what is measured.
        "commit_dirty": bool(subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no",
                                             "--", ".", ":!docs/benchmarks.md", ":!docs/benchmarks"],
                                            capture_output=True, text=True, check=False).stdout.strip()),
        "machine": machine(),
        "vm": VM,
        "vm_http_port": vm["http_port"],
        "app": APP,
        "load": {"rate": args.rate, "workers": args.workers, "lead_s": args.lead, "tail_s": args.tail,
                 "procs": default_procs(args.workers, args.procs),
                 "slow_workers": args.slow_workers, "slow_seconds": args.slow_seconds},
        "repeat_asked": args.repeat,
        "methods": methods,
        "long_requests": ("%d lanes of GET /slow?s=%g back to back, staggered" % (args.slow_workers, args.slow_seconds)
                          if args.slow_workers else "not measured (--slow-workers 0)"),
        "runs": [],
        "complete": False,
    }
    tunnels = []
    stopped = None
    try:
        tunnels, targets = setup(vm, files, hosts)
        ctx = {"base": original, "stamp": time.strftime("%H%M%S", time.gmtime()), "targets": targets, "files": files}
        for repetition in range(1, args.repeat + 1):
            shift = (repetition - 1) % len(methods)
            for method in methods[shift:] + methods[:shift]:
                past = [r["deploy"]["seconds"] for r in report["runs"] if r["method"] == method]
                needed = args.lead + args.tail + 20 + (max(past) if past else 120) + CLEANUP_RESERVE
                if deadline and datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=needed) > deadline:
                    stopped = "deadline %s UTC: stopped before %s, repetition %d" % (args.deadline, method, repetition)
                    break
                result = measure(method, repetition, vm, ctx, args)
                report["runs"].append(result)
                write(report, out)
                load = result["load"]
                print("bench: %-21s run %d: deploy %6.2f s rc=%d, %5d requests at %5.1f/s, failed %d keep-alive + %d fresh,"
                      " gap %.3f s, mixed %.3f s, after: %s (%s), reloads %d, long requests %d/%d ok (%s in flight at"
                      " the switch completed)"
                      % (method, repetition, result["deploy"]["seconds"], result["deploy"]["rc"], load["requests"],
                         load["rate"], load["failed_keepalive"], load["failed_fresh"], load["longest_gap_s"],
                         load["mixed_window_s"], result["served_after"], result["served_after_is"],
                         result["nginx"]["reloads"], load["slow_ok"], load["slow_requests"],
                         load["slow_in_flight_at_switch"]), flush=True)
            if stopped:
                break
        report["complete"] = stopped is None
        report["stopped"] = stopped
    finally:
        for tunnel in tunnels:
            tunnel.close()
        report["repetitions_completed"] = min([sum(1 for r in report["runs"] if r["method"] == m) for m in methods])
        if not args.keep:
            report["cleanup"] = cleanup(vm, original, hosts)
        write(report, out)
        print("bench: written %s" % out.relative_to(REPO), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
