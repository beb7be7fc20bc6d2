"""Scale: the no-op deploy.yml on 2, 4 and 8 lab VMs, in one run.

For each fleet size the lab is brought to that many VMs (labctl.py up --vms N),
converged (site.yml, then deploy.yml once so that every VM has its record), and
then the CPU the idle lab uses is measured over 30 s (bench/labcpu.py: on this
one machine the VMs share its cores, where real VMs would each have their own),
then deploy.yml with nothing to deploy is timed --repeat times. The sizes are
measured in one run, on one machine: the figure is the growth from the smallest
size, not the seconds. Writes bench/results/scale-<stamp>.json.

    make bench-venv
    .venv-bench/bin/python bench/scale.py --sizes 2,4,8 --repeat 3

Leaves the lab at the first size given (2 by default), converged.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from labcpu import measure as lab_idle_cpu
from noop import REPO, figures, run_header, run_playbook, write_result

LABCTL = [sys.executable, str(REPO / "tests" / "lab" / "labctl.py")]


def lab_up(size):
    proc = subprocess.run(LABCTL + ["up", "--vms", str(size)], cwd=REPO, capture_output=True, text=True,
                          timeout=3600, check=False)
    if proc.returncode != 0:
        raise SystemExit("bench: labctl up --vms %d failed\n%s\n%s" % (size, proc.stdout[-3000:], proc.stderr[-3000:]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2,4,8", help="comma-separated fleet sizes, smallest first")
    parser.add_argument("--repeat", type=int, default=3, help="timed no-op runs per size (>= 3)")
    args = parser.parse_args(argv)
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error("--sizes: whole numbers separated by commas, for example 2,4,8")
    if not sizes or sizes != sorted(sizes) or sizes[0] < 1:
        parser.error("--sizes: at least one size, smallest first, each at least 1")
    if args.repeat < 3:
        parser.error("--repeat: at least 3 runs per size")
    results, idle = {}, {}
    try:
        for size in sizes:
            print("bench: lab at %d VMs, converging" % size, flush=True)
            lab_up(size)
            run_playbook(["site.yml"], timeout=5400)
            run_playbook(["playbooks/deploy.yml"])
            idle[size] = lab_idle_cpu(30)
            print("bench: %d VMs idle: the lab uses %.2f cores" % (size, idle[size]["cores"]), flush=True)
            runs = []
            for index in range(args.repeat):
                result = run_playbook(["playbooks/deploy.yml"])
                runs.append(result)
                print("bench: %d VMs run %d: %6.2f s, %d tasks, changed=%d"
                      % (size, index + 1, result["seconds"], result["tasks"], result["changed"]), flush=True)
                for host, why in sorted(result["deploying"].items()):
                    print("bench:   %s %s" % (host, why), flush=True)
            results[size] = runs
    finally:
        if len(sizes) > 1:
            print("bench: lab back to %d VMs" % sizes[0], flush=True)
            lab_up(sizes[0])
    seconds = {str(size): figures([r["seconds"] for r in runs]) for size, runs in results.items()}
    base = seconds[str(sizes[0])]["median"]
    report = dict(run_header("scale"), sizes=sizes, seconds=seconds,
                  growth={size: round(fig["median"] / base, 3) for size, fig in seconds.items()},
                  changed={str(size): [r["changed"] for r in runs] for size, runs in results.items()},
                  # The CPU the idle lab used just before the timed runs (cores of this machine).
                  idle_cores={str(size): idle[size]["cores"] for size in results},
                  # Per run, the hosts the plan did not find converged, and why.
                  deploying={str(size): [r["deploying"] for r in runs] for size, runs in results.items()})
    write_result("scale", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
