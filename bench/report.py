"""Write docs/benchmarks.md (and its plots under docs/benchmarks/) from bench/results/*.json.

Only the newest result of each benchmark is reported; every figure in it was
measured side by side with its baseline in one run.

    .venv-bench/bin/python bench/report.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
DOC = REPO / "docs" / "benchmarks.md"
PLOTS = REPO / "docs" / "benchmarks"


def newest(prefix):
    files = sorted(RESULTS.glob(prefix + "-*.json"))
    return json.loads(files[-1].read_text()) if files else None


def fmt(fig):
    return "%.2f (%.2f–%.2f)" % (fig["median"], fig["min"], fig["max"])


def noop_plot(result):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["seconds"])
    medians = [result["seconds"][n]["median"] for n in names]
    lows = [m - result["seconds"][n]["min"] for n, m in zip(names, medians)]
    highs = [result["seconds"][n]["max"] - m for n, m in zip(names, medians)]
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar(names, medians, yerr=[lows, highs], capsize=6, color=["#3b7dd8", "#999999"][:len(names)])
    ax.set_ylabel("seconds (median, min–max)")
    ax.set_title("no-op deploy, %d VMs" % result["vms"])
    fig.tight_layout()
    PLOTS.mkdir(parents=True, exist_ok=True)
    path = PLOTS / "noop-deploy.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path.relative_to(DOC.parent)


def noop_section(result):
    ratio = result["ratio_appfleet_to_community_docker"]
    lines = [
        "## No-op deploy",
        "",
        "`playbooks/deploy.yml` with nothing to deploy against the same work written with",
        "`ansible.builtin.git` + `community.docker.docker_image` + `docker_container`",
        "(`bench/baselines/community-docker.yml`), both `serial: 1`, run alternately on the",
        "same converged lab fleet (`bench/noop.py`). Target: ratio ≤ 0.5.",
        "",
        "| | |",
        "|---|---|",
        "| date | %s |" % result["date"],
        "| commit | `%s` |" % result["commit"],
        "| machine | %s cores, Python %s, kernel %s |" % (
            result["machine"]["cpus"], result["machine"]["python"], result["machine"]["kernel"]),
        "| lab VMs | %d |" % result["vms"],
        "",
        "| method | seconds: median (min–max) | tasks per run | changed per run |",
        "|---|---|---|---|",
    ]
    for name, fig in result["seconds"].items():
        lines.append("| %s | %s | %s | %s |" % (
            name, fmt(fig), ", ".join(map(str, result["tasks"][name])),
            ", ".join(map(str, result["changed"][name]))))
    lines += [
        "",
        "Ratio appfleet / community.docker, run by run: **%s** (median, min–max)." % fmt(ratio),
        "",
        "![no-op deploy](%s)" % noop_plot(result),
        "",
    ]
    return lines


def main():
    sections = []
    noop = newest("noop")
    if noop:
        sections += noop_section(noop)
    if not sections:
        print("bench: no results under %s; run a benchmark first" % RESULTS.relative_to(REPO))
        return 1
    header = [
        "# Benchmarks",
        "",
        "Written by `bench/report.py` from `bench/results/`. Each figure is measured side by",
        "side with its baseline in the same run, repeated (median, min and max); see",
        "`bench/` for the scripts and how to run them. The machine is shared and noisy:",
        "compare the ratios, not the absolute seconds.",
        "",
    ]
    DOC.write_text("\n".join(header + sections))
    print("bench: written %s" % DOC.relative_to(REPO))
    return 0


if __name__ == "__main__":
    sys.exit(main())
