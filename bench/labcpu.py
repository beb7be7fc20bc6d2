"""CPU the lab uses while idle: each lab container's whole process tree on this machine.

A lab VM's processes (its systemd, dockerd, containerd, nginx, the app containers and
their health checks) all descend from the container's init on this machine, and a
process that ends is counted in its parent's children times (cutime/cstime of
/proc/<pid>/stat) once reaped. So the CPU seconds of a VM over a window are the growth of
the sum over its tree. CPU seconds, not wall time: other load on the machine slows the lab
down but does not add to what it uses.

    .venv-bench/bin/python bench/labcpu.py --seconds 30
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

LAB_LABEL = "io.appfleet.lab"


def process_table(proc="/proc"):
    """{pid: (parent pid, CPU ticks of it and its reaped children)} of the running processes."""
    table = {}
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        try:
            with open(os.path.join(proc, entry, "stat")) as handle:
                text = handle.read()
        except OSError:  # ended meanwhile
            continue
        # The command name is in parentheses and may hold spaces: the fields follow the last ')'.
        fields = text[text.rindex(")") + 2:].split()
        table[int(entry)] = (int(fields[1]), sum(int(x) for x in fields[11:15]))
    return table


def tree_ticks(table, root):
    """CPU ticks of ``root`` and every process below it in ``table``."""
    children = {}
    for pid, (parent, _ticks) in table.items():
        children.setdefault(parent, []).append(pid)
    total, todo, seen = 0, [root], set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += table.get(pid, (0, 0))[1]
        todo.extend(children.get(pid, []))
    return total


def lab_containers():
    """{container name: its init's pid on this machine} of the running lab containers."""
    names = subprocess.run(["docker", "ps", "--filter", "label=" + LAB_LABEL, "--format", "{{.Names}}"],
                           capture_output=True, text=True, check=True, timeout=60).stdout.split()
    pids = {}
    for name in names:
        pid = subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}}", name], capture_output=True,
                             text=True, check=True, timeout=60).stdout.strip()
        if pid.isdigit() and int(pid) > 0:
            pids[name] = int(pid)
    return pids


def measure(seconds=30.0):
    """CPU the idle lab uses over ``seconds``: {"seconds", "containers": {name: cores}, "cores"}."""
    pids = lab_containers()
    tick = os.sysconf("SC_CLK_TCK")
    start, before = time.monotonic(), process_table()
    time.sleep(seconds)
    after, wall = process_table(), time.monotonic() - start
    used = {name: (tree_ticks(after, pid) - tree_ticks(before, pid)) / tick / wall for name, pid in pids.items()}
    return {"seconds": round(wall, 1), "containers": {n: round(c, 3) for n, c in sorted(used.items())},
            "cores": round(sum(used.values()), 3)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the window (5 to 600)")
    args = parser.parse_args(argv)
    if not 5 <= args.seconds <= 600:
        parser.error("--seconds: between 5 and 600")
    print(json.dumps(measure(args.seconds), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
