"""Build once: a new commit of one app deployed to 2 and 4 lab VMs, every VM building it against one build per fleet.

Issue 12 ("deploy of one app to 2 and 4 VMs: before/after"). For each fleet
size in --sizes (smallest first) the lab is brought to that many VMs
(labctl.py up --vms N, as bench/scale.py does) and converged (site.yml, then
deploy.yml once). Then, --repeat times, each variant on a new commit of the
sample app `web` pushed to the lab's git host (a new VERSION, a file its
Dockerfile copies, so the image really rebuilds), in an order that alternates
from one repetition to the next (repetition 1: the before first):

- every VM builds (the before):
  `playbooks/deploy.yml -e apps=web -e apps_build_once=false`;
- build once (the after):
  `playbooks/deploy.yml -e apps=web -e apps_build_once=true`: with deploy.yml's
  serial 1 the first host builds and, after its health check, saves the image;
  the controller fetches it and each later host loads it instead of building
  (roles/apps/README.md, "building once").

Per run: the wall time of the whole ansible-playbook run, its tasks and changed
count from the recap, and from the default callback's output the hosts whose
"Build the image of web" reported changed (built) and whose "Load the image of
web built on <vm>" reported changed (loaded): one build and N-1 loads per run
for the after, N builds and no load for the before. After each run every VM's
nginx must serve the new version, and the image id the container `web` runs
on each VM (docker inspect over SSH) is recorded, with whether they are all
the same.

Per size and variant: median, min and max seconds, builds and loads per run,
runs with the same image on every VM; per size the ratio after / before, taken
repetition by repetition (median, min, max).

    make bench-venv
    .venv-bench/bin/python bench/build_once.py --sizes 2,4 --repeat 3     # make bench-build-once

(From another worktree of the repository, point at the lab's state:
APPFLEET_LAB_DIR=/work/main/.lab.) --max-minutes (60) bounds the run: no
repetition starts after it (nor a size); every step has its own timeout.

Deploys: per size, one site.yml and one deploy.yml to converge, then 2 x
--repeat deploys of web, each through the N VMs one after the other. At the
end, also after an error, VERSION is committed back, deploy.yml runs on the
whole fleet, and the lab is brought back to the first size given (2 by
default). Writes bench/results/build_once-<stamp>.json.
"""

from __future__ import annotations

import argparse
import re
import sys
import time

from deploy_under_load import (APP, commit_version, inventory_apps, labctl, restore_fleet, served_version, vm_run,
                               work_tree)
from noop import figures, run_header, run_playbook, write_result
from scale import lab_up

BEFORE = "every VM builds"
AFTER = "build once"
VARIANTS = (BEFORE, AFTER)
BUILD_ONCE = {BEFORE: "false", AFTER: "true"}
SHORT = {BEFORE: "each", AFTER: "once"}
BUILD_TASK = "Build the image of " + APP
LOAD_TASK = "Load the image of %s built on " % APP
# A task's results in the default callback's output: "changed: [vm1]", "fatal: [vm2]: FAILED! => ...".
STATUS = re.compile(r"^(ok|changed|skipping|fatal|failed): \[(\S+?)\]", re.M)
# Seconds a deploy of web may take per VM (serial 1: the VMs one after the other).
DEPLOY_TIMEOUT_PER_VM = 600


# -- reading a deploy's output -------------------------------------------------

def task_results(stdout, name, prefix=False):
    """{host: status} of the task `name` (with prefix=True: of every task whose name starts with
    it) in a default-callback output (ok, changed, skipping, fatal, failed), over every time it ran
    (one host per batch under serial 1). A role's tasks are headed "TASK [<role> : <name>]"."""
    found = {}
    pattern = r"(^|: )%s%s\] \*" % (re.escape(name), r"[^\]]*" if prefix else "")
    for section in re.split(r"^TASK \[", stdout, flags=re.M)[1:]:
        header = section.split("\n", 1)[0]
        if re.search(pattern, header):
            for status, host in STATUS.findall(section):
                found[host] = status
    return found


def loaded_from(stdout):
    """{host: the VM whose image it loaded}, for the hosts whose load task reported changed."""
    found = {}
    for section in re.split(r"^TASK \[", stdout, flags=re.M)[1:]:
        header = section.split("\n", 1)[0]
        match = re.search(r"(?:^|: )%s([^\]\s]+)\] \*" % re.escape(LOAD_TASK), header)
        if match:
            for status, host in STATUS.findall(section):
                if status == "changed":
                    found[host] = match.group(1)
    return found


def changed_hosts(results):
    return sorted(host for host, status in results.items() if status == "changed")


def is_new(version, new):
    return bool(version) and new in version.split()


# -- one run -------------------------------------------------------------------

def order(repetition):
    """Repetition 1: the before (every VM builds) first, 2: build once first, and so on."""
    return list(VARIANTS) if repetition % 2 else list(reversed(VARIANTS))


def expected(variant, size):
    """(builds, loads) a run of `variant` on `size` VMs should show."""
    return (1, size - 1) if variant == AFTER else (size, 0)


def deploy(variant, new, fleet, host):
    """deploy.yml of web with apps_build_once for `variant`; then what each VM serves and runs."""
    begin = time.monotonic()
    args = ["playbooks/deploy.yml", "-e", "apps=" + APP, "-e", "apps_build_once=" + BUILD_ONCE[variant]]
    try:
        played = run_playbook(args, timeout=DEPLOY_TIMEOUT_PER_VM * len(fleet), output=True)
        build = task_results(played["output"], BUILD_TASK)
        load = task_results(played["output"], LOAD_TASK, prefix=True)
        result = {"seconds": played["seconds"], "tasks": played["tasks"], "changed": played["changed"],
                  "build": build, "load": load, "load_from": loaded_from(played["output"]),
                  "built_on": changed_hosts(build), "loaded_on": changed_hosts(load), "error": None}
        result["builds"], result["loads"] = len(result["built_on"]), len(result["loaded_on"])
        result["as_expected"] = (result["builds"], result["loads"]) == expected(variant, len(fleet))
    except SystemExit as exc:  # run_playbook's way of saying the playbook failed
        result = {"seconds": round(time.monotonic() - begin, 3), "error": str(exc)[-2000:]}
    result["served"], result["image"] = {}, {}
    for vm in fleet:
        status, served = served_version("http://127.0.0.1:%d/" % vm["http_port"], host)
        result["served"][vm["hostname"]] = served if status == 200 else "%s %s" % (status, served)
        image = vm_run(vm, "docker inspect --format '{{.Image}}' %s" % APP, timeout=60, check=False).stdout.strip()
        result["image"][vm["hostname"]] = image or None
    images = set(result["image"].values())
    result["same_image"] = len(images) == 1 and None not in images
    stale = sorted(name for name, served in result["served"].items() if not is_new(served, new))
    result["ok"] = result["error"] is None and not stale
    if result["error"] is None and stale:
        result["error"] = "after the deploy %s did not serve %s: %s" % (
            ", ".join(stale), new, "; ".join("%s %r" % (n, result["served"][n]) for n in stale))
    return result


def measure(size, repetition, fleet, ctx):
    """One repetition on `size` VMs: each variant on a new commit of web, in the repetition's order."""
    run = {"repetition": repetition, "order": order(repetition), "commits": {}, "versions": {}}
    for variant in run["order"]:
        new = "%s+bench.once.%s.%d.%d.%s" % (ctx["original"], ctx["stamp"], size, repetition, SHORT[variant])
        commit = commit_version(new, "%s: %s (bench build once, %s)" % (APP, new, variant))
        run["commits"][variant], run["versions"][variant] = commit[:12], new
        run[variant] = deploy(variant, new, fleet, ctx["host"])
        if not run[variant]["ok"]:
            break
    return run


# -- figures ---------------------------------------------------------------------

def summarise(runs):
    """Per variant and over the repetitions in which both variants worked: seconds, builds, loads,
    same image everywhere; the ratio after / before, repetition by repetition."""
    done = [r for r in runs if all(r.get(v, {}).get("ok") for v in VARIANTS)]
    if not done:
        return {"repetitions": 0}
    summary = {"repetitions": len(done), "variants": {}}
    for variant in VARIANTS:
        results = [r[variant] for r in done]
        summary["variants"][variant] = {
            "seconds": figures([x["seconds"] for x in results]),
            "builds": [x["builds"] for x in results],
            "loads": [x["loads"] for x in results],
            "same_image": sum(1 for x in results if x["same_image"]),
            "as_expected": sum(1 for x in results if x["as_expected"]),
            "tasks": [x["tasks"] for x in results],
            "changed": [x["changed"] for x in results],
        }
    summary["ratio"] = figures([r[AFTER]["seconds"] / r[BEFORE]["seconds"] for r in done])
    return summary


# -- the whole benchmark ---------------------------------------------------------

def now():
    """The clock --max-minutes is measured on."""
    return time.monotonic()


def fleet_of(size):
    """The lab's VMs, checked to be `size` of them."""
    fleet = labctl.read_fleet()
    if len(fleet) != size:
        raise SystemExit("bench: the lab has %d VMs, not %d" % (len(fleet), size))
    return fleet


def parse_sizes(parser, text):
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        parser.error("--sizes: whole numbers separated by commas, for example 2,4")
    if not sizes or sizes != sorted(set(sizes)) or sizes[0] < 2:
        parser.error("--sizes: at least one size, smallest first, each at least 2 (one VM has nothing to share)")
    return sizes


def cleanup(original, hosts, sizes, at_size):
    """VERSION back, deploy.yml on the whole fleet; then (also when that failed) the lab back to the first size."""
    print("bench: VERSION back to %s, deploy.yml on the whole fleet" % original, flush=True)
    result = {}
    try:
        result["served"] = restore_fleet(original, hosts)
    finally:
        if at_size is not None and at_size != sizes[0]:
            print("bench: lab back to %d VMs" % sizes[0], flush=True)
            lab_up(sizes[0])
    result["lab_vms"] = len(labctl.read_fleet())
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2,4", help="comma-separated fleet sizes, smallest first (default 2,4)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions per size, each variant on a new commit (>= 3)")
    parser.add_argument("--max-minutes", type=float, default=60.0,
                        help="start no repetition after this many minutes (the clean-up still runs)")
    args = parser.parse_args(argv)
    sizes = parse_sizes(parser, args.sizes)
    if not 3 <= args.repeat <= 20:
        parser.error("--repeat: from 3 to 20")
    if args.max_minutes <= 0:
        parser.error("--max-minutes: more than 0")
    apps = inventory_apps()
    hosts = {a["name"]: a["proxy"]["server_name"] for a in apps if a.get("proxy")}
    original = (work_tree() / "VERSION").read_text().strip().split("+bench.")[0]
    report = dict(run_header("build-once"), app=APP, sizes=sizes, repeat_asked=args.repeat,
                  max_minutes=args.max_minutes, fleets={}, runs={}, summary={}, complete=False, stopped=None)
    ctx = {"original": original, "stamp": time.strftime("%H%M%S", time.gmtime()), "host": hosts[APP]}
    stop_at = now() + 60 * args.max_minutes
    at_size = None
    try:
        for size in sizes:
            if now() > stop_at:
                report["stopped"] = "--max-minutes %g: stopped before %d VMs" % (args.max_minutes, size)
                break
            print("bench: lab at %d VMs, converging (site.yml, deploy.yml)" % size, flush=True)
            at_size = size
            lab_up(size)
            run_playbook(["site.yml"], timeout=5400)
            run_playbook(["playbooks/deploy.yml"], timeout=DEPLOY_TIMEOUT_PER_VM * size)
            fleet = fleet_of(size)
            report["fleets"][str(size)] = [vm["hostname"] for vm in fleet]
            runs = report["runs"][str(size)] = []
            for repetition in range(1, args.repeat + 1):
                if now() > stop_at:
                    report["stopped"] = "--max-minutes %g: stopped before repetition %d on %d VMs" % (
                        args.max_minutes, repetition, size)
                    break
                run = measure(size, repetition, fleet, ctx)
                runs.append(run)
                failed = [v for v in run["order"] if v in run and not run[v]["ok"]]
                if failed:
                    report["stopped"] = "%d VMs, repetition %d: %s failed: %s" % (
                        size, repetition, failed[0], run[failed[0]]["error"])
                    print("bench: %s" % report["stopped"], flush=True)
                    break
                for variant in run["order"]:
                    got = run[variant]
                    print("bench: %d VMs run %d, %-15s %7.2f s, %d tasks, changed=%d, built on %s, loaded on %s,"
                          " same image everywhere: %s" % (
                              size, repetition, variant + ":", got["seconds"], got["tasks"], got["changed"],
                              ",".join(got["built_on"]) or "-", ",".join(got["loaded_on"]) or "-",
                              got["same_image"]), flush=True)
            if report["stopped"]:
                break
        report["complete"] = report["stopped"] is None
    except BaseException as exc:
        report["stopped"] = report["stopped"] or "error: %s" % (str(exc)[-1500:] or type(exc).__name__)
        raise
    finally:
        report["summary"] = {size: summarise(runs) for size, runs in report["runs"].items()}
        try:
            report["cleanup"] = cleanup(original, hosts, sizes, at_size)
        finally:
            write_result("build_once", report)
    # A deploy that failed fails the command; a run cut short by --max-minutes does not.
    return 1 if any(not run[v]["ok"] for runs in report["runs"].values() for run in runs
                    for v in VARIANTS if v in run) else 0


if __name__ == "__main__":
    sys.exit(main())
