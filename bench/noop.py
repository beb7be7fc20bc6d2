"""No-op deploy: appfleet's deploy.yml against the community.docker baseline, side by side.

On a lab fleet where both are converged (nothing to deploy), runs the two
playbooks alternately --repeat times and records the wall time of each run,
its task count and its changed count (a no-op run that changes something is
reported as such, not hidden). Writes bench/results/noop-<stamp>.json.

    make bench-venv
    .venv-bench/bin/python bench/noop.py --repeat 3

The lab must be up (make lab-up); the first pass converges both (site.yml and
the baseline) and is not counted.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
INVENTORY = REPO / "inventories" / "lab"
METHODS = {
    "appfleet": ["playbooks/deploy.yml"],
    "community.docker": ["bench/baselines/community-docker.yml"],
}
# With --site: the whole site.yml (bootstrap, engine, proxy, deploy) with nothing to do, for
# scale; it has no baseline of its own and is not in the ratio.
SITE = {"appfleet site.yml": ["site.yml"]}
RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
# deploy.yml's plan line for a host that deploys (YAML result format, quotes doubled).
# deploy.yml's plan task (appfleet.docker.deploy_state) prints its result with the keys
# sorted: add_group, changed, converged, fingerprint come before msg, none of them quoted.
DEPLOYING = re.compile(r"ok: \[([^\]]+)\] =>(?:(?!ok: \[)[^'])*? msg: '(deploying(?:[^']|'')*)'")


def playbook_env():
    env = dict(os.environ)
    env["ANSIBLE_CONFIG"] = str(REPO / "ansible.cfg")
    env["PATH"] = "%s:%s" % (Path(sys.executable).parent, env.get("PATH", ""))
    # The recap is parsed: keep the default callback's format.
    env["ANSIBLE_STDOUT_CALLBACK"] = "default"
    env["ANSIBLE_FORCE_COLOR"] = "0"
    env["ANSIBLE_NOCOLOR"] = "1"
    return env


def run_playbook(args, timeout=1800, output=False):
    """Run ansible-playbook on the lab inventory: its wall time and recap (output=True: and its stdout)."""
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(INVENTORY)] + args
    begin = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, env=playbook_env(), capture_output=True, text=True,
                          timeout=timeout, check=False)
    seconds = time.monotonic() - begin
    hosts = {m.group(1): {"ok": int(m.group(2)), "changed": int(m.group(3)),
                          "unreachable": int(m.group(4)), "failed": int(m.group(5))}
             for m in RECAP.finditer(proc.stdout)}
    if proc.returncode != 0 or not hosts:
        raise SystemExit("bench: %s failed (rc=%d)\n%s\n%s"
                         % (" ".join(args), proc.returncode, proc.stdout[-3000:], proc.stderr[-2000:]))
    result = {"seconds": round(seconds, 3), "hosts": hosts,
              "tasks": sum(h["ok"] for h in hosts.values()),
              "changed": sum(h["changed"] for h in hosts.values()),
              "deploying": deploying(proc.stdout)}
    if output:
        result["output"] = proc.stdout
    return result


def deploying(stdout):
    """{host: why} for each host deploy.yml's plan sent to the deploy play."""
    flat = re.sub(r"\s+", " ", stdout)
    return {host: why.replace("''", "'") for host, why in DEPLOYING.findall(flat)}


def git_commit():
    return subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"],
                          capture_output=True, text=True, check=False).stdout.strip() or "unknown"


def run_header(benchmark):
    """The fields every results file starts with: what, when, which commit, on what machine."""
    return {
        "benchmark": benchmark,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "kernel": platform.release()},
    }


def write_result(prefix, report):
    """Write bench/results/<prefix>-<stamp>.json and print it."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / ("%s-%s.json" % (prefix, time.strftime("%Y%m%dT%H%M%S")))
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print("bench: written %s" % out.relative_to(REPO))


def figures(values):
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3), "runs": [round(v, 3) for v in values]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="measured runs of each method (>= 3)")
    parser.add_argument("--skip-converge", action="store_true", help="the fleet and baseline are converged already")
    parser.add_argument("--site", action="store_true", help="also time a no-op site.yml (no baseline)")
    args = parser.parse_args(argv)
    methods = dict(METHODS, **(SITE if args.site else {}))
    if args.repeat < 3:
        parser.error("--repeat: at least 3 runs of each method")
    if not args.skip_converge:
        print("bench: converging the fleet (site.yml) and the baseline", flush=True)
        run_playbook(["site.yml"])
        for method_args in METHODS.values():
            run_playbook(method_args)
    runs = {name: [] for name in methods}
    for index in range(args.repeat):
        # Alternate the order so that neither method always runs on a warmer machine.
        order = list(methods) if index % 2 == 0 else list(reversed(methods))
        for name in order:
            result = run_playbook(methods[name])
            runs[name].append(result)
            print("bench: %-17s run %d: %6.2f s, %d tasks, changed=%d"
                  % (name, index + 1, result["seconds"], result["tasks"], result["changed"]), flush=True)
    summary = {name: figures([r["seconds"] for r in results]) for name, results in runs.items()}
    ratios = [a["seconds"] / b["seconds"] for a, b in zip(runs["appfleet"], runs["community.docker"])]
    report = run_header("noop-deploy")
    report.update({
        "vms": len(runs["appfleet"][0]["hosts"]),
        "seconds": summary,
        "ratio_appfleet_to_community_docker": figures(ratios),
        "changed": {name: [r["changed"] for r in results] for name, results in runs.items()},
        "tasks": {name: [r["tasks"] for r in results] for name, results in runs.items()},
    })
    write_result("noop", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
