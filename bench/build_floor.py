"""The raw-Docker floor of bench/build.py: run on a lab VM as root, Python 3 standard library only.

bench/build.py sends this file to the VM's python3 on stdin (`sudo python3 - ARGS`); it prints
one JSON object on its last line of output and exits 0 whatever happened (a failure is the
object's "error"). Two modes:

    python3 - --facts
        what the VM has: docker client and server versions, the builder the floor uses,
        git, curl and python3 versions (null: missing).

    python3 - --repo URL --branch B --commit SHA --key K --known-hosts F --dir D --tag T
              --name N --port P --health-path /health [--context .] [--dockerfile Dockerfile]
              [--build-arg KEY=VALUE]... [--timeout S] [--build-timeout S]
        the floor for one commit:
        1. (not timed; clone_s) `git clone --depth 1 --branch B URL D` with the deploy key K and
           the git host's key F (StrictHostKeyChecking=yes), as the apps role fetches; HEAD must be SHA.
        2. (timed from here) `docker build -t T -f D/<context>/<dockerfile> --build-arg ... D/<context>`
           with the builder image_build's `auto` picks on such a host: BuildKit (DOCKER_BUILDKIT=1,
           --progress=plain) with a client before 23.0 or with the buildx plugin, else the
           classic builder (DOCKER_BUILDKIT=0).
        3. `docker run -d --name N -p 127.0.0.1::P T`: Docker picks a free loopback port.
        4. GET http://127.0.0.1:<that port><health path> every 0.05 s until a 200: ready_s,
           seconds from the start of the build, is the floor.
        Then, not part of the floor: GET / (the version served), Docker's HEALTHCHECK status
        polled until healthy (healthy_s, from the start of the build: appfleet's health gate
        waits for it as well as for the health path), the image's layers (bench/build.py
        compares them with appfleet's image of the same commit: a build cache check), the
        steps the builder took from its cache.
        Always, at the end: the container, the image tag and the clone are removed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request

POLL = 0.05


class Failed(Exception):
    """A step of the floor failed; the message says which."""


def run(cmd, timeout, env=None):
    try:
        return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                              timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired:
        raise Failed("%s: no end after %s s" % (" ".join(cmd[:3]), timeout))
    except OSError as exc:
        raise Failed("%s: %s" % (cmd[0], exc))


def output(cmd, timeout=60):
    """The command's output, stripped; None when it cannot run or fails."""
    try:
        proc = run(cmd, timeout)
    except Failed:
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def builder():
    """('buildkit' or 'classic', client version): the choice image_build's `auto` makes with this CLI."""
    version = output(["docker", "version", "--format", "{{.Client.Version}}"]) or ""
    match = re.match(r"(\d+)\.(\d+)", version)
    if match and (int(match.group(1)), int(match.group(2))) < (23, 0):
        return "buildkit", version
    if output(["docker", "buildx", "version"]) is not None:
        return "buildkit", version
    return "classic", version


def facts():
    kind, client = builder()
    return {
        "docker_client": client or None,
        "docker_server": output(["docker", "version", "--format", "{{.Server.Version}}"]),
        "builder": kind,
        "git": output(["git", "--version"]),
        "curl": (output(["curl", "--version"]) or "").split("\n")[0] or None,
        "python3": sys.version.split()[0],
    }


def http_get(url):
    """(status, body) of one GET; (None, error) without an answer."""
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, resp.read().decode("utf-8", "replace").strip()
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except (OSError, ValueError) as exc:
        return None, type(exc).__name__


def clone(args):
    if not os.path.isabs(args.dir) or os.path.dirname(args.dir.rstrip("/")) in ("", "/"):
        raise Failed("--dir %r: an absolute path two levels down at least" % args.dir)
    shutil.rmtree(args.dir, ignore_errors=True)
    env = dict(os.environ, GIT_SSH_COMMAND="ssh -i %s -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes"
               " -o UserKnownHostsFile=%s" % (args.key, args.known_hosts))
    proc = run(["git", "clone", "-q", "--depth", "1", "--branch", args.branch, args.repo, args.dir], 300, env)
    if proc.returncode != 0:
        raise Failed("git clone: %s" % proc.stdout.strip()[-500:])
    head = output(["git", "-C", args.dir, "rev-parse", "HEAD"])
    if head != args.commit:
        raise Failed("the clone is at %s, not at %s (another push in between?)" % (head, args.commit))


def build(args, kind):
    context = os.path.normpath(os.path.join(args.dir, args.context))
    cmd = ["docker", "build", "-t", args.tag, "-f", os.path.join(context, args.dockerfile)]
    for pair in args.build_arg:
        cmd += ["--build-arg", pair]
    env = dict(os.environ, DOCKER_BUILDKIT="1" if kind == "buildkit" else "0")
    if kind == "buildkit":
        cmd.append("--progress=plain")
    proc = run(cmd + [context], args.build_timeout, env)
    lines = proc.stdout.splitlines()
    if proc.returncode != 0:
        raise Failed("docker build: %s" % " | ".join(lines[-8:]))
    cached = re.compile(r"^#\d+ CACHED$" if kind == "buildkit" else r"^---> Using cache$")
    return sum(1 for line in lines if cached.match(line.strip()))


def published_port(args):
    text = output(["docker", "port", args.name, "%d/tcp" % args.port]) or ""
    # "127.0.0.1:49153", one line per binding.
    for line in text.splitlines():
        host, port = line.rsplit(":", 1) if ":" in line else ("", "")
        if host == "127.0.0.1" and port.isdigit():
            return int(port)
    raise Failed("docker port %s %d/tcp: %r" % (args.name, args.port, text))


def wait_until(probe, deadline):
    """Call probe() every POLL seconds until it returns something true or the deadline passes."""
    while True:
        got = probe()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(POLL)


def floor(args, result):
    begin = time.monotonic()
    clone(args)
    result["clone_s"] = round(time.monotonic() - begin, 3)
    kind = builder()[0]
    result["builder"] = kind
    run(["docker", "rm", "-f", args.name], 60)
    t0 = time.monotonic()
    result["cached_steps"] = build(args, kind)
    result["build_s"] = round(time.monotonic() - t0, 3)
    proc = run(["docker", "run", "-d", "--name", args.name, "-p", "127.0.0.1::%d" % args.port, args.tag], 120)
    if proc.returncode != 0:
        raise Failed("docker run: %s" % proc.stdout.strip()[-500:])
    result["run_s"] = round(time.monotonic() - t0, 3)
    root = "http://127.0.0.1:%d/" % published_port(args)
    health = root + args.health_path.lstrip("/")
    if not wait_until(lambda: http_get(health)[0] == 200, time.monotonic() + args.timeout):
        raise Failed("GET %s: no 200 within %s s (last: %s)" % (health, args.timeout, http_get(health)))
    result["ready_s"] = round(time.monotonic() - t0, 3)
    # Outside the floor: what it serves, Docker's own health status, the layers.
    result["served"] = http_get(root)[1].split("\n")[0]

    def docker_health():
        # "": the image has no HEALTHCHECK, nothing more to wait for.
        return output(["docker", "inspect", "-f", "{{if .State.Health}}{{.State.Health.Status}}{{end}}",
                       args.name]) in ("healthy", "")

    result["healthy_s"] = round(time.monotonic() - t0, 3) if wait_until(
        docker_health, time.monotonic() + args.timeout) else None
    layers = output(["docker", "image", "inspect", "-f", "{{json .RootFS.Layers}}", args.tag])
    result["layers"] = json.loads(layers) if layers else None


def remove(args):
    """The container, the image tag (not the layers another image still uses) and the clone:
    True when none of them is left."""
    for cmd in (["docker", "rm", "-f", args.name], ["docker", "rmi", args.tag]):
        try:
            run(cmd, 120)
        except Failed:
            pass
    shutil.rmtree(args.dir, ignore_errors=True)
    return (output(["docker", "container", "inspect", args.name]) is None
            and output(["docker", "image", "inspect", args.tag]) is None and not os.path.exists(args.dir))


def arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--facts", action="store_true", help="only say what the VM has")
    for name in ("--repo", "--branch", "--commit", "--key", "--known-hosts", "--dir", "--tag", "--name"):
        parser.add_argument(name)
    parser.add_argument("--context", default=".")
    parser.add_argument("--dockerfile", default="Dockerfile")
    parser.add_argument("--build-arg", action="append", default=[])
    parser.add_argument("--port", type=int)
    parser.add_argument("--health-path", default="/health")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to the first 200, and to healthy")
    parser.add_argument("--build-timeout", type=float, default=600.0)
    return parser


def main(argv=None):
    parser = arguments()
    args = parser.parse_args(argv)
    if args.facts:
        print(json.dumps(facts()))
        return 0
    if not all((args.repo, args.branch, args.commit, args.key, args.known_hosts, args.dir, args.tag, args.name,
                args.port)):
        parser.error("the floor needs --repo, --branch, --commit, --key, --known-hosts, --dir, --tag, --name, --port")
    result = {"error": None}
    try:
        floor(args, result)
    except Failed as exc:
        result["error"] = str(exc)
    finally:
        result["removed"] = remove(args)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
