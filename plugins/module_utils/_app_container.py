# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What app_container does for one app: plan, then apply the plan; record the release.

Private to this collection (leading underscore): not a public API.

AppContainer.plan reads the app's containers (module_utils/_engine.py), compares
them with the desired config (module_utils/_container_spec.py) and reads the release log
(module_utils/_releases.py): a Plan, and in the result what the run does; check mode
stops there. AppContainer.apply, under the app's lock, tidies what earlier runs left
and hands a swap to the strategies (module_utils/_strategies.py); state absent removes
the app. Messages and warnings name the app through the wrapper (module_utils/_docker.py).
"""

from __future__ import annotations

import math
import os
import time

from ansible_collections.appfleet.docker.plugins.module_utils._docker import (
    LABEL_CONFIG_HASH,
    LABEL_GIT_COMMIT,
    LABEL_PREVIOUS_IMAGE,
    LABEL_SOURCE_ID,
    AppfleetError,
    DockerException,
    is_not_found,
)
from ansible_collections.appfleet.docker.plugins.module_utils._engine import Engine, choose_serving
from ansible_collections.appfleet.docker.plugins.module_utils._files import SecretStore, remove_file
from ansible_collections.appfleet.docker.plugins.module_utils._lock import AppLock
from ansible_collections.appfleet.docker.plugins.module_utils._proxy import (
    PLACEHOLDER_PORT,
    Proxy,
    ProxyError,
    check_slot_ports,
    render_placeholder,
)
from ansible_collections.appfleet.docker.plugins.module_utils import _releases
from ansible_collections.appfleet.docker.plugins.module_utils._config_hash import hash_matches, stored_config
from ansible_collections.appfleet.docker.plugins.module_utils._container_spec import (
    changed_secret_keys,
    config_diff,
    create_arguments,
    desired_config,
    drain_deadline,
    uses_secret_files,
    validate,
)
from ansible_collections.appfleet.docker.plugins.module_utils._drain import drain_result, left_behind, live_removers
from ansible_collections.appfleet.docker.plugins.module_utils._strategies import Swap


def choose_action(serving, matches, rollback, tidy):
    """What a run does to an app, from its serving container (None: no container).

    A paused container counts as running for Docker (State.Running) but serves
    nothing: it is unpaused when it matches, replaced otherwise. ``tidy``: a
    matching, running container still has something to tidy (strays, proxy, name).
    """
    status = serving.get("status") if serving else None
    if matches and status == "paused":
        return "unpaused"
    if matches and serving["running"]:
        return "reconciled" if tidy else "unchanged"
    if matches:
        return "started"
    if rollback:
        return "rolled_back"
    return "replaced" if serving else "created"


def found_message(serving, action, check_mode):
    """The message that says what a run found wrong with the serving container, or None."""
    if not serving or action not in ("unpaused", "started", "replaced", "rolled_back"):
        return None
    status = serving.get("status") or "stopped"
    if status == "running" or (serving["running"] and status != "paused"):
        return None
    what = status
    if status in ("exited", "dead") and serving.get("exit_code") is not None:
        what = "%s (exit code %s)" % (status, serving["exit_code"])
    done = {"unpaused": "unpaused it", "started": "started it again"}.get(
        action, "unpaused it for the rollout and replaced it" if status == "paused" else "replaced it")
    if check_mode:
        done = "a run without check mode %s" % {
            "unpaused": "unpauses it", "started": "starts it again"}.get(action, "replaces it")
        return "container %s is %s; %s" % (serving["name"], what, done)
    return "container %s was %s; %s" % (serving["name"], what, done)


class Plan(object):
    """What one run of app_container does to a present app (AppContainer.plan); nothing is changed yet."""

    def __init__(self, serving, strays, upstream_port):
        # The container that serves (nginx points at it) or else the app's newest; None: no container.
        self.serving = serving
        # The app's other containers, left over by killed runs.
        self.strays = strays
        # The old containers of earlier swaps still draining (each with its deadline, ``until``), and
        # those past their deadline: their remover was stopped (killed, a reboot).
        self.draining = []
        self.overdue = []
        self.upstream_port = upstream_port
        # The serving container runs the desired image, config and secrets (secret_changes: names, never values).
        self.matches = False
        self.secret_changes = []
        self.paused = self.running = False
        # What is to tidy on a matching container: nginx points elsewhere, an upstream file in the earlier
        # format, a container not under the stable name, an upstream rewrite nginx never loaded.
        self.needs_proxy_fix = self.needs_format = self.needs_rename = self.reload_pending = False
        self.unused_secrets = []
        self.legacy_env = False
        # unchanged, reconciled, unpaused, started, created, replaced or rolled_back (choose_action).
        self.action = "unchanged"
        # {before, after} in diff mode, else None.
        self.diff = None


class AppContainer(object):
    """One run of app_container (``wrapper``: the AppfleetModule); run() returns the result."""

    def __init__(self, wrapper):
        self.wrapper = wrapper
        self.module = wrapper.module
        self.p = wrapper.params
        self.app = self.p["name"]
        self.stable = self.p.get("container_name") or self.app
        # Earlier versions wrote secret_env to this env file (read by nothing): removed when found.
        self.legacy_env_file = self.p.get("secret_env_file") or "/etc/appfleet/env/%s.env" % self.app
        self.secrets = SecretStore(self.p.get("secret_dir"), self.app)
        proxy_opts = self.p.get("proxy") or {}
        self.proxy = None
        if proxy_opts.get("enabled", True) and self.p.get("port"):
            self.proxy = Proxy(self.module, self.app, proxy_opts.get("upstream_file"),
                               proxy_opts.get("test_command"), proxy_opts.get("reload_command"))
        self.result = dict(changed=False, action="unchanged", removed=[])
        # The engine driver and what is to run (set once the run reads the engine).
        self.engine = None
        self.image_id = None
        self.image_labels = {}
        self.cfg = None
        # Check mode only: the image does not exist yet.
        self.image_missing = False
        # Release log (release_* methods below); rollback_to implies rollback.
        self.p["rollback"] = bool(self.p.get("rollback") or self.p.get("rollback_to"))
        self.release_log = _releases.ReleaseLog(self.p.get("release_dir"), self.app)
        self.release_entries = None
        # The plan found the log corrupt: applying moves it aside.
        self.release_bad = False
        self.release_plan = None
        self.release_new = None
        # The Swap of the run (put_in_service).
        self.swap = None

    # ------------------------------------------------------------ helpers
    def inspect_image(self, ref, option):
        api = self.wrapper.client.api
        try:
            info = api.inspect_image(ref)
        except DockerException as exc:
            if is_not_found(exc):
                raise AppfleetError("%s: image %s not found on this host; build it with "
                                    "appfleet.docker.image_build or load it first (the module never pulls)"
                                    % (option, ref))
            raise
        return info["Id"], (info.get("Config") or {}).get("Labels") or {}

    def container_result(self, cid):
        info = self.engine.describe(cid)
        if not info:
            return None
        out = dict(
            id=info["id"], name=info["name"], image=info["image"],
            source_id=info["labels"].get(LABEL_SOURCE_ID),
            previous_image=info["labels"].get(LABEL_PREVIOUS_IMAGE),
            ports=info["ports"], host_port=info["host_port"], health=info["health"],
            status=info["status"], started_at=info["started_at"],
        )
        releases = sorted(self.secret_releases(info))
        if releases:
            out["secret_dir"] = "%s/%s" % (self.secrets.app_dir, releases[-1])
        return out

    def tidy_secrets(self):
        """Remove the secret files no container of the app mounts any more, and the legacy env file."""
        keep = set()
        for container in self.engine.containers():
            keep |= self.secret_releases(container)
        self.secrets.prune(keep)
        remove_file(self.legacy_env_file)

    def check_userns(self):
        """Refuse, before any change, secret files the remapped container root could not read."""
        if uses_secret_files(self.p) and self.p.get("secret_uid") is None and self.engine.userns_remapped():
            raise AppfleetError("secret_uid: the engine remaps user namespaces (userns-remap), so files owned "
                                "by the container's uid on the host are not its files; set secret_uid to the host uid "
                                "its user maps to (the start of the remap range in /etc/subuid plus its uid), or use "
                                "secret_delivery env")

    # ------------------------------------------------------------ comparisons
    def secret_changes(self, current):
        """Names of the secrets whose value the container does not have (never the values).

        A container made with file delivery is compared through the files it
        mounts; one made with env delivery (or before files existed) through
        its environment.
        """
        desired = dict((str(k), v) for k, v in (self.p.get("secret_env") or {}).items())
        if current is None:
            return sorted(desired)
        stored = stored_config(current["labels"])
        if stored.get("secret_delivery", "env") == "file":
            return self.secrets.changed_keys(desired, current.get("secret_mounts") or {})
        return changed_secret_keys(desired, current["env"], stored.get("secret_env_keys"))

    def secret_releases(self, current):
        """The releases of secret files a container mounts."""
        if current is None:
            return set()
        found = (self.secrets.release_of(src) for src in (current.get("secret_mounts") or {}).values())
        return set(r for r in found if r)

    def matches(self, current, secret_changes=None):
        if current is None:
            return False
        if current["image"] != self.image_id:
            return False
        if not hash_matches(current["labels"].get(LABEL_CONFIG_HASH), self.cfg):
            return False
        if secret_changes is None:
            secret_changes = self.secret_changes(current)
        return not secret_changes

    def diff(self, current, secret_changes=None):
        if secret_changes is None:
            secret_changes = self.secret_changes(current)
        if current is None:
            before_cfg, before_image = {}, None
        else:
            before_cfg = stored_config(current["labels"])
            before_image = current["image"]
        return config_diff(before_cfg, self.cfg, before_image, self.image_id, secret_changes)

    def previous_image_for(self, current):
        """The rollback target to record on the new container."""
        if current is None:
            return None
        if current["image"] != self.image_id:
            return current["image"]
        return current["labels"].get(LABEL_PREVIOUS_IMAGE)

    def create_container(self, name, current, host_port, secret_release=None):
        """Create (not start) the new container; ``secret_release`` holds its secret files."""
        kwargs, host_kwargs = create_arguments(
            self.p, self.cfg, self.app, self.image_id, name, host_port, secret_release,
            previous_image=self.previous_image_for(current), source_id=self.image_labels.get(LABEL_SOURCE_ID))
        return self.engine.create(kwargs, host_kwargs, self.cfg["networks"])

    # ------------------------------------------------------------ release log
    def release_read(self):
        """The log's entries for the plan, only read: a corrupt log counts as empty (release_load moves it aside)."""
        if self.release_entries is None:
            try:
                self.release_entries = self.release_log.read()
            except _releases.ReleaseError as exc:
                self.release_entries, self.release_bad = [], True
                if self.wrapper.check_mode:
                    self.wrapper.warn("%s; a real run moves it aside and begins a new one" % (exc,))
        return self.release_entries

    def release_load(self):
        """The log's entries for a run that acts: a corrupt log is moved aside (a warning) and a new one begun."""
        if self.release_entries is None or self.release_bad:
            self.release_bad = False
            try:
                self.release_entries = self.release_log.load()
            except _releases.ReleaseError as exc:
                raise AppfleetError(str(exc))
            for warning in self.release_log.warnings:
                self.wrapper.warn(warning)
        return self.release_entries

    def release_image_present(self, image_id):
        try:
            self.wrapper.client.api.inspect_image(image_id)
        except DockerException as exc:
            if is_not_found(exc):
                return False
            raise
        return True

    def release_choices(self):
        found = _releases.available(self.release_entries or [], self.release_image_present)
        return ", ".join(_releases.describe(e) for e in found) or "none"

    def release_facts(self, image_id, ref=None):
        """(reference, source id, git commit) of an image, for a log entry."""
        labels, tags = {}, []
        try:
            info = self.wrapper.client.api.inspect_image(image_id)
            labels = (info.get("Config") or {}).get("Labels") or {}
            tags = info.get("RepoTags") or []
        except DockerException:
            pass
        if not ref or ref.startswith("sha256:"):
            ref = tags[0] if tags else ref
        return ref, labels.get(LABEL_SOURCE_ID), labels.get(LABEL_GIT_COMMIT)

    def release_entry(self, kind, result, image_id, ref=None, note=None):
        ref, source_id, commit = self.release_facts(image_id, ref)
        return _releases.new_entry(self.release_entries or [], kind, result, image_id, image=ref,
                                   source_id=source_id, git_commit=commit, by=self.p.get("release_by"),
                                   note=note)

    def release_target(self, serving):
        """The image a rollback starts, from the release log; None: use the previous-image label."""
        entries = self.release_read()
        try:
            plan = _releases.plan_rollback(entries, serving["image"], self.p.get("rollback_to"))
        except _releases.ReleaseError as exc:
            raise AppfleetError("rollback_to: %s; available releases: %s" % (exc, self.release_choices()))
        self.release_plan = plan
        target = plan["target"]
        if target is None:
            return None
        if not self.release_image_present(target["image_id"]):
            raise AppfleetError("the rollback target, release %s, is no longer on this host (its image %s "
                                "was pruned?); roll back to one of the available releases with rollback_to: %s"
                                % (_releases.describe(target), _releases.short_image(target["image_id"]),
                                   self.release_choices()))
        self.result["release"] = _releases.public(target)
        if plan["noop"]:
            self.wrapper.warn("release %s already serves after a rollback; nothing to roll back "
                              "(roll back further with rollback_to)" % target["id"])
        return target["image_id"]

    def release_hold(self, serving):
        """A plain deploy after a rollback: keep the release rolled back to unless resume or a new image."""
        if self.p["rollback"] or serving is None:
            return
        entries = self.release_read()
        current = _releases.current_index(entries, serving["image"])
        if current is not None:
            self.result["release"] = _releases.public(entries[current])
        held = _releases.is_held(entries, serving["image"], self.image_id)
        if held is None or self.p["resume"]:
            return
        how = ("run again with resume: true (playbooks/deploy.yml: -e appfleet_resume=%s), or deploy a new "
               "commit" % self.app)
        self.result["held"] = dict(release=held["id"], image_id=self.image_id, resume=how)
        self.wrapper.warn("held on release %s after a rollback; image %s (rolled back from) is not deployed "
                          "again; to resume %s" % (_releases.describe(held), _releases.short_image(self.image_id), how))
        self.image_id, self.image_labels = self.inspect_image(serving["image"], "image")

    def release_begin(self, serving, matches):
        """A new container is about to be started: the entry it gets (recorded by the hooks below)."""
        if matches:
            return
        entries = self.release_load()
        if serving is not None and serving["image"] == self.image_id \
                and _releases.current_index(entries, serving["image"]) is not None:
            return  # same release, new config: not a new release
        kind = "rollback" if self.p["rollback"] else "deploy"
        ref = None if self.p["rollback"] else self.p.get("image")
        if self.release_plan and self.release_plan.get("target"):
            ref = self.release_plan["target"].get("image")
        self.release_new = self.release_entry(kind, "serving", self.image_id, ref)

    def release_record(self, serving):
        """The swap succeeded: record the new release (a log that cannot be written is a warning)."""
        if self.release_new is None:
            return
        entries = self.release_load()
        before = None
        if serving is not None and _releases.current_index(entries, serving["image"]) is None:
            before = self.release_entry("deploy", "serving", serving["image"],
                                        note="serving before the release log began")
            before["by"] = None
        leaving = (self.release_plan or {}).get("leaving")
        kind = self.release_new["kind"]
        updated = _releases.record_success(entries, kind, self.release_new, before, leaving)
        self.release_save(updated)
        self.result["release"] = _releases.public(updated[-1])
        self.release_new = None

    def release_failed(self):
        """The swap failed: record a failed entry; what served still serves."""
        if self.release_new is None:
            return
        entry, self.release_new = self.release_new, None
        self.release_save(_releases.record_failure(self.release_entries or [], entry))

    def release_save(self, entries):
        try:
            self.release_log.save(entries)
            self.release_entries = entries
        except (IOError, OSError) as exc:
            self.wrapper.warn("the release log %s was not updated: %s; rollback and the hold after a rollback "
                              "do not know this release" % (self.release_log.path, exc.strerror or exc))

    # ------------------------------------------------------------ entry
    def run(self):
        p = self.p
        # The wrapper leads every message with the app's name once the name is well-formed.
        self.wrapper.app = self.app
        try:
            validate(p)
            slot_ports = check_slot_ports((p.get("proxy") or {}).get("slot_ports"))
        except AppfleetError as exc:
            self.wrapper.fail(str(exc))
        if self.proxy:
            self.proxy.slot_ports = slot_ports
        try:
            if p["state"] == "absent":
                return self.absent()
            return self.present()
        finally:
            # A failure anywhere (turned into fail_json by the wrapper) reports these too.
            self.wrapper.fail_fields = dict(changed=self.result["changed"], removed=self.result["removed"])

    def absent(self):
        self.step("reading the app's containers")
        client = self.wrapper.client
        self.engine = Engine(client, self.p)
        containers = self.engine.containers()
        legacy = os.path.lexists(self.legacy_env_file)
        # The upstream must not keep pointing at a loopback port another app may get later.
        proxy_opts = self.p.get("proxy") or {}
        proxy = None
        if proxy_opts.get("enabled", True):
            proxy = self.proxy or Proxy(self.module, self.app, proxy_opts.get("upstream_file"),
                                        proxy_opts.get("test_command"), proxy_opts.get("reload_command"))
        upstream_port = proxy.current_port() if proxy and proxy.needs_placeholder() else None
        pending = bool(proxy and upstream_port is None and proxy.reload_pending())
        if pending and self.wrapper.check_mode:
            self.note_repair(proxy)
        changed = bool(containers) or legacy or self.secrets.exists() or upstream_port is not None or pending
        self.result.update(changed=changed, action="removed" if changed else "unchanged")
        if self.wrapper.diff_mode:
            before = {"containers": sorted(c["name"] for c in containers)}
            if self.secrets.exists():
                before["secret_dir"] = self.secrets.app_dir
            if legacy:
                before["legacy_secret_env_file"] = self.legacy_env_file
            after = {"containers": []}
            if upstream_port is not None:
                before["upstream_port"], after["upstream_port"] = upstream_port, PLACEHOLDER_PORT
            self.result["diff"] = dict(before=before, after=after)
        if self.wrapper.check_mode or not changed:
            return self.result
        self.step("taking the lock in %s" % self.p["lock_dir"])
        with AppLock(self.p["lock_dir"], self.app, self.p["lock_timeout"]) as lock:
            if upstream_port is not None:
                # First: nginx stops sending traffic to the containers about to go.
                self.step("pointing the nginx upstream at the placeholder")
                proxy.switch(None, content=render_placeholder(self.app))
                self.result["upstream_file"] = proxy.upstream_file
                self.result["proxy_reloads"] = proxy.reloads
            elif pending:
                self.repair_proxy(proxy)
                self.result["proxy_reloads"] = proxy.reloads
            self.step("removing the app's containers")
            for c in self.engine.containers():
                self.engine.remove(c["id"])
            self.secrets.remove_all()
            remove_file(self.legacy_env_file)
            remove_file(self.release_log.path)  # the app's release log goes with it
            self.result["lock"] = lock.info()
        self.result["removed"] = self.engine.removed
        return self.result

    def present(self):
        p = self.p
        # The engine answers (or the run fails) before the lock is taken.
        self.engine = Engine(self.wrapper.client, p)
        self.result["draining"] = None
        image_id, image_labels = self.read_image()
        if self.wrapper.check_mode:
            # Check mode ends with the plan: no lock, nothing changed; the result says what a run would do.
            plan = self.plan(image_id, image_labels)
            if plan.serving:
                self.result["container"] = self.container_result(plan.serving["id"])
            return self.result
        self.step("taking the lock in %s" % p["lock_dir"])
        with AppLock(p["lock_dir"], self.app, p["lock_timeout"]) as lock:
            self.result["lock"] = lock.info()
            try:
                # Planned under the lock: no other run changes the app between the plan and its application.
                return self.apply(self.plan(image_id, image_labels))
            except BaseException:
                self.release_failed()
                raise
            finally:
                self.result["removed"] = self.engine.removed

    def read_image(self):
        """(id, labels) of the image to deploy; (None, {}) for a rollback, whose image the plan finds."""
        p = self.p
        if p["rollback"]:
            return None, {}
        self.step("reading image %s" % p["image"])
        try:
            return self.inspect_image(p["image"], "image")
        except AppfleetError:
            if not self.wrapper.check_mode:
                raise
        # Check mode before the build ran (image_build in check mode builds nothing): the
        # image will differ from the serving one, so the run would change the app.
        self.result["msg"] = self.wrapper.with_app(
            "image %s is not on this host yet (check mode: it is built by an earlier task); the app would "
            "be deployed from it" % p["image"])
        self.image_missing = True
        return None, {}

    # ------------------------------------------------------------ plan: read and decide
    def plan(self, image_id, image_labels):
        """What the run does to the app, from its containers, upstream file, secrets and release log.

        Only reads (the engine, the host's files) and reports in the result what the run does
        (changed, action, msg, diff); apply() carries it out.
        """
        p = self.p
        self.image_id, self.image_labels = image_id, image_labels or {}
        self.cfg = desired_config(p)
        self.step("reading the app's containers")
        upstream_port = self.proxy.current_port() if self.proxy else None
        containers, draining = [], []
        for container in self.engine.containers():
            container["until"] = drain_deadline(container["name"], self.stable)
            (containers if container["until"] is None else draining).append(container)
        serving, strays = choose_serving(containers, self.stable, upstream_port)
        if p["rollback"]:
            self.image_id, self.image_labels = self.rollback_image(serving)
        self.release_hold(serving)

        plan = Plan(serving, strays, upstream_port)
        plan.draining = draining
        live, now = (live_removers() if draining else set()), time.time()
        plan.overdue = [c for c in draining if left_behind(c["id"], c["until"], now, live)]
        plan.secret_changes = self.secret_changes(serving)
        plan.matches = matches = self.matches(serving, plan.secret_changes)
        # Docker counts a paused container as running; it serves nothing.
        plan.paused = bool(serving and serving["status"] == "paused")
        plan.running = bool(serving and serving["running"])
        serves_port = bool(self.proxy and matches and plan.running and serving["host_port"])
        plan.needs_proxy_fix = bool(serves_port and upstream_port != serving["host_port"])
        # An upstream file in the earlier format (backup servers): rewritten once, its ports kept.
        plan.needs_format = bool(serves_port and not plan.needs_proxy_fix and self.proxy.outdated())
        plan.needs_rename = bool(serving and serving["name"] != self.stable)
        # A run killed between rewriting the upstream file and reloading nginx.
        plan.reload_pending = bool(self.proxy and self.proxy.reload_pending())
        # Secret files no container will mount once the strays are gone, and the old env file. A draining
        # container's go with it.
        keep = self.secret_releases(serving)
        for container in draining:
            keep |= self.secret_releases(container)
        plan.unused_secrets = self.secrets.unused(keep) if matches else []
        plan.legacy_env = os.path.lexists(self.legacy_env_file)
        tidy = bool(strays or plan.overdue or plan.needs_proxy_fix or plan.needs_format or plan.needs_rename
                    or plan.unused_secrets or plan.legacy_env or plan.reload_pending)
        plan.action = choose_action(serving, matches, p["rollback"], tidy)
        if not matches:
            self.check_userns()
        if self.wrapper.diff_mode:
            plan.diff = self.plan_diff(plan)
        self.report(plan)
        return plan

    def rollback_image(self, serving):
        """(id, labels) of the image a rollback starts: the release log's target, else the previous-image label."""
        if serving is None:
            raise AppfleetError("nothing to roll back: the app has no container")
        target = self.release_target(serving) or serving["labels"].get(LABEL_PREVIOUS_IMAGE)
        if not target:
            raise AppfleetError("nothing to roll back: container %s records no previous image" % serving["name"])
        try:
            return self.inspect_image(target, "rollback")
        except AppfleetError:
            raise AppfleetError("the rollback target image %s is no longer on this host (pruned?); "
                                "deploy a known image instead" % target)

    def plan_diff(self, plan):
        """The diff (before, after) of the plan: config and image, then what it tidies."""
        before, after = self.diff(plan.serving, plan.secret_changes)
        if plan.reload_pending:
            before["upstream_reload_pending"], after["upstream_reload_pending"] = True, False
        if plan.strays:
            before["stray_containers"] = sorted(c["name"] for c in plan.strays)
            after["stray_containers"] = []
        if plan.overdue:
            before["draining_containers"] = sorted(c["name"] for c in plan.overdue)
            after["draining_containers"] = []
        if plan.needs_proxy_fix:
            before["upstream_port"], after["upstream_port"] = plan.upstream_port, plan.serving["host_port"]
        if plan.needs_format:
            before["upstream_format"], after["upstream_format"] = "with backup servers", "one server a slot"
        if plan.unused_secrets:
            before["unused_secret_dirs"] = plan.unused_secrets
            after["unused_secret_dirs"] = []
        if plan.legacy_env:
            before["legacy_secret_env_file"] = self.legacy_env_file
            after["legacy_secret_env_file"] = None
        if self.image_missing:
            after["image"] = "%s (not built yet)" % self.p["image"]
        return dict(before=before, after=after)

    def report(self, plan):
        """Say in the result what the plan does, and what it found wrong with the serving container."""
        self.result.update(changed=plan.action != "unchanged", action=plan.action)
        found = found_message(plan.serving, plan.action, self.wrapper.check_mode)
        if found:
            self.note(self.wrapper.with_app(found))
        if self.proxy:
            self.result["upstream_file"] = self.proxy.upstream_file
        if plan.reload_pending and self.wrapper.check_mode:
            self.note_repair(self.proxy)
        for container in plan.overdue:
            self.note(self.wrapper.with_app(
                "container %s was still there %d s after the end of its drain (the process that removes it "
                "was stopped); %s" % (container["name"], time.time() - container["until"],
                                      "a run without check mode removes it" if self.wrapper.check_mode
                                      else "removed it before anything else")))
        waiting = [c for c in plan.draining if c not in plan.overdue]
        if waiting and self.wrapper.check_mode:
            self.result["draining"] = drain_result(waiting[0]["name"], waiting[0]["id"], waiting[0]["until"])
        if plan.diff is not None:
            self.result["diff"] = plan.diff

    # ------------------------------------------------------------ apply: act on the plan
    def apply(self, plan):
        """Carry out the plan, under the app's lock: tidy what earlier runs left, then start, switch or swap."""
        client = self.wrapper.client
        serving = plan.serving
        if self.release_bad:
            self.release_load()  # the corrupt release log the plan read as empty is moved aside
        # Reconcile: first nginx runs the upstream file again (a killed rewrite), so that
        # the port the file names is the one nginx serves; then remove what a killed run
        # left behind. A stray never receives traffic (choose_serving keeps the one nginx
        # points at).
        if plan.reload_pending:
            self.repair_proxy(self.proxy)
        # A draining container holds the other slot's port, which a swap takes again (no reload).
        self.finish_drains(plan)
        if plan.strays:
            self.step("removing containers left over by an earlier run")
        for stray in plan.strays:
            self.engine.remove(stray["id"], stop_timeout=2)
        if plan.needs_rename:
            client.api.rename(serving["id"], self.stable)
            serving["name"] = self.stable
        if plan.paused:
            # Unpaused first: a replacement then starts from a container that serves
            # (start-first) or stops normally (stop-first).
            self.step("unpausing the paused container %s" % serving["name"])
            client.api.unpause(serving["id"])

        self.release_begin(serving, plan.matches)
        final = self.put_in_service(plan)
        self.result["draining"] = self.swap.draining
        self.release_record(serving)
        self.result["proxy_reloads"] = self.proxy.reloads if self.proxy else 0
        # Only now, with the old container gone, are its secret files unused.
        self.step("removing unused secret files")
        self.tidy_secrets()
        self.result["container"] = self.container_result(final)
        self.result["removed"] = self.engine.removed
        return self.result

    def put_in_service(self, plan):
        """Start, unpause, switch nginx to or replace the serving container, as planned; the id that serves."""
        serving = plan.serving
        swap = self.swap = Swap(self.wrapper, self.engine, self.secrets, self.proxy, self.create_container)
        if plan.action == "unpaused":
            return swap.resume(serving)
        if plan.matches and plan.running:
            if plan.needs_proxy_fix or plan.needs_format:
                swap.switch_proxy(serving["host_port"], serving["name"], None)
            return serving["id"]
        if plan.matches:
            return swap.start_existing(serving)
        if self.p["strategy"] == "stop-first":
            return swap.stop_first(serving)
        return swap.start_first(serving)

    def finish_drains(self, plan):
        """Wait for the draining containers an earlier run left until their deadline (drain_seconds at
        most) and remove them: their remover was stopped, or has not got to them yet."""
        for container in plan.draining:
            left = min(container["until"] - time.time(), self.p["drain_seconds"])
            if left > 0:
                self.step("waiting %d s for container %s to finish its drain" % (math.ceil(left), container["name"]))
                time.sleep(left)
            self.step("removing container %s at the end of its drain" % container["name"])
            # Only one found past its deadline is this run's change; else it finishes an earlier run's.
            self.engine.remove(container["id"], record=container in plan.overdue)

    def note(self, text):
        """A finding in the result's msg and as a warning."""
        self.result["msg"] = "; ".join(m for m in (self.result.get("msg"), text) if m)
        self.wrapper.warn(text)

    def note_repair(self, proxy):
        """Say in the result (proxy_repair, msg) and a warning that nginx is (or would be) reloaded after a
        killed rewrite."""
        done = ("a run without check mode tests and reloads nginx" if self.wrapper.check_mode
                else "tested and reloaded nginx, which now serves what the file says")
        text = self.wrapper.with_app(
            "an earlier run was stopped after it wrote the nginx upstream file %s and before nginx was reloaded "
            "with it (the marker %s exists); %s" % (proxy.upstream_file, proxy.marker_file, done))
        self.result["proxy_repair"] = text
        self.note(text)

    def repair_proxy(self, proxy):
        self.step("testing and reloading nginx after an interrupted upstream rewrite")
        try:
            proxy.repair()
        except ProxyError as exc:
            raise AppfleetError("nginx did not accept the upstream file %s that an interrupted run left: %s; "
                                "the marker %s stays until a run gets nginx to load the file (fix what nginx names, "
                                "then run again)" % (proxy.upstream_file, exc, proxy.marker_file))
        self.note_repair(proxy)

    def step(self, text):
        """Name the step under way: a failure message says which one failed."""
        self.wrapper.step = text
