"""Build: appfleet's deploy of a new commit above the raw-Docker floor of the same commit, side by side.

Each repetition pushes a new commit of the sample app `web` to the lab's git host
(a new VERSION, a file the Dockerfile copies, so the image really rebuilds) and
then, in an order that alternates from one repetition to the next, runs on one
lab VM (--vm, vm1 by default):

- raw docker (the floor): bench/build_floor.py over SSH as root on the VM. It
  clones that commit from the git host the apps role uses (the inventory's
  source.repo and version, with the deploy key and git host key the apps role
  installed under /etc/appfleet/keys) into a scratch directory
  (/srv/bench-build/web), then times `docker build` of it (the inventory's
  build args, context and Dockerfile; BuildKit when appfleet's image_build
  would use it there, else the classic builder), `docker run -d` on a loopback
  port Docker picks, and GET <health path> from inside the VM every 0.05 s until
  the first 200 (with python3's urllib: a cloud image has python3, curl only
  once bootstrap installed it): the seconds from the start of the build to that
  200. The clone is not timed (its seconds are recorded); a scratch clone, not
  the apps role's checkout under /srv/appfleet/src, because that one is still
  at the previous commit when the floor runs first. Then the container, the
  image tag and the clone are removed. The VM-side timing leaves out SSH; the
  wall time of the whole SSH call is recorded beside it, and so are the
  seconds until Docker's HEALTHCHECK says healthy (appfleet waits for that too).
- appfleet: `playbooks/deploy.yml -l <vm> -e apps=web`, the wall time of the
  whole ansible-playbook run (Ansible's start, the plan play, git fetch, build,
  the start-first swap with its health gate and the old container's drain),
  its tasks and changed count from the recap; afterwards the VM's nginx must
  serve the new version.

Per method: median, min and max seconds; per repetition the overhead
(appfleet - raw) and the ratio (appfleet / raw), with their median, min and max.

Build cache: both methods build the same commit, one after the other, so the
second may find the first one's layers in the builder's cache (with the
classic builder the floor's `docker rmi` should take them away, BuildKit's
build cache should keep them: the check below says what happened). The order
alternates (repetition 1: raw first), and each run records the steps the raw
build took from the cache and whether the raw image and appfleet's image of
the commit have the same layers (the second build reused the first one's).

    make bench-venv
    .venv-bench/bin/python bench/build.py --repeat 3 --vm vm1     # make bench-build

(From another worktree of the repository, point at the lab's state:
APPFLEET_LAB_DIR=/work/main/.lab.) --max-minutes (60) bounds the run: no
repetition starts after it; every step has its own timeout.

The lab must be up and converged (make demo); the bench never starts or stops
it. First (not timed) web is deployed on the VM, so that its deploy key is
there and the fleet is converged. At the end, also after an error, the scratch
directory and any bench-build image are removed, VERSION is committed back and
deploy.yml runs on the whole fleet. Writes bench/results/build-<stamp>.json.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time

import yaml

from deploy_under_load import (APP, commit_version, inventory_apps, lab_vm, restore_fleet, served_version, vm_run,
                               wait_serving, work_tree)
from noop import REPO, figures, run_header, run_playbook, write_result

RAW = "raw docker"
APPFLEET = "appfleet"
METHODS = (RAW, APPFLEET)
FLOOR_SCRIPT = REPO / "bench" / "build_floor.py"
SCRATCH = "/srv/bench-build"
NAME = "bench-build-" + APP
IMAGE = "bench-build/" + APP
CLEANUP_SCRIPT = "\n".join([
    "docker rm -f %s >/dev/null 2>&1 || true" % NAME,
    "docker images --format '{{.Repository}}:{{.Tag}}' %s | xargs -r docker rmi >/dev/null 2>&1 || true" % IMAGE,
    "rm -rf %s" % SCRATCH,
    "",
])


# -- what the apps role deploys ------------------------------------------------

def key_dir():
    """Where the apps role keeps deploy keys on a host (its default)."""
    return yaml.safe_load((REPO / "roles" / "apps" / "defaults" / "main.yml").read_text())["apps_key_dir"]


def floor_args(app, commit, repetition, keys):
    """bench/build_floor.py's arguments for the inventory entry `app` at `commit`."""
    build = app.get("build") or {}
    args = ["--repo", app["source"]["repo"], "--branch", app["source"].get("version", "main"), "--commit", commit,
            "--key", "%s/%s" % (keys, app["name"]), "--known-hosts", "%s/%s.known_hosts" % (keys, app["name"]),
            "--dir", "%s/%s" % (SCRATCH, app["name"]), "--tag", "%s:r%d" % (IMAGE, repetition), "--name", NAME,
            "--context", build.get("context", "."), "--dockerfile", build.get("dockerfile", "Dockerfile"),
            "--port", str(app["port"]), "--health-path", app["health"]["path"],
            "--timeout", str(app["health"].get("timeout", 60))]
    for key, value in sorted((build.get("args") or {}).items()):
        args += ["--build-arg", "%s=%s" % (key, value)]
    return args


def on_vm(vm, args, timeout):
    """Run build_floor.py on the VM as root; its JSON answer, with the SSH call's wall time."""
    begin = time.monotonic()
    proc = vm_run(vm, "python3 - " + " ".join(shlex.quote(a) for a in args), timeout=timeout, check=False,
                  script=FLOOR_SCRIPT.read_text())
    lines = proc.stdout.strip().splitlines()
    try:
        answer = json.loads(lines[-1])
    except (IndexError, ValueError):
        answer = {"error": "build_floor.py gave no answer (rc=%d): %s" % (proc.returncode, (proc.stderr or proc.stdout)[-800:])}
    answer["ssh_wall_s"] = round(time.monotonic() - begin, 3)
    return answer


def is_new(version, new):
    return bool(version) and new in version.split()


# -- the two methods -------------------------------------------------------------

def raw(vm, app, commit, new, repetition, keys):
    timeout = 600 + 3 * float(app["health"].get("timeout", 60)) + 300
    result = on_vm(vm, floor_args(app, commit, repetition, keys), timeout)
    result["ok"] = result.get("error") is None and is_new(result.get("served"), new)
    if result.get("error") is None and not result["ok"]:
        result["error"] = "the raw container served %r, not %s" % (result.get("served"), new)
    return result


def appfleet(vm, new, host):
    begin = time.monotonic()
    try:
        played = run_playbook(["playbooks/deploy.yml", "-l", vm["hostname"], "-e", "apps=" + APP], timeout=900)
        result = {"seconds": played["seconds"], "tasks": played["tasks"], "changed": played["changed"], "error": None}
    except SystemExit as exc:  # run_playbook's way of saying the playbook failed
        result = {"seconds": round(time.monotonic() - begin, 3), "error": str(exc)[-2000:]}
    status, served = served_version("http://127.0.0.1:%d/" % vm["http_port"], host)
    result["served"] = served
    result["ok"] = result["error"] is None and status == 200 and is_new(served, new)
    if result["error"] is None and not result["ok"]:
        result["error"] = "after the deploy nginx answered %s %r, not %s" % (status, served, new)
    # For the cache check: the layers of the image web runs now (the container has the app's name).
    layers = vm_run(vm, "docker image inspect -f '{{json .RootFS.Layers}}' \"$(docker inspect -f '{{.Image}}' %s)\""
                    % APP, check=False).stdout.strip()
    result["layers"] = json.loads(layers) if layers.startswith("[") else None
    return result


def order(repetition):
    """Repetition 1: raw first, 2: appfleet first, and so on."""
    return list(METHODS) if repetition % 2 else list(reversed(METHODS))


def cache_check(run):
    """Did the second build of the commit reuse the first one's layers? None: not known."""
    first, second = run[RAW].get("layers"), run[APPFLEET].get("layers")
    if not first or not second:
        return None
    return first == second


# -- figures ---------------------------------------------------------------------

def summarise(runs):
    """The figures over the repetitions in which both methods worked."""
    done = [r for r in runs if all(r.get(m, {}).get("ok") for m in METHODS)]
    if not done:
        return {"repetitions": 0}
    raw_s = [r[RAW]["ready_s"] for r in done]
    app_s = [r[APPFLEET]["seconds"] for r in done]
    reused = [r for r in done if r["cache"]["second_reused_layers"]]
    healthy = [r[RAW]["healthy_s"] for r in done if r[RAW].get("healthy_s") is not None]
    return {
        "repetitions": len(done),
        "seconds": {RAW: figures(raw_s), APPFLEET: figures(app_s)},
        "overhead_s": figures([a - b for a, b in zip(app_s, raw_s)]),
        "ratio": figures([a / b for a, b in zip(app_s, raw_s)]),
        "raw_parts": {
            "build_s": figures([r[RAW]["build_s"] for r in done]),
            "run_s": figures([r[RAW]["run_s"] for r in done]),
            "healthy_s": figures(healthy) if healthy else None,
            "clone_s": figures([r[RAW]["clone_s"] for r in done]),
            "ssh_wall_s": figures([r[RAW]["ssh_wall_s"] for r in done]),
        },
        "tasks": [r[APPFLEET]["tasks"] for r in done],
        "changed": [r[APPFLEET]["changed"] for r in done],
        "cache": {
            "raw_cached_steps": [r[RAW]["cached_steps"] for r in done],
            "second_reused_layers": len(reused),
            "second_reused_layers_by": {m: sum(1 for r in reused if r["order"][1] == m) for m in METHODS},
            "second": {m: sum(1 for r in done if r["order"][1] == m) for m in METHODS},
            "unknown": sum(1 for r in done if r["cache"]["second_reused_layers"] is None),
        },
    }


# -- the whole benchmark ---------------------------------------------------------

def measure(vm, app, repetition, ctx):
    new = "%s+bench.build.%s.%d" % (ctx["original"], ctx["stamp"], repetition)
    commit = commit_version(new, "%s: %s (bench build)" % (APP, new))
    run = {"repetition": repetition, "commit": commit[:12], "version_new": new, "order": order(repetition)}
    for method in run["order"]:
        if method == RAW:
            run[RAW] = raw(vm, app, commit, new, repetition, ctx["keys"])
        else:
            run[APPFLEET] = appfleet(vm, new, app["proxy"]["server_name"])
        if not run[method]["ok"]:
            break
    if all(m in run for m in METHODS):
        run["cache"] = {"second": run["order"][1], "second_reused_layers": cache_check(run)}
    return run


def cleanup(vm, original, hosts):
    print("bench: cleaning up on %s, VERSION back to %s, deploy.yml on the whole fleet" % (vm["hostname"], original),
          flush=True)
    vm_run(vm, "sh -s", script=CLEANUP_SCRIPT, check=False)
    served = restore_fleet(original, hosts)
    left = vm_run(vm, "docker ps -aq --filter 'name=^%s$'; docker images -q %s; ls -d %s 2>/dev/null; true"
                  % (NAME, IMAGE, SCRATCH), check=False).stdout.split()
    return {"served": served, "left_on_vm": left}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="repetitions, each a new commit (>= 3 for the report)")
    parser.add_argument("--vm", default="vm1", help="the lab VM both methods run on")
    parser.add_argument("--max-minutes", type=float, default=60.0,
                        help="start no repetition after this many minutes (the clean-up still runs)")
    args = parser.parse_args(argv)
    if not 1 <= args.repeat <= 20:
        parser.error("--repeat: from 1 to 20")
    vm = lab_vm(args.vm)
    apps = inventory_apps()
    app = next(a for a in apps if a["name"] == APP)
    hosts = {a["name"]: a["proxy"]["server_name"] for a in apps if a.get("proxy")}
    original = (work_tree() / "VERSION").read_text().strip().split("+bench.")[0]
    report = dict(run_header("build"), vm=args.vm, app=APP, repeat_asked=args.repeat, runs=[], complete=False,
                  stopped=None)
    stop_at = time.monotonic() + 60 * args.max_minutes
    try:
        print("bench: deploying %s on %s (not timed), asking the VM what it has" % (APP, args.vm), flush=True)
        run_playbook(["playbooks/deploy.yml", "-l", args.vm, "-e", "apps=" + APP], timeout=900)
        status, served = wait_serving("http://127.0.0.1:%d/" % vm["http_port"], hosts[APP])
        if status != 200:
            raise SystemExit("bench: %s does not serve %s (%s)" % (args.vm, APP, served))
        report["vm_facts"] = on_vm(vm, ["--facts"], 120)
        print("bench: %s has %s" % (args.vm, json.dumps(report["vm_facts"])), flush=True)
        ctx = {"original": original, "stamp": time.strftime("%H%M%S", time.gmtime()), "keys": key_dir()}
        for repetition in range(1, args.repeat + 1):
            if time.monotonic() > stop_at:
                report["stopped"] = "--max-minutes %g: stopped before repetition %d" % (args.max_minutes, repetition)
                break
            run = measure(vm, app, repetition, ctx)
            report["runs"].append(run)
            failed = [m for m in run["order"] if m in run and not run[m]["ok"]]
            if failed:
                report["stopped"] = "repetition %d: %s failed: %s" % (repetition, failed[0], run[failed[0]]["error"])
                print("bench: %s" % report["stopped"], flush=True)
                break
            print("bench: run %d (%s first): raw %.2f s (build %.2f s, %d steps cached), appfleet %.2f s (%d tasks,"
                  " changed=%d), second build reused the first's layers: %s"
                  % (repetition, run["order"][0], run[RAW]["ready_s"], run[RAW]["build_s"],
                     run[RAW]["cached_steps"], run[APPFLEET]["seconds"], run[APPFLEET]["tasks"],
                     run[APPFLEET]["changed"], run["cache"]["second_reused_layers"]), flush=True)
        report["complete"] = report["stopped"] is None
    except BaseException as exc:
        report["stopped"] = report["stopped"] or "error: %s" % (str(exc)[-1500:] or type(exc).__name__)
        raise
    finally:
        report["summary"] = summarise(report["runs"])
        report["repetitions_completed"] = report["summary"]["repetitions"]
        try:
            report["cleanup"] = cleanup(vm, original, hosts)
        finally:
            write_result("build", report)
    # A method that failed fails the command; a run cut short by --max-minutes does not.
    return 1 if any(not run[m]["ok"] for run in report["runs"] for m in METHODS if m in run) else 0


if __name__ == "__main__":
    sys.exit(main())
