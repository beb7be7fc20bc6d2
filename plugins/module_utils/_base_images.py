# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""image_build's base images: pull the absent ones, refresh the moved ones, before the source id.

Private to this collection (leading underscore): not a public API.

Pulls and registry inspects go through image_pull's ``Puller`` with the login of the
base's registry from ``registry_logins``, sent as that call's ``X-Registry-Auth``; nothing
is written to a docker config file, and every text that leaves goes through ``scrub``.
"""

from __future__ import annotations

from ansible_collections.appfleet.docker.plugins.module_utils._docker import (
    AppfleetError,
    DockerException,
    RequestException,
)
from ansible_collections.appfleet.docker.plugins.module_utils._image_pull import Puller
from ansible_collections.appfleet.docker.plugins.module_utils._registry import has_digest, local_image, scrub, secret_forms
from ansible_collections.appfleet.docker.plugins.module_utils._image_ref import (
    REGISTRY_RE,
    familiar,
    is_image_id,
    name_error,
    normal_registry,
    registry_host,
    split_ref,
    tag_error,
)


def base_registry(ref):
    """The registry of a base reference, as the engine decides it (``docker.io`` when it names none)."""
    return normal_registry(registry_host(split_ref(ref)[0]))


def pull_name(ref):
    """The reference a pull of the base ``ref`` asks for: an implicit tag is ``latest``, as for FROM."""
    _repo, tag, digest = split_ref(ref)
    return ref if tag is not None or digest is not None else ref + ":latest"


def pullable(ref):
    """True when ``ref`` names a registry image that a pull could fetch (not a bare image id)."""
    if not ref or is_image_id(ref):
        return False
    repo, tag, digest = split_ref(ref)
    if name_error("base", repo):
        return False
    if tag is not None and tag_error("base", tag):
        return False
    return digest is None or digest.startswith("sha256:")


def refreshable(ref):
    """True when base_refresh asks the registry about ``ref``: a pullable reference by tag, not by digest."""
    return pullable(ref) and split_ref(ref)[2] is None


def check_logins(logins):
    """{registry: login} of the ``registry_logins`` option; AppfleetError naming the bad entry."""
    found = {}
    for index, login in enumerate(logins or []):
        option = "registry_logins[%d].registry" % index
        host = login.get("registry") or ""
        if "://" in host:
            raise AppfleetError("%s %r: give the registry as host[:port] without a scheme, e.g. %s"
                                % (option, host, host.split("://", 1)[1].split("/", 1)[0] or "registry.example.com"))
        if "/" in host:
            raise AppfleetError("%s %r: give the registry as host[:port] without a path, e.g. %s"
                                % (option, host, host.split("/", 1)[0] or "registry.example.com"))
        if not REGISTRY_RE.match(host):
            raise AppfleetError("%s %r is not a registry host[:port]: write it as the image reference "
                                "starts, e.g. registry.example.com, 127.0.0.1:5000, or docker.io for "
                                "Docker Hub" % (option, host))
        key = normal_registry(host)
        if key in found:
            raise AppfleetError("%s %r: registry_logins[%d] is for the same registry; give one login per "
                                "registry" % (option, host, found[key]["index"]))
        found[key] = dict(login, index=index)
    return found


def login_for(logins, ref):
    """The entry of ``check_logins`` for the registry of ``ref``, or None."""
    return logins.get(base_registry(ref))


def base_error(ref, login, msg):
    """A Puller message about the base ``ref`` in image_build's words (its options, not image_pull's)."""
    registry = base_registry(ref)
    entry = "the entry for registry %s in registry_logins" % registry
    for old, new in (
            ("check username and password", "check the username and password of %s" % entry),
            ("set username and password (the pull uses them for this pull only)",
             "add an entry for registry %s to registry_logins (used for this module's base pulls only)" % registry),
            ("no username and password were given: if the registry requires them, set them",
             "registry_logins has no entry for registry %s: if the registry requires credentials, add one" % registry),
            ("in name,", "in the base reference,"),
            ("raise timeout", "raise build_timeout")):
        msg = msg.replace(old, new)
    for prefix in ("username, password: ", "name: ", "timeout: "):
        if msg.startswith(prefix):
            option = "registry_logins: " if prefix.startswith("username") else ""
            msg = option + msg[len(prefix):]
            break
    used = " (with the login of user %r from registry_logins)" % login["username"] if login else ""
    return "base image %s%s: %s" % (ref, used, msg)


class Bases(object):
    """The base images of one image_build run: looked up, pulled when absent, refreshed when asked."""

    def __init__(self, am, logins, refresh, timeout):
        self.am = am
        self.logins = logins
        self.refresh = refresh
        self.timeout = timeout
        self.forms = []
        for login in logins.values():
            self.forms.extend(secret_forms(login["username"], login["password"]))
        self.forms.sort(key=len, reverse=True)
        self.found = []

    def prepare(self, refs):
        """Look up (and pull, refresh) each base of ``refs``; return them, as dicts."""
        self.found = []
        for ref in refs:
            try:
                self.found.append(self.one(ref))
            except AppfleetError as exc:
                raise AppfleetError(scrub(exc.msg, self.forms), **scrub(exc.result, self.forms))
            except (DockerException, RequestException) as exc:  # the engine's own errors: scrubbed too
                raise AppfleetError(scrub(self.am.error_message(exc), self.forms))
        return self.found

    def one(self, ref):
        am = self.am
        am.step = "looking up the base image %s" % ref
        before, digests = local_image(am.client, ref)
        base = dict(ref=ref, id=before, before=before, digest=self.local_digest(ref, digests),
                    pulled=False, refreshed=False)
        if not pullable(ref):
            return base  # a bare image id: what remains absent is left to the builder (rekey_bases)
        if before is not None:
            if not (self.refresh and refreshable(ref)):
                return base
            am.step = "asking the registry %s about the base image %s" % (base_registry(ref), ref)
            remote = self.call(ref, "always", lambda puller: puller.remote_digest(
                purpose="base_refresh", consequence="the local %s is used, as it is" % ref))
            if remote is None or has_digest(digests, remote):
                base["digest"] = remote or base["digest"]
                return base
            base.update(digest=remote, refreshed=True)
        if am.check_mode:
            return base
        pulled = self.call(ref, "always" if before is not None else "missing", lambda puller: puller.run())
        base.update(id=pulled["image"]["id"], pulled=True)
        if not base["refreshed"]:
            base["digest"] = self.local_digest(ref, pulled["image"]["repo_digests"])
        return base

    def call(self, ref, policy, action):
        """``action(puller)`` with a Puller for ``ref`` and its login; its failure in image_build's words."""
        login = login_for(self.logins, ref)
        puller = Puller(self.am, dict(name=pull_name(ref), policy=policy, timeout=self.timeout,
                                      username=login["username"] if login else None,
                                      password=login["password"] if login else None))
        try:
            return action(puller)
        except AppfleetError as exc:
            raise AppfleetError(base_error(ref, login, scrub(exc.msg, puller.forms)))

    @staticmethod
    def local_digest(ref, repo_digests):
        """The manifest digest the local image of ``ref`` was pulled with, from its RepoDigests; else None."""
        repo = familiar(split_ref(ref)[0])
        for entry in repo_digests or []:
            name, _sep, digest = entry.rpartition("@")
            if familiar(name) == repo:
                return digest
        return None

    def moved(self):
        """The bases whose local image moves (moved) with this run: pulled, or to pull outside check mode."""
        return [b for b in self.found if b["pulled"] or b["refreshed"] or
                (self.am.check_mode and b["id"] is None and pullable(b["ref"]))]

    def diff(self):
        """({ref: local id before}, {ref: id after, or what a pull would bring}) of the bases that move."""
        before, after = {}, {}
        for base in self.moved():
            before[base["ref"]] = base["before"] or "absent"
            if base["pulled"]:
                after[base["ref"]] = base["id"]
            elif base["refreshed"] and base["digest"]:
                after[base["ref"]] = "a new image (manifest %s)" % base["digest"]
            else:
                after[base["ref"]] = "a new image"
        return before, after

    def ids(self):
        return dict((b["ref"], b["id"]) for b in self.found)

    def result(self):
        return [dict((k, b[k]) for k in ("ref", "id", "digest", "pulled", "refreshed")) for b in self.found]
