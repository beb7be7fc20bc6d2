# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run an image build: BuildKit through the engine's docker CLI, or the Engine API builder.

Private to this collection (leading underscore): not a public API.

Neither path tags the image: the caller tags the returned id only after a
successful build, so a failed build leaves every existing tag where it was.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import tempfile
import time

from ansible_collections.appfleet.docker.plugins.module_utils._docker import (
    APIError,
    AppfleetError,
    api_version_tuple,
)
from ansible_collections.appfleet.docker.plugins.module_utils._stream import read_stream_within

LOG_TAIL_LINES = 30

# BuildKit is in the engine since 18.09 (API 1.39).
BUILDKIT_MIN_API = (1, 39)


class BuildFailed(AppfleetError):
    """The build ran and failed: ``step`` is the Dockerfile step, ``log_tail`` the last lines."""

    needs_context = True

    def __init__(self, message, step=None, log_tail=None, timed_out=False):
        super(BuildFailed, self).__init__(message)
        self.message = message
        self.step = step
        self.log_tail = log_tail or []
        # The build ran past build_timeout (a total, wall-clock limit) and was stopped.
        self.timed_out = timed_out


def cli_env(docker_host):
    env = dict(os.environ)
    env["DOCKER_HOST"] = docker_host
    env["DOCKER_BUILDKIT"] = "1"
    env.pop("DOCKER_CONTEXT", None)
    env.setdefault("LC_ALL", "C")
    return env


def cli_reads(name):
    """True for an environment variable the docker CLI itself reads: no build arg may take its name."""
    return name.startswith("DOCKER_") or name in ("PATH", "HOME")


def cli_command(cli, docker_host, iidfile, context, dockerfile, build_args, target, labels):
    """The ``cli build`` command and its environment: (argv, env).

    Build args are named on the command line (``--build-arg NAME``) and their values
    given in the CLI's environment, which the CLI reads for a name without ``=``: a
    value is never in argv, which any local user can read (``ps``, /proc/<pid>/cmdline).
    """
    clash = sorted(k for k in build_args if cli_reads(k))
    if clash:
        raise AppfleetError("build_args: %s: a variable the docker CLI reads itself; rename it or set builder=api"
                            % ", ".join(clash))
    env = cli_env(docker_host)
    cmd = [cli, "build", "--progress=plain", "--iidfile", iidfile, "--file", dockerfile]
    for key in sorted(labels):
        cmd += ["--label", "%s=%s" % (key, labels[key])]
    for key in sorted(build_args):
        cmd += ["--build-arg", key]
        env[key] = build_args[key]
    if target:
        cmd += ["--target", target]
    cmd.append(context)
    return cmd, env


def find_buildkit_cli(candidates, docker_host, api_version):
    """Find a docker CLI that builds with BuildKit against this engine.

    Returns (path, None) or (None, reason). A client before 23.0 builds with
    BuildKit on its own when DOCKER_BUILDKIT=1; a newer one needs the buildx plugin.
    """
    if api_version_tuple(api_version) < BUILDKIT_MIN_API:
        return None, "the engine (API %s) is too old for BuildKit" % api_version
    reasons = []
    seen = set()
    env = cli_env(docker_host)
    for cand in candidates:
        path = cand if os.path.isabs(cand) else shutil.which(cand)
        if not path or not os.access(path, os.X_OK):
            reasons.append("%s: not found" % cand)
            continue
        real = os.path.realpath(path)
        if real in seen:
            continue
        seen.add(real)
        try:
            out = subprocess.run([path, "--version"], env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            reasons.append("%s: %s" % (path, exc))
            continue
        match = re.search(r"version ([0-9]+)\.([0-9]+)", out.stdout.decode("utf-8", "replace"))
        if out.returncode != 0 or not match:
            reasons.append("%s: not a docker client" % path)
            continue
        if (int(match.group(1)), int(match.group(2))) < (23, 0):
            return path, None
        try:
            bx = subprocess.run([path, "buildx", "version"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            reasons.append("%s: %s" % (path, exc))
            continue
        if bx.returncode == 0:
            return path, None
        reasons.append("%s %s.%s needs the buildx plugin, which is missing"
                       % (path, match.group(1), match.group(2)))
    return None, "; ".join(reasons) or "no docker client given"


def _tail(lines, count=LOG_TAIL_LINES):
    lines = [line.rstrip() for line in lines
             if line.strip() and not re.match(r"^#[0-9]+ sha256:[0-9a-f]+$", line.strip())]
    return lines[-count:]


def buildkit_failed_step(lines):
    """The step that failed in BuildKit's plain progress output, e.g. 'RUN false'."""
    for line in lines:
        m = re.match(r"^\s*>\s*\[([^\]]*)\]\s*(.*?):?\s*$", line)
        if m:
            return m.group(2)
    failed = None
    for line in lines:
        m = re.match(r"^#(\d+) ERROR", line)
        if m:
            failed = m.group(1)
    if failed:
        for line in lines:
            m = re.match(r"^#%s \[[^\]]*\] (.*)$" % failed, line)
            if m:
                return m.group(1).strip()
    return None


def build_with_cli(cli, docker_host, context, dockerfile, build_args, target, labels, timeout):
    """Build with ``cli build`` and BuildKit. Returns (image id, log tail)."""
    # A private (0700) directory: nobody else can put a file at the name the CLI writes.
    tmpdir = tempfile.mkdtemp(prefix="appfleet-iid-")
    iidfile = os.path.join(tmpdir, "iid")
    try:
        cmd, env = cli_command(cli, docker_host, iidfile, context, dockerfile, build_args, target, labels)
        try:
            proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            out = (exc.output or b"").decode("utf-8", "replace").splitlines()
            raise BuildFailed("the build took longer than build_timeout (%s s)" % timeout,
                              step=buildkit_failed_step(out), log_tail=_tail(out), timed_out=True)
        lines = proc.stdout.decode("utf-8", "replace").splitlines()
        iid = ""
        if os.path.exists(iidfile):
            with open(iidfile) as f:
                iid = f.read().strip()
        if proc.returncode != 0 or not iid:
            last = _tail(lines, 1)
            raise BuildFailed(last[0] if last else "docker build exited with %s" % proc.returncode,
                              step=buildkit_failed_step(lines), log_tail=_tail(lines))
        return iid, _tail(lines)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def build_with_api(client, context, dockerfile, build_args, target, labels, timeout):
    """Build with the Engine API builder (no BuildKit syntax). Returns (image id, log tail).

    ``timeout`` is a total, wall-clock limit: the build's stream is read in a
    thread and given up on when the time is over, even while a step prints
    nothing. The module then exits, which closes the connection, and the
    engine cancels the build; the caller tags nothing.
    """
    state = dict(lines=[], iid=None, error=None)

    def on_chunk(chunk):
        if "stream" in chunk:
            state["lines"].extend(chunk["stream"].splitlines())
        if "error" in chunk:
            state["error"] = chunk.get("error") or "build failed"
            state["lines"].extend(state["error"].splitlines())
        aux = chunk.get("aux")
        if isinstance(aux, dict) and aux.get("ID"):
            state["iid"] = aux["ID"]

    # The HTTP read timeout only has to outlast the total limit, enforced by the reader.
    def open_stream():
        return client.api.build(path=context, dockerfile=dockerfile, buildargs=build_args or None,
                                target=target or None, labels=labels, rm=True, forcerm=True,
                                decode=True, timeout=timeout + 60, pull=False)

    try:
        done = read_stream_within(open_stream, on_chunk, timeout, "appfleet-build")
    except APIError as exc:
        # The engine refused the build itself (a Dockerfile it cannot parse, say).
        done = True
        state["error"] = str(exc.explanation or exc)
        state["lines"].extend(state["error"].splitlines())
    lines = list(state["lines"])
    if not done:
        raise BuildFailed("the build took longer than build_timeout (%s s)" % timeout,
                          step=_api_step(lines), log_tail=_tail(lines), timed_out=True)
    iid, error = state["iid"], state["error"]
    if not iid and error is None:
        for line in reversed(lines):
            m = re.match(r"^Successfully built ([0-9a-f]+)", line.strip())
            if m:
                iid = m.group(1)
                break
    if error is not None or not iid:
        raise BuildFailed(error or "the builder returned no image id", step=_api_step(lines),
                          log_tail=_tail(lines))
    if not iid.startswith("sha256:"):
        iid = client.api.inspect_image(iid)["Id"]
    return iid, _tail(lines)


def relabel_image(client, iid, labels, timeout):
    """A new image that is ``iid`` with ``labels`` set: no layer, no context, no pull
    (the Engine API builder on ``FROM <iid>``). Returns its id."""
    try:
        stream = client.api.build(fileobj=io.BytesIO(("FROM %s\n" % iid).encode("ascii")), labels=labels,
                                  rm=True, forcerm=True, decode=True, timeout=timeout, pull=False)
        new_id = None
        lines = []
        for chunk in stream:
            if "stream" in chunk:
                lines.extend(chunk["stream"].splitlines())
            if "error" in chunk:
                raise BuildFailed(chunk.get("error") or "relabelling failed", log_tail=_tail(lines))
            aux = chunk.get("aux")
            if isinstance(aux, dict) and aux.get("ID"):
                new_id = aux["ID"]
    except APIError as exc:
        raise BuildFailed(str(exc.explanation or exc))
    if not new_id:
        raise BuildFailed("the builder returned no image id", log_tail=_tail(lines))
    return new_id


def _api_step(lines):
    """The last ``Step n/m : ...`` the classic builder printed."""
    step = None
    for line in lines:
        m = re.match(r"^Step \d+/\d+ : (.*)$", line.strip())
        if m:
            step = m.group(1)
    return step


class Timer(object):
    def __init__(self):
        self.start = time.monotonic()

    def elapsed(self):
        return round(time.monotonic() - self.start, 3)
