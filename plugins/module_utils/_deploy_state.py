# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a host looked like after its last complete deploy, and whether it still does.

Private to this collection (leading underscore): not a public API.

After a deploy finishes on a host, ``record`` writes a state file with the digest
of the deploy's inputs (computed on the controller), the commit checked out for
each app, the appfleet containers and images, and the content, mode and owner of
the files the deploy manages. ``check`` compares the host with that file: the
same inputs, each app's branch or tag still at the recorded commit on the git
server, the same containers running, the same images and files. An unhealthy
container is not a reason: a deploy with the same inputs would not replace it. The
old container of a swap while it drains (``<name>--draining-<deadline>``) is neither
recorded nor compared; one still there after its deadline is a reason (its app's
next app_container run removes it).
Anything that differs, or cannot be read, is a reason to deploy; no reason means
that a deploy would change nothing, so deploy.yml can leave the host alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shlex
import stat
import time
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.appfleet.docker.plugins.module_utils._docker import LABEL_APP, AppfleetError
from ansible_collections.appfleet.docker.plugins.module_utils._container_spec import drain_deadline, drain_owner
from ansible_collections.appfleet.docker.plugins.module_utils._drain import left_behind, live_removers
from ansible_collections.appfleet.docker.plugins.module_utils._engine_settings import RULES_PROGRAM
from ansible_collections.appfleet.docker.plugins.module_utils._engine_socket import get_json
from ansible_collections.appfleet.docker.plugins.module_utils._files import write_file_atomic
from ansible_collections.appfleet.docker.plugins.module_utils._git import mask_url, run_git, url_secrets
from ansible_collections.appfleet.docker.plugins.module_utils._proxy import marker_app

STATE_VERSION = 1
# Bounds, so that a watched directory with a surprise in it cannot stall a deploy.
MAX_FILES = 5000
MAX_FILE_BYTES = 16 * 1024 * 1024
GIT_TIMEOUT = 30
FULL_SHA_RE = re.compile(r"^[0-9a-f]{40}\Z")
SHORT_SHA_RE = re.compile(r"^[0-9a-f]{7,39}\Z")
# An SSH server that turned the connection away before authentication: sshd's
# MaxStartups (10 by default) drops new connections while many are being set
# up, and every host of a fleet asks the same git server at once. Asked again
# after a short, random pause; anything else is an answer.
TRANSIENT_SSH_RE = re.compile(r"kex_exchange_identification|ssh_exchange_identification|Connection reset by"
                              r"|Connection closed by|banner exchange")
LS_REMOTE_ATTEMPTS = 4
# git's advice after any failed remote call: no news in a message.
GIT_BOILERPLATE = ("Please make sure you have the correct access rights", "and the repository exists.")


def file_entry(path):
    """``"<kind> <mode> <uid>:<gid> <sha256>"`` of one path (without following a symlink)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return "absent"
    owner = "%04o %d:%d" % (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
    if stat.S_ISLNK(st.st_mode):
        return "link %s %s" % (owner, os.readlink(path))
    if stat.S_ISDIR(st.st_mode):
        return "dir %s" % owner
    if not stat.S_ISREG(st.st_mode):
        return "other %s" % owner
    if st.st_size > MAX_FILE_BYTES:
        # Size and time stand in for the content of a file too big to hash on every run.
        return "file %s size=%d mtime=%d" % (owner, st.st_size, st.st_mtime_ns)
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)
    return "file %s %s" % (owner, digest.hexdigest())


def watched_files(paths):
    """{path: entry} for each watched path and, for a directory, everything under it."""
    entries = {}
    for top in paths:
        entries[top] = file_entry(top)
        if not entries[top].startswith("dir "):
            continue
        for root, dirs, files in os.walk(top):
            dirs.sort()
            for name in sorted(dirs) + sorted(files):
                path = os.path.join(root, name)
                entries[path] = file_entry(path)
                if len(entries) > MAX_FILES:
                    raise AppfleetError(
                        "watch_paths: more than %d files under %s; watch smaller directories" % (MAX_FILES, top))
    return entries


def unix_socket(docker_host):
    """The socket path of a ``unix://`` docker_host, else None."""
    return docker_host[len("unix://"):] if docker_host.startswith("unix://") else None


def engine_state(am):
    """The appfleet containers ({name: {id, image, status, health}}) and images ({id: tags})."""
    socket_path, timeout = unix_socket(am.params["docker_host"]), am.params["api_timeout"]
    if socket_path:
        # The engine's socket, read with the standard library (no Docker SDK import).
        found_containers = get_json(socket_path, "/containers/json", {"all": "1", "filters": {"label": [LABEL_APP]}},
                                    timeout)
        found_images = get_json(socket_path, "/images/json", {"filters": {"label": [LABEL_APP]}}, timeout)
    else:
        found_containers = am.client.api.containers(all=True, filters={"label": LABEL_APP})
        found_images = am.client.api.images(filters={"label": LABEL_APP})
    containers = {}
    for item in found_containers:
        name = (item.get("Names") or ["?"])[0].lstrip("/")
        containers[name] = {"id": item["Id"], "image": item.get("ImageID"), "state": item.get("State"),
                            "status": item.get("Status") or ""}
    images = {}
    for item in found_images:
        images[item["Id"]] = sorted(item.get("RepoTags") or [])
    return containers, images


def ssh_env(source):
    """What a git call about ``source`` adds to git's environment: its deploy key and known hosts."""
    ssh = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"]
    if source.get("key_file"):
        ssh += ["-i", source["key_file"], "-o", "IdentitiesOnly=yes"]
    if source.get("known_hosts"):
        ssh += ["-o", "UserKnownHostsFile=%s" % source["known_hosts"]]
    return {"GIT_SSH_COMMAND": " ".join(shlex.quote(part) for part in ssh)}


def checkout_commit(source):
    """The commit checked out for an app, or None."""
    if not os.path.isdir(os.path.join(source["checkout"], ".git")):
        return None
    rc, out, _err = run_git(["rev-parse", "--verify", "HEAD^{commit}"], top=source["checkout"], timeout=GIT_TIMEOUT)
    return out.decode("ascii", "replace").strip() if rc == 0 else None


def remote_key(source):
    """(repository, version) that an answer about a source is known by: returned by state=resolve,
    given back in remote_commits. The repository with its credentials masked (mask_url): never
    output, and the same key for every host (git is asked with the real URL)."""
    return mask_url(source["repo"]), source.get("version") or "HEAD"


def resolve_remote(source):
    """(commit or None, why not) of the app's version on its git server, as the git module would check it out."""
    version = remote_key(source)[1]
    if FULL_SHA_RE.match(version):
        return version, None
    # The second pattern lists an annotated tag's commit (refs/tags/<v>^{}).
    for attempt in range(1, LS_REMOTE_ATTEMPTS + 1):
        rc, out, err = run_git(["ls-remote", "--", source["repo"], version, version + "^{}"], timeout=GIT_TIMEOUT,
                               own_config_only=False, env=ssh_env(source))
        out = out.decode("utf-8", "replace")
        if rc == 0 or attempt == LS_REMOTE_ATTEMPTS or not TRANSIENT_SSH_RE.search(err):
            break
        time.sleep(random.uniform(0.2, 0.6) * attempt)
    if rc != 0:
        if SHORT_SHA_RE.match(version):
            # Most likely an abbreviated commit: compared with the checkout by prefix.
            return version, None
        return None, "git ls-remote failed: %s" % git_error(rc, err, attempt)
    refs = {}
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) == 2:
            refs[parts[1]] = parts[0]
    for ref in ("refs/heads/%s" % version, "refs/tags/%s^{}" % version, "refs/tags/%s" % version, version):
        if ref in refs:
            return refs[ref], None
    if SHORT_SHA_RE.match(version):
        # An abbreviated commit: the checkout is compared with it, not the server.
        return version, None
    return None, "the git server has no branch or tag %s" % version


def git_error(rc, err, attempts=1):
    """git's own lines of a failed call, on one line, without its stock advice."""
    lines = [line.strip() for line in err.splitlines() if line.strip() and line.strip() not in GIT_BOILERPLATE]
    text = mask_url("; ".join(lines)) or "rc %d" % rc
    if len(text) > 400:
        text = "..." + text[-400:]
    return text + (" (asked %d times)" % attempts if attempts > 1 else "")


def ask_servers(sources):
    """resolve_remote of each source, the servers asked at once."""
    if not sources:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(sources))) as pool:
        return list(pool.map(resolve_remote, sources))


def resolve(sources):
    """state=resolve: each distinct repository and version once, with the commit or why not."""
    distinct = {}
    for source in sources:
        distinct.setdefault(remote_key(source), source)
    answers = []
    for (repo, version), (commit, why) in zip(distinct, ask_servers(list(distinct.values()))):
        answers.append({"repo": repo, "version": version, "commit": commit, "error": why})
    return answers


def same_commit(wanted, recorded):
    return bool(wanted and recorded) and (recorded == wanted or (len(wanted) < 40 and recorded.startswith(wanted)))


def current_state(am, with_remote):
    """The host as it is now; with_remote also asks each app's git server for its version."""
    params = am.params
    sources = params["sources"] or []
    state = {"version": STATE_VERSION, "fingerprint": params["fingerprint"], "sources": {}}
    am.step = "reading the app checkouts"
    for source in sources:
        state["sources"][source["app"]] = checkout_commit(source)
    remote = {}
    if with_remote and sources:
        am.step = "asking the git servers"
        # Answers a state=resolve call gave for the whole fleet: the same repository and
        # version are not asked again. A source without one asks its server itself.
        known = dict(((mask_url(item["repo"]), item["version"]), item["commit"])
                     for item in params["remote_commits"] or [] if item.get("commit"))
        ask = []
        for source in sources:
            commit = known.get(remote_key(source))
            if commit:
                remote[source["app"]] = (commit, None)
            else:
                ask.append(source)
        for source, answer in zip(ask, ask_servers(ask)):
            remote[source["app"]] = answer
    am.step = "listing the app containers and images"
    state["containers"], state["images"] = engine_state(am)
    am.step = "reading the watched files"
    state["files"] = watched_files(params["watch_paths"] or [])
    return state, remote


def firewall_state(run_command, program=RULES_PROGRAM):
    """(state, warning) of the engine role's DOCKER-USER rules: ``in place``, ``missing`` or
    ``unknown`` with a warning for the last two; (None, None) on a host without the program.
    Its --check exits 0 when the rules are in place, 1 when not."""
    if not os.path.exists(program):
        return None, None
    rc, _out, err = run_command([program, "--check"])
    if rc == 0:
        return "in place", None
    if rc == 1:
        return "missing", ("the DOCKER-USER rules are not in place (%s --check): published container ports "
                           "may be open to any network; run site.yml (role appfleet.docker.engine) to put them "
                           "back" % program)
    return "unknown", ("the DOCKER-USER rules could not be checked (%s --check exited %s: %s); run it on the "
                       "host to see why" % (program, rc, (err or "").strip()[-300:]))


def read_state(path):
    try:
        with open(path) as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return None
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def settled(containers):
    """The containers without the draining ones (the old containers of swaps, removed at their deadline)."""
    return dict((name, c) for name, c in containers.items() if drain_owner(name) is None)


def overdue_drains(containers, apps, at, live=()):
    """(app or None, reason) for each draining container left behind: still there after its deadline,
    no remover at work on it (``live``: the container ids of the removers running, _drain.live_removers)."""
    found = []
    for name in sorted(containers):
        until, owner = drain_deadline(name), drain_owner(name)
        if until is not None and left_behind(containers[name]["id"], until, at, live):
            found.append((owner if owner in apps else None, (
                "container %s: its drain ended %d s ago but it is still there (the process that removes it was "
                "stopped); a deploy of app %s removes it" % (name, at - until, owner))))
    return found


def findings(recorded, now, remote, sources, mutable_images, refresh_bases=(), at=None, live=()):
    """Why a deploy is needed, as (app, reason): app is None for a reason of the whole host.

    ``at``: the time a draining container's deadline is compared with (now by default); ``live``: the
    container ids that a remover process drains (_drain.live_removers).
    """
    if recorded is None:
        return [(None, "no record of a complete deploy on this host yet")]
    if recorded.get("version") != STATE_VERSION:
        return [(None, "the state file is unreadable or from another version of the collection")]
    found = []
    if recorded.get("fingerprint") != now["fingerprint"]:
        found.append((None, "the deploy's inputs changed (inventory, versions, key or certificate files, "
                            "or the collection)"))
    for image in mutable_images:
        found.append((image["app"], "app %s runs %s, a tag the registry may have moved; only an image by "
                                    "digest (name@sha256:...) can be skipped" % (image["app"], image["image"])))
    for app in refresh_bases:
        found.append((app, "app %s refreshes its base images (base_refresh): only a deploy asks the registry "
                           "whether one moved" % app))
    for source in sources:
        app = source["app"]
        was = (recorded.get("sources") or {}).get(app)
        if now["sources"].get(app) != was or was is None:
            found.append((app, "app %s: its checkout is not the one recorded" % app))
            continue
        commit, why = remote.get(app, (None, "not asked"))
        if commit is None:
            found.append((app, "app %s: %s" % (app, why)))
        elif not same_commit(commit, was):
            found.append((app, "app %s: %s is at %s on the git server; %s is deployed"
                               % (app, remote_key(source)[1], commit[:12], was[:12])))
    # A container named as an app is that app's; another one concerns the whole host.
    apps = set(s["app"] for s in sources) | set(m["app"] for m in mutable_images) | set(refresh_bases)
    old_containers, new_containers = settled(recorded.get("containers") or {}), settled(now["containers"])
    for name in sorted(set(old_containers) | set(new_containers)):
        old, new = old_containers.get(name), new_containers.get(name)
        owner = name if name in apps else None
        if old is None or new is None:
            found.append((owner, "container %s: %s since the last deploy" % (name, "added" if old is None else "gone")))
        elif (old["id"], old["image"]) != (new["id"], new["image"]):
            found.append((owner, "container %s: replaced since the last deploy" % name))
        elif new["state"] != "running":
            found.append((owner, "container %s: %s" % (name, new["state"])))
    found.extend(overdue_drains(now["containers"], apps, time.time() if at is None else at, live))
    if (recorded.get("images") or {}) != now["images"]:
        found.append((None, "the app images differ from those the last deploy left"))
    # A reload marker of app_container (module_utils/_proxy.py) among the watched files: nginx may
    # still run an older upstream than the file, whatever the record says. It concerns its app only.
    for path in sorted(now["files"]):
        app = marker_app(path)
        if app and now["files"][path] != "absent":
            found.append((app, "app %s: its nginx upstream file was rewritten but nginx not reloaded with it "
                               "(a run was stopped in between; %s exists)" % (app, path)))
    old_files = dict((p, e) for p, e in (recorded.get("files") or {}).items() if not marker_app(p))
    new_files = dict((p, e) for p, e in now["files"].items() if not marker_app(p))
    changed = sorted(p for p in set(old_files) | set(new_files) if old_files.get(p) != new_files.get(p))
    if changed:
        found.append((None, "files changed since the last deploy: %s%s" % (
            ", ".join(changed[:5]), " and %d more" % (len(changed) - 5) if len(changed) > 5 else "")))
    return found


def compare(recorded, now, remote, sources, mutable_images, refresh_bases=()):
    """Reasons why a deploy is needed (empty: the host is as the last deploy left it)."""
    return [reason for _app, reason in findings(recorded, now, remote, sources, mutable_images, refresh_bases)]


def apps_to_deploy(found):
    """The apps the findings name, sorted; None when one concerns the whole host (deploy every app)."""
    apps = set(app for app, _reason in found)
    return None if None in apps else sorted(apps)


def recordable(now):
    """The state to write: the containers without their status text, and without the draining ones."""
    record = dict(now)
    record["containers"] = dict(
        (name, {"id": c["id"], "image": c["image"], "state": c["state"], "status": ""})
        for name, c in settled(now["containers"]).items())
    record["recorded_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return record


def logic(am):
    params = am.params
    path = params["path"]
    if not os.path.isabs(path):
        raise AppfleetError("path: %r is not an absolute path" % path)
    for source in params["sources"] or []:
        if not os.path.isabs(source["checkout"]):
            raise AppfleetError("sources: checkout of app %s must be an absolute path" % source["app"])
    for watched in params["watch_paths"] or []:
        if not os.path.isabs(watched):
            raise AppfleetError("watch_paths: %r is not an absolute path" % watched)
    for source in params["sources"] or []:
        # Defence in depth: a credential of a repository URL is blanked from all the module
        # returns (its invocation too), not only where mask_url masks it. Not a short one:
        # Ansible would blank each occurrence of it in any text.
        am.module.no_log_values.update(s for s in url_secrets(source["repo"]) if len(s) >= 6)
    if params["state"] == "resolve":
        am.step = "asking the git servers"
        # Reads nothing on the host but its deploy keys: never a change, same in check mode.
        return {"changed": False, "remote_commits": resolve(params["sources"] or [])}
    if params["state"] == "record":
        now, _remote = current_state(am, with_remote=False)
        missing = [app for app, commit in now["sources"].items() if commit is None]
        if missing:
            raise AppfleetError("sources: no git checkout for app(s) %s; record after a complete deploy"
                                % ", ".join(sorted(missing)))
        record = recordable(now)
        if not am.check_mode:
            am.step = "writing %s" % path
            directory = os.path.dirname(path)
            if not os.path.isdir(directory):
                os.makedirs(directory, 0o700)
            write_file_atomic(path, json.dumps(record, indent=1, sort_keys=True) + "\n", mode=0o600, sync_dir=True)
        # Bookkeeping, not a change to what the host serves: never reported as changed.
        return {"changed": False, "converged": True, "reasons": [], "recorded": not am.check_mode,
                "fingerprint": params["fingerprint"]}
    socket = unix_socket(params["docker_host"])
    if socket and not os.path.exists(socket):
        return {"changed": False, "converged": False, "recorded": False, "fingerprint": params["fingerprint"],
                "reasons": ["no docker engine on this host yet (%s is missing)" % socket]}
    now, remote = current_state(am, with_remote=True)
    found = findings(read_state(path), now, remote, params["sources"] or [], params["mutable_images"] or [],
                     params["refresh_bases"] or [], live=live_removers())
    # Not a reason to deploy (a deploy does not own the firewall), but never silent.
    am.step = "checking the DOCKER-USER rules"
    firewall, warning = firewall_state(am.module.run_command)
    if warning:
        am.module.warn(warning)
    return {"changed": False, "converged": not found, "reasons": [reason for _app, reason in found],
            "apps": apps_to_deploy(found), "recorded": False, "fingerprint": params["fingerprint"],
            "firewall": firewall}
