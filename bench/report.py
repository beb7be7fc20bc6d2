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


def newest(prefix, back=0):
    """The newest result of a benchmark (back=1: the one before it)."""
    files = sorted(RESULTS.glob(prefix + "-*.json"))
    return json.loads(files[-1 - back].read_text()) if len(files) > back else None


def fmt(fig, digits=2):
    return "%.*f (%.*f–%.*f)" % (digits, fig["median"], digits, fig["min"], digits, fig["max"])


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def bar_chart(labels, figs, title, filename, width, colours):
    """A bar per label: the median, min–max as error bars; docs/benchmarks/<filename>, its path from DOC."""
    plt = pyplot()
    medians = [fig["median"] for fig in figs]
    fig, ax = plt.subplots(figsize=(width, 3))
    ax.bar(labels, medians, capsize=6, color=colours,
           yerr=[[m - f["min"] for f, m in zip(figs, medians)], [f["max"] - m for f, m in zip(figs, medians)]])
    ax.set_ylabel("seconds (median, min–max)")
    ax.set_title(title)
    fig.tight_layout()
    PLOTS.mkdir(parents=True, exist_ok=True)
    path = PLOTS / filename
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path.relative_to(DOC.parent)


def noop_plot(result):
    names = list(result["seconds"])
    return bar_chart(names, [result["seconds"][n] for n in names], "no-op deploy, %d VMs" % result["vms"],
                     "noop-deploy.png", 1.8 * len(names) + 1.5, ["#3b7dd8", "#999999", "#7fb0ee"][:len(names)])


def noop_section(result, earlier=None):
    ratio = result["ratio_appfleet_to_community_docker"]
    lines = [
        "## No-op deploy",
        "",
        "`playbooks/deploy.yml` with nothing to deploy against the same work written with",
        "`ansible.builtin.git` + `community.docker.docker_image` + `docker_container`",
        "(`bench/baselines/community-docker.yml`, `serial: 1`), run alternately on the same",
        "converged lab fleet (`bench/noop.py`). deploy.yml first asks every host at once, in",
        "one module call each, whether a deploy would change it (`appfleet.docker.deploy_state`),",
        "and its `serial: 1` play then runs only on the hosts that change. Target: ratio ≤ 0.5.",
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
    ]
    if earlier and earlier.get("commit") != result.get("commit"):
        lines += [
            "The run before (commit `%s`, %s): appfleet %s s, community.docker %s s, ratio %s "
            "(medians; %s tasks per appfleet run)." % (
                earlier["commit"], earlier["date"], "%.2f" % earlier["seconds"]["appfleet"]["median"],
                "%.2f" % earlier["seconds"]["community.docker"]["median"],
                "%.2f" % earlier["ratio_appfleet_to_community_docker"]["median"],
                ", ".join(sorted(set(map(str, earlier["tasks"]["appfleet"]))))),
            "",
        ]
    lines += ["![no-op deploy](%s)" % noop_plot(result), ""]
    return lines


def scale_section(result):
    sizes = [str(size) for size in result["sizes"]]
    path = bar_chart(["%s VMs" % s for s in sizes], [result["seconds"][s] for s in sizes],
                     "no-op deploy.yml by fleet size", "scale-noop.png", 1.2 * len(sizes) + 2, "#3b7dd8")
    lines = [
        "## Scale",
        "",
        "The no-op `deploy.yml` on lab fleets of %s VMs, in one run on one machine (`bench/scale.py`)." % (
            ", ".join(sizes)),
        "Target: from 2 to 8 VMs the no-op grows ≤ 2.5×. Date %s, commit `%s`, %s cores." % (
            result["date"], result["commit"], result["machine"]["cpus"]),
        "",
        "| VMs | seconds: median (min–max) | growth from %s VMs | changed per run | hosts deployed per run "
        "| idle lab CPU (cores) |" % sizes[0],
        "|---|---|---|---|---|---|",
    ]
    # Results from before the plan lines (or the idle CPU) were kept have no "deploying" ("idle_cores").
    deploying, idle = result.get("deploying", {}), result.get("idle_cores", {})
    for size in sizes:
        runs = deploying.get(size)
        lines.append("| %s | %s | %.2f× | %s | %s | %s |" % (
            size, fmt(result["seconds"][size]), result["growth"][size],
            ", ".join(map(str, result["changed"][size])),
            ", ".join(str(len(run)) for run in runs) if runs is not None else "not recorded",
            "%.2f" % idle[size] if size in idle else "not recorded"))
    reasons = sorted({"%s: %s" % (host, why) for runs in deploying.values() for run in runs
                      for host, why in run.items()})
    if reasons:
        lines += ["", "Why hosts deployed in the timed runs (the plan's words):", ""]
        lines += ["- %s" % reason for reason in reasons[:12]]
    lines += ["", "![scale](%s)" % path, ""]
    return lines


# -- build -----------------------------------------------------------------------

def _runs(values):
    return ", ".join(map(str, values))


def _vm_line(result):
    facts = result.get("vm_facts") or {}
    if not facts or facts.get("error"):
        return "%s (what it has was not recorded)" % result["vm"]
    return "%s: Docker client %s, server %s, builder %s; %s; curl %s; Python %s" % (
        result["vm"], facts.get("docker_client"), facts.get("docker_server"), facts.get("builder"),
        facts.get("git") or "no git", "yes" if facts.get("curl") else "no", facts.get("python3"))


def _cache_text(summary):
    """What the build cache did, read off the figures."""
    cache = summary["cache"]
    done = summary["repetitions"]
    known = done - cache["unknown"]
    text = ("Build cache: both methods build the same commit, one after the other, so the second may take the"
            " first one's layers from the builder's cache; the order alternates (repetition 1: raw first). The second"
            " build had the same layers as the first in %d of %d repetitions (raw docker second: %d of %d, appfleet"
            " second: %d of %d)" % (
                cache["second_reused_layers"], known,
                cache["second_reused_layers_by"]["raw docker"], cache["second"]["raw docker"],
                cache["second_reused_layers_by"]["appfleet"], cache["second"]["appfleet"]))
    if cache["unknown"]:
        text += ", not known in %d" % cache["unknown"]
    text += "; steps the raw build took from the cache, per run: %s." % _runs(cache["raw_cached_steps"])
    if cache["second"]["raw docker"] != cache["second"]["appfleet"]:
        more = max(("raw docker", "appfleet"), key=lambda m: cache["second"][m])
        text += " With an odd number of repetitions %s went second once more than the other." % more
    return text


def build_plot(result):
    summary = result["summary"]
    figs = [summary["seconds"]["raw docker"], summary["seconds"]["appfleet"], summary["overhead_s"]]
    return bar_chart(["raw docker", "appfleet", "overhead"], figs,
                     "new commit of %s on %s, %d repetitions" % (result["app"], result["vm"], summary["repetitions"]),
                     "build.png", 6.9, ["#999999", "#3b7dd8", "#7fb0ee"])


def _run_rows(result):
    """The date, commit and machine rows of a lab benchmark's run table."""
    machine = result["machine"]
    return ["| date | %s |" % result["date"], "| commit | `%s` |" % result["commit"],
            "| machine | %s cores, Python %s, kernel %s; the lab VMs are systemd containers on it |" % (
                machine["cpus"], machine["python"], machine["kernel"])]


def build_section(result):
    summary = result["summary"]
    done = summary["repetitions"]
    reps = "%d of %d asked" % (done, result["repeat_asked"])
    if done < 3:
        reps += " (**fewer than the 3 the rules ask for**%s)" % (": " + result["stopped"] if result.get("stopped") else "")
    lines = [
        "## Build",
        "",
        "Deploy overhead above a raw `docker build` + health-ready start of the same commit (`bench/build.py`).",
        "Each repetition pushes a new commit of `%s` (a new `VERSION`, which its Dockerfile copies) to the lab's"
        % result["app"],
        "git host, then builds and starts it on `%s` two ways, in an order that alternates:" % result["vm"],
        "",
        "- **raw docker** (the floor; `bench/build_floor.py` on the VM as root): a scratch clone of the commit from",
        "  the git URL the apps role uses, with its deploy key (not timed), then timed: `docker build` with the",
        "  inventory's build args and the builder appfleet's `image_build` picks on that VM, `docker run -d` on a",
        "  loopback port, and GET of the health path from inside the VM every 0.05 s until the first 200.",
        "  The container, the image tag and the clone are removed afterwards.",
        "- **appfleet**: `playbooks/deploy.yml -l %s -e apps=%s`, the whole `ansible-playbook` run: Ansible's" % (
            result["vm"], result["app"]),
        "  start, the plan play, git fetch, build, and the start-first swap, whose health gate waits for Docker's",
        "  HEALTHCHECK as well as the health path (polled every second) and which lets the old container drain",
        "  before it stops. Afterwards the VM's nginx must serve the new version.",
        "",
        "| | |",
        "|---|---|",
        *_run_rows(result),
        "| VM | %s |" % _vm_line(result),
        "| repetitions | %s |" % reps,
        "",
    ]
    if not done:
        return lines + ["No repetition completed: %s" % (result.get("stopped") or "see the results file."), ""]
    parts = summary["raw_parts"]
    lines += [
        "| | median | min | max |",
        "|---|---|---|---|",
    ]
    rows = [("raw docker: build start to first 200, s", summary["seconds"]["raw docker"]),
            ("appfleet: deploy.yml, s", summary["seconds"]["appfleet"]),
            ("overhead appfleet − raw, s", summary["overhead_s"]),
            ("ratio appfleet / raw", summary["ratio"])]
    for name, fig in rows:
        lines.append("| %s | %.2f | %.2f | %.2f |" % (name, fig["median"], fig["min"], fig["max"]))
    healthy = ("; Docker's HEALTHCHECK said healthy at %s s" % fmt(parts["healthy_s"])) if parts.get("healthy_s") else ""
    lines += [
        "",
        "The raw floor in parts, seconds from the start of the build, median (min–max): the build took %s, `docker run`"
        " returned at %s%s. Not in the floor: the clone, %s s; the SSH call around it all, %s s." % (
            fmt(parts["build_s"]), fmt(parts["run_s"]), healthy, fmt(parts["clone_s"]), fmt(parts["ssh_wall_s"])),
        "appfleet's runs: %s tasks, changed %s." % (_runs(summary["tasks"]), _runs(summary["changed"])),
        "",
        _cache_text(summary),
        "",
        "![build](%s)" % build_plot(result),
        "",
    ]
    return lines


# -- build once ------------------------------------------------------------------

BUILD_ONCE_VARIANTS = ("every VM builds", "build once")


def build_once_plot(result, sizes):
    """A bar per size and variant (median seconds, min–max), the before grey, the after blue."""
    labels, figs, colours = [], [], []
    for size in sizes:
        for variant, colour in zip(BUILD_ONCE_VARIANTS, ("#999999", "#3b7dd8")):
            labels.append("%s VMs\n%s" % (size, variant))
            figs.append(result["summary"][size]["variants"][variant]["seconds"])
            colours.append(colour)
    return bar_chart(labels, figs, "deploy of a new commit of %s, by fleet size" % result["app"], "build-once.png",
                     1.6 * len(labels) + 1.5, colours)


def build_once_section(result):
    sizes = [str(size) for size in result["sizes"] if str(size) in result["summary"]]
    done = {size: result["summary"][size]["repetitions"] for size in sizes}
    reps = ", ".join("%s VMs: %d of %d asked" % (size, done[size], result["repeat_asked"]) for size in sizes) or "none"
    if not sizes or min(done.values()) < 3:
        reps += " (**fewer than the 3 the rules ask for**%s)" % (": " + result["stopped"] if result.get("stopped") else "")
    lines = [
        "## Build once",
        "",
        "A new commit of `%s` deployed to every VM of the lab fleet, each VM building it against one build per" % (
            result["app"]),
        "fleet (`bench/build_once.py`, issue 12). For each fleet size the lab is brought to that many VMs and",
        "converged; then each repetition pushes a new commit (a new `VERSION`, which the Dockerfile copies) for each",
        "variant and runs `playbooks/deploy.yml -e apps=%s` (`serial: 1`), in an order that alternates:" % result["app"],
        "",
        "- **every VM builds** (the before): `-e apps_build_once=false`;",
        "- **build once** (the after): `-e apps_build_once=true`: the first VM builds and, after its health check,",
        "  saves the image; the controller fetches it and each later VM loads it instead of building.",
        "",
        "Builds and loads are the VMs whose `Build the image of %s` and `Load the image of %s built on …` tasks" % (
            result["app"], result["app"]),
        "reported `changed`; after every run each VM's nginx served the new version, and the image id the",
        "container runs was compared across the VMs. Target: one build per fleet for a changed app.",
        "",
        "| | |",
        "|---|---|",
        *_run_rows(result),
        "| repetitions | %s |" % reps,
        "",
    ]
    measured = [size for size in sizes if done[size]]
    if not measured:
        return lines + ["No repetition completed: %s" % (result.get("stopped") or "see the results file."), ""]
    lines += [
        "| VMs | variant | seconds: median (min–max) | builds per run | loads per run | same image on every VM |",
        "|---|---|---|---|---|---|",
    ]
    for size in measured:
        summary = result["summary"][size]
        for variant in BUILD_ONCE_VARIANTS:
            fig = summary["variants"][variant]
            lines.append("| %s | %s | %s | %s | %s | %d of %d runs |" % (
                size, variant, fmt(fig["seconds"]), _runs(fig["builds"]), _runs(fig["loads"]),
                fig["same_image"], summary["repetitions"]))
    lines += [
        "",
        "Ratio build once / every VM builds, repetition by repetition, median (min–max): %s." % "; ".join(
            "%s VMs **%s**" % (size, fmt(result["summary"][size]["ratio"])) for size in measured),
        "",
        "![build once](%s)" % build_once_plot(result, measured),
        "",
    ]
    return lines


# -- deploy under load ---------------------------------------------------------

VERSION_COLOURS = {"old": "#3b7dd8", "new": "#e8833a", "other": "#999999"}


def timeline_plot(result, repetition):
    """One PNG per repetition: a request timeline per method, the methods stacked."""
    plt = pyplot()
    runs = [r for r in result["runs"] if r["repetition"] == repetition]
    runs.sort(key=lambda r: result["methods"].index(r["method"]) if r["method"] in result["methods"] else 99)
    fig, axes = plt.subplots(len(runs), 1, figsize=(11, 2.3 * len(runs)), sharex=True, squeeze=False)
    for ax, run in zip(axes[:, 0], runs):
        req = run["requests"]
        begin, end = run["deploy_window_s"]
        kinds = [_version_kind(v, run) for v in req["versions"]]
        points = {}
        for row in req["rows"]:
            start, latency, status, version, fresh, error = row[:6]
            # Older results files have no "slow" column: no long requests then.
            slow = row[6] if len(row) > 6 else 0
            failed = error is not None or status is None or status >= 500
            lane = 2 if slow else fresh
            key = ("failed", lane) if failed else ("ok" if not slow else "slow", kinds[version] if version is not None else "other")
            xs, ys = points.setdefault(key, ([], []))
            xs.append(start - begin)
            ys.append(max(latency, 1e-4))
        ax.axvspan(0, end - begin, color="#eeeeee", zorder=0, label="deploy")
        for kind in ("old", "new", "other"):
            if ("ok", kind) in points:
                xs, ys = points[("ok", kind)]
                label = "%s: %s" % (kind, _label(run, kind))
                ax.scatter(xs, ys, s=3, color=VERSION_COLOURS[kind], label=label, zorder=2, linewidths=0)
            if ("slow", kind) in points:
                xs, ys = points[("slow", kind)]
                ax.scatter(xs, ys, s=18, marker="s", facecolors="none", edgecolors=VERSION_COLOURS[kind],
                           label="long request, %s (%d)" % (kind, len(xs)), zorder=3)
        for fresh, marker, colour, name in ((0, "x", "#d62728", "failed, keep-alive"), (1, "^", "#8b0000", "failed, fresh"),
                                            (2, "D", "#800080", "failed, long request")):
            if ("failed", fresh) in points:
                xs, ys = points[("failed", fresh)]
                ax.scatter(xs, ys, s=22, marker=marker, color=colour, label="%s (%d)" % (name, len(xs)), zorder=3)
        ax.set_yscale("log")
        ax.set_ylabel("latency (s)")
        ax.set_title("%s: deploy %.1f s, failed %d keep-alive + %d fresh, served after: %s"
                     % (run["method"], run["deploy"]["seconds"], run["load"]["failed_keepalive"],
                        run["load"]["failed_fresh"], run["served_after_is"]), fontsize=9)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), markerscale=2, frameon=False)
    axes[-1, 0].set_xlabel("seconds since the deploy started")
    fig.suptitle("deploy under load, repetition %d (%s)" % (repetition, result["date"]), fontsize=10)
    fig.tight_layout()
    PLOTS.mkdir(parents=True, exist_ok=True)
    path = PLOTS / ("deploy-under-load-%d.png" % repetition)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path.relative_to(DOC.parent)


def _version_kind(version, run):
    """As bench/deploy_under_load.py's which(): a long request's 'web <VERSION> slow <N>s' is old
    when its first two words are those of the version served before."""
    old = run["served_before"] or ""
    if version and run["version_new"] in version.split():
        return "new"
    if version and (version == old or (len(old.split()) > 1 and version.split()[:2] == old.split()[:2])):
        return "old"
    return "other"


def _label(run, kind):
    return {"old": run["served_before"], "new": "web %s" % run["version_new"]}.get(kind, "another version")


def switch_at(run):
    """Seconds into the deploy of the first successful answer of the new version (None: never)."""
    req = run["requests"]
    new = {i for i, v in enumerate(req["versions"]) if _version_kind(v, run) == "new"}
    ends = [start + latency for start, latency, status, version, _fresh, error in (row[:6] for row in req["rows"])
            if version in new and error is None and status is not None and status < 500]
    return round(min(ends) - run["deploy_window_s"][0], 3) if ends else None


def _switch_cell(runs):
    values = sorted(v for v in (switch_at(r) for r in runs) if v is not None)
    if not values:
        return "never"
    cell = "%.1f (%.1f–%.1f)" % (values[len(values) // 2] if len(values) % 2 else
                                 (values[len(values) // 2 - 1] + values[len(values) // 2]) / 2, values[0], values[-1])
    return cell if len(values) == len(runs) else "%s in %d of %d runs" % (cell, len(values), len(runs))


def _errors(runs):
    kinds = {}
    for run in runs:
        for error in run["load"]["errors"]:
            name = error.split(":", 1)[0]
            kinds[name] = kinds.get(name, 0) + 1
    return ", ".join("%s (%d run%s)" % (k, n, "" if n == 1 else "s") for k, n in sorted(kinds.items())) or "none"


def _long_requests(runs):
    """The deploy-under-load table's two long-request cells: ok/total over the runs, and the old
    version's requests in flight at the switch that completed (median, min–max over runs with a switch)."""
    if not all("slow_requests" in r["load"] for r in runs):
        return "n/a", "n/a"
    ok = sum(r["load"]["slow_ok"] for r in runs)
    total = sum(r["load"]["slow_requests"] for r in runs)
    across = [r["load"]["slow_in_flight_at_switch"] for r in runs if r["load"]["slow_in_flight_at_switch"] is not None]
    if not across:
        return "%d/%d" % (ok, total), "n/a (no switch)"
    cell = fmt({"median": sorted(across)[len(across) // 2], "min": min(across), "max": max(across)}, 0)
    return "%d/%d" % (ok, total), cell if len(across) == len(runs) else "%s in %d of %d runs" % (cell, len(across), len(runs))


def _long_finding(runs):
    """What the long requests' figures say, for a finding ('' without slow lanes in the results)."""
    if not all("slow_requests" in r["load"] for r in runs) or not sum(r["load"]["slow_requests"] for r in runs):
        return ""
    total = sum(r["load"]["slow_requests"] for r in runs)
    ok = sum(r["load"]["slow_ok"] for r in runs)
    failed = sum(r["load"]["slow_failed"] for r in runs)
    text = "; long requests: %d of %d answered 200, %d failed" % (ok, total, failed)
    if ok + failed < total:
        text += ", %d answered another status" % (total - ok - failed)
    kinds = sorted({e.split(":", 1)[0] for r in runs for e in r["load"]["slow_errors"]})
    if kinds:
        text += " (%s)" % ", ".join(kinds)
    switched = [r for r in runs if r["load"]["slow_in_flight_at_switch"] is not None]
    if switched:
        text += "; in flight across the switch: %d of the old version completed, %d failed (over %d run%s)" % (
            sum(r["load"]["slow_in_flight_at_switch"] for r in switched),
            sum(r["load"]["slow_in_flight_failed"] for r in switched), len(switched), "" if len(switched) == 1 else "s")
    return text


def findings(result):
    """Sentences read off the numbers, per method, so the text cannot drift from the table."""
    lines = []
    for method, fig in result["summary"].items():
        runs = [r for r in result["runs"] if r["method"] == method]
        failed = sum(r["load"]["failed"] for r in runs)
        keepalive = sum(r["load"]["failed_keepalive"] for r in runs)
        after = fig["served_after"]
        text = "- **%s**: %d failed request%s over %d run%s (%d on keep-alive connections, %d on fresh ones)" % (
            method, failed, "" if failed == 1 else "s", len(runs), "" if len(runs) == 1 else "s",
            keepalive, failed - keepalive)
        if failed:
            text += "; kinds: %s" % _errors(runs)
        if keepalive and failed == keepalive:
            text += " (all on reused keep-alive connections)"
        text += "; longest gap %s s; after the deploy it served the new version in %d of %d runs" % (
            fmt(fig["longest_gap_s"]), after["new"], len(runs))
        if after["old"]:
            text += ", the old one in %d" % after["old"]
        if fig["deploy_failed"]:
            text += "; the deploy itself failed in %d run%s" % (fig["deploy_failed"], "" if fig["deploy_failed"] == 1 else "s")
        after_switch = sorted(r["deploy_window_s"][1] - r["deploy_window_s"][0] - switch_at(r)
                              for r in runs if switch_at(r) is not None)
        if after_switch:
            text += "; the deploy ran on %.1f s (median) after the new version first answered" % (
                after_switch[len(after_switch) // 2])
        reloads = fig["nginx_reloads"]
        if reloads["max"] or method.startswith("appfleet"):
            text += "; nginx reloads seen during the deploy: %s" % fmt(reloads, 0)
        lines.append(text + _long_finding(runs) + ".")
    return lines


def earlier_findings(result, before):
    """The figures of the run before this one, for comparison across a change (its own results file)."""
    if not before or before.get("date") == result.get("date"):
        return PUBLISHED_BEFORE
    lines = ["- **The run before** (%s, commit `%s`, %d of %d repetitions; not measured side by side with this"
             " one):" % (before["date"], before["commit"], before.get("repetitions_completed", 0), before["repeat_asked"])]
    for method, fig in before["summary"].items():
        lines.append("  %s: failed keep-alive %s, fresh %s, nginx reloads %s;" % (
            method, fmt(fig["failed_keepalive"], 0), fmt(fig["failed_fresh"], 0), fmt(fig["nginx_reloads"], 0)))
    lines[-1] = lines[-1][:-1] + "."
    return lines


# When no earlier results file is at hand: the figures docs/benchmarks.md published before the
# slot switch (commit 808b294, medians of 3 runs; see `git show 808b294:docs/benchmarks.md`).
PUBLISHED_BEFORE = [
    "- **Published before the slot switch** (2026-11-28, commit `808b294`, 3 repetitions; not measured side by"
    " side with this run): appfleet start-first failed keep-alive 3 (2–4), fresh 0, nginx reloads 1 per deploy;"
    " stop-first failed keep-alive 1131, fresh 1044; community.docker 226 and 238; seed 360 and 372.",
]


DEPLOY_NOTES = [
    "How each method is measured (`bench/deploy_under_load.py`): every run pushes a new commit of",
    "`web` (a new `VERSION`) to the lab's git host, starts the load, waits %(lead)g s, deploys, and",
    "keeps the load %(tail)g s after the deploy ended. Everything runs on `%(vm)s`.",
    "",
    "- **seed**: the users' manual flow over SSH in a checkout of its own (`/srv/bench-seed/web`,",
    "  container `seed-web` on the VM's `127.0.0.1:9200`): `git pull; docker stop seed-web;",
    "  docker build -t seed-web .; docker start seed-web`.",
    "- **community.docker**: `bench/baselines/community-docker.yml -l %(vm)s` with `appfleet_apps`",
    "  limited to web (`ansible.builtin.git`, `docker_image` build, `docker_container`; container",
    "  `bench-cd-web` on the VM's `127.0.0.1:9100`).",
    "- **appfleet start-first / stop-first**: `playbooks/deploy.yml -l %(vm)s -e apps=web`",
    "  (stop-first: an extra-vars copy of `appfleet_apps` with `strategy: stop-first` for web),",
    "  load through the VM's nginx (`127.0.0.1:%(port)s`, `Host: web.lab.test`).",
    "",
    "Load (`bench/load.py`): %(workers)d workers asked for %(rate)g requests/s together, half reusing one",
    "keep-alive connection, half opening a new connection per request; a request fails when it gets no",
    "response or a 5xx, and nothing is retried. The VM publishes only nginx and SSH, so the seed's and",
    "the baseline's containers are reached through an SSH tunnel (`ssh -L` to their loopback port):",
    "a refused connection there shows as a connection the tunnel closes without a response. The sample",
    "app answers HTTP/1.0 and closes every connection, so without nginx in front (seed,",
    "community.docker) the keep-alive workers open a new connection per request too: their split",
    "matters only for the appfleet rows, where nginx keeps client connections alive.",
    "nginx reloads are counted on the VM during each deploy as new generations of nginx worker",
    "processes (the master's children polled every 0.1 s; two reloads within one poll count once).",
    "",
    "%(long)s",
    "Not measured here: WebSockets, and the raw-Docker floor (the `build` benchmark's).",
]

LONG_NOTES = (
    "Long requests: %(slow_workers)d more workers send `GET /slow?s=%(slow_seconds)g` (the web sample app answers"
    " after %(slow_seconds)g s) one after the other, each on a new connection, staggered so that some are always"
    " in flight, during every method alike; they count apart from the figures above. *Long requests ok/total*:"
    " answers with 200 over all runs; *in flight at switch (completed)*: the old version's long requests that"
    " started before the new version first answered and completed after it with 200 (median, min–max per run;"
    " n/a where the new version never answered)."
)


def deploy_section(result):
    fmtargs = {"lead": result["load"]["lead_s"], "tail": result["load"]["tail_s"], "vm": result["vm"],
               "port": result.get("vm_http_port", "?"), "workers": result["load"]["workers"],
               "rate": result["load"]["rate"]}
    if result["load"].get("slow_workers"):
        fmtargs["long"] = LONG_NOTES % result["load"]
    else:
        fmtargs["long"] = "Long requests were not measured in this run (its results have no slow lanes): their columns say n/a."
    done = result.get("repetitions_completed", 0)
    reps = "%d of %d asked" % (done, result["repeat_asked"])
    if done < 3:
        reps += " (**fewer than the 3 the rules ask for**: %s)" % (result.get("stopped") or "see the results file")
    machine = result["machine"]
    lines = [
        "## Deploy under load",
        "",
        "A new commit of the `web` sample app deployed on one lab VM while a load runs against what the",
        "method serves: the seed's manual flow, the community.docker baseline, and appfleet's",
        "`deploy.yml` with the start-first and stop-first strategies, interleaved in each repetition.",
        "",
    ] + [line % fmtargs for line in DEPLOY_NOTES] + [
        "",
        "| | |",
        "|---|---|",
        "| date | %s |" % result["date"],
        "| commit | `%s`%s |" % (result["commit"], " with uncommitted changes" if result.get("commit_dirty") else ""),
        "| machine | %s cores (%s), Python %s, kernel %s; the lab VMs are systemd containers on it |" % (
            machine["cpus"], machine.get("cpu") or "?", machine["python"], machine["kernel"]),
        "| repetitions | %s |" % reps,
    ] + ["| note | %s |" % note for note in result.get("notes", [])] + [
        "",
        "Each cell: median (min–max) over the repetitions, but for the counts over all runs (served after,"
        " long requests ok/total).",
        "",
        "| method | deploy s | new version first answered, s into the deploy | failed keep-alive | failed fresh | longest gap s | both versions answered s"
        " | served after (new/old) | requests | achieved req/s | nginx reloads | long requests ok/total"
        " | in flight at switch (completed) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for method, fig in result["summary"].items():
        after = fig["served_after"]
        runs = [r for r in result["runs"] if r["method"] == method]
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %d/%d | %s | %s | %s | %s | %s |" % ((
            method, fmt(fig["deploy_s"], 1), _switch_cell(runs), fmt(fig["failed_keepalive"], 0), fmt(fig["failed_fresh"], 0),
            fmt(fig["longest_gap_s"], 3), fmt(fig["mixed_window_s"], 3), after["new"], after["old"],
            fmt(fig["requests"], 0), fmt(fig["rate"], 0), fmt(fig["nginx_reloads"], 0)) + _long_requests(runs)))
    rates = sorted(r["load"]["rate"] for r in result["runs"])
    achieved = ("- **Load achieved**: %.0f requests/s (median over all runs, %.0f–%.0f) of the %g asked: the load"
                " generator, the VM's nginx and app and the deploy share this machine's %s cores." % (
                    rates[len(rates) // 2], rates[0], rates[-1], result["load"]["rate"], result["machine"]["cpus"]))
    lines += ["", "What the numbers show:", ""] + findings(result) + [achieved] + earlier_findings(
        result, newest("deploy-under-load", back=1)) + [""]
    repetitions = sorted({r["repetition"] for r in result["runs"]})
    for repetition in repetitions:
        lines += ["![deploy under load, repetition %d](%s)" % (repetition, timeline_plot(result, repetition)), ""]
    return lines


def written_sections(text):
    """The sections of a benchmarks.md already written, by heading ("## Scale": its lines)."""
    sections, heading = {}, None
    for line in text.splitlines():
        if line.startswith("## "):
            heading = line
            sections[heading] = []
        if heading:
            sections[heading].append(line)
    return sections


HAND_START = "<!-- written by hand -->"
HAND_END = "<!-- end written by hand -->"


def hand_notes(lines):
    """The lines of a section between HAND_START and HAND_END (markers included)."""
    if HAND_START not in lines:
        return []
    start = lines.index(HAND_START)
    end = lines.index(HAND_END, start) if HAND_END in lines[start:] else len(lines) - 1
    return lines[start:end + 1]


def with_notes(new, old):
    """A section made again from the result it was made from keeps its notes written by
    hand (between the markers); a section of another run does not: they were about that one."""
    notes = hand_notes(old or [])
    if not notes:
        return new

    def bare(lines):
        lines = [line for line in lines if line not in notes]
        return "\n".join(lines).strip()
    if bare(new) != bare(old):
        return new
    while new and not new[-1].strip():
        new = new[:-1]
    return new + [""] + notes + [""]


def main():
    # bench/results is not committed: a benchmark with no result on this machine
    # keeps the section (and plots) written by its last run instead of losing it.
    kept = written_sections(DOC.read_text()) if DOC.exists() else {}
    sections, measured = [], False
    for heading, prefix, make in (("## Deploy under load", "deploy-under-load", deploy_section),
                                  ("## No-op deploy", "noop", lambda r: noop_section(r, newest("noop", back=1))),
                                  ("## Scale", "scale", scale_section),
                                  ("## Build", "build", build_section),
                                  ("## Build once", "build_once", build_once_section)):
        result = newest(prefix)
        if result:
            sections += with_notes(make(result), kept.get(heading))
            measured = True
        elif heading in kept:
            sections += kept[heading]
            print("bench: no %s result under %s; section %r kept as written"
                  % (prefix, RESULTS.relative_to(REPO), heading))
    if not measured:
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
