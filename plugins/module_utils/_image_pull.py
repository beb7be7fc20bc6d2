# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What image_pull does: pull an image with credentials used for this one pull only.

Private to this collection (leading underscore): not a public API.

What a pull shares with a push (credentials per call, ``scrub``, registry errors, the
distribution inspect) is in _registry.py.
"""

from __future__ import annotations

from ansible_collections.appfleet.docker.plugins.module_utils._docker import AppfleetError
from ansible_collections.appfleet.docker.plugins.module_utils._image_ref import (
    DIGEST_RE,
    name_error,
    registry_host,
    split_ref,
    tag_error,
)
from ansible_collections.appfleet.docker.plugins.module_utils._registry import (
    ABSENT,
    RegistryRun,
    error_kind,
    has_digest,
    local_image,
    read_stream,
    registry_error,
    run_scrubbed,
    scrub,
)


def parse_reference(option, ref):
    """(repository, tag, digest) of an image reference with a tag or a digest; AppfleetError otherwise.

    Exactly one of tag and digest is set: a reference without either would mean
    ``latest`` implicitly, and one with both is ambiguous; both are refused.
    """
    if not isinstance(ref, str) or not ref.strip():
        raise AppfleetError("%s: must be an image reference with a tag or a digest, e.g. "
                            "registry.example.com/team/web:1" % option)
    repo, tag, digest = split_ref(ref)
    if tag is None and digest is None:
        raise AppfleetError(
            "%s %r has neither a tag nor a digest; give one explicitly, e.g. %s:1 or %s@sha256:<digest> "
            "(an implicit latest is refused: it does not say which image a host runs)"
            % (option, ref, repo or "registry.example.com/team/web", repo or "registry.example.com/team/web"))
    if tag is not None and digest is not None:
        raise AppfleetError("%s %r has both a tag and a digest; give one of them, e.g. %s@%s"
                            % (option, ref, repo, digest))
    err = name_error(option, repo)
    if err:
        raise AppfleetError(err.replace(", and no tag", ", then :tag or @digest"))
    if tag is not None:
        err = tag_error(option, tag)
        if err:
            raise AppfleetError(err)
    elif not DIGEST_RE.match(digest):
        raise AppfleetError("%s %r: %r is not a digest; use sha256: and 64 lowercase hex digits"
                            % (option, ref, digest))
    return repo, tag, digest


def pull_error(name, text, kind, username):
    """The message for a failed pull (or distribution inspect) of ``name``."""
    return registry_error(name, text, kind, username)


def pull_stream(client, name, auth, timeout):
    """Pull ``name`` within ``timeout`` seconds (wall clock), see read_stream.

    Returns (the engine's error text or None, True when the engine said 404, True when timed out).
    """
    return read_stream(lambda: client.api.pull(name, auth_config=auth, stream=True, decode=True),
                       timeout, "appfleet-pull")[:3]


def tag_reference(option, ref):
    """(repository, tag) of a local reference ``repo:tag``; AppfleetError otherwise (a digest, no tag)."""
    repo, tag, digest = parse_reference(option, ref)
    if digest is not None:
        raise AppfleetError("%s %r is a digest; a local reference needs a tag, e.g. %s:1" % (option, ref, repo))
    return repo, tag


class Puller(RegistryRun):
    """One run of image_pull: decide, then pull (or predict in check mode), then point ``tag_as`` at the image.

    ``params`` are image_pull's options (name, username, password, policy, timeout, tag_as),
    the module's own by default; another module (image_build's base pulls) passes its own,
    where ``tag_as`` may be left out.
    """

    def __init__(self, am, params=None):
        super(Puller, self).__init__(am, params)
        self.name = self.ref = self.params["name"]
        self.before = None
        self.tag_as = list(self.params.get("tag_as") or [])
        self.tags_before = {}

    def run(self):
        am = self.am
        p = self.params
        name = self.name
        digest = parse_reference("name", name)[2]
        for ref in self.tag_as:
            tag_reference("tag_as", ref)
        if p["timeout"] <= 0:
            raise AppfleetError("timeout: must be greater than 0 (seconds)")
        am.step = "looking up %s on this host" % name
        before, before_digests = local_image(am.client, name)
        self.before = before
        for ref in self.tag_as:
            self.tags_before[ref] = local_image(am.client, ref)[0]
        if before is not None and (p["policy"] == "missing" or digest is not None):
            # Present, and the reference cannot move (a digest) or need not be refreshed.
            return self.tagged(False, before, before_digests, before)
        if am.check_mode:
            am.step = "asking the registry about %s" % name
            remote = self.remote_digest() if digest is None else digest
            changed = before is None or remote is None or not has_digest(before_digests, remote)
            if not changed:
                return self.tagged(False, before, before_digests, before)
            predicted = ("a new image (manifest %s)" % remote) if remote else "a new image"
            # Each tag_as reference would point at the new image.
            return self.result(True, before, before_digests, predicted, list(self.tag_as))
        am.step = "pulling %s" % name
        error, not_found, timed_out = pull_stream(am.client, name, self.auth, p["timeout"])
        if timed_out:
            raise AppfleetError(
                "timeout: pulling %s took longer than %s s and was stopped; %s is as it was; raise timeout, "
                "or check the registry %s and this host's network"
                % (name, p["timeout"], name, registry_host(split_ref(name)[0])))
        if error:
            text = scrub(error, self.forms)
            self.fail(text, error_kind(text, not_found))
        am.step = "looking up %s after the pull" % name
        after, after_digests = local_image(am.client, name)
        if after is None:
            raise AppfleetError("name: the docker engine reported the pull of %s done, but %s is not on this "
                                "host; run again, and check the engine's log if it repeats" % (name, name))
        return self.tagged(after != before, after, after_digests, after)

    def tagged(self, changed, image_id, repo_digests, after):
        """The result once each ``tag_as`` reference points at ``image_id`` (in check mode: would)."""
        moved = [ref for ref in self.tag_as if self.tags_before.get(ref) != image_id]
        if not self.am.check_mode:
            for ref in moved:
                self.am.step = "tagging %s as %s" % (self.name, ref)
                repo, tag = tag_reference("tag_as", ref)
                self.am.client.api.tag(image_id, repo, tag, force=True)
        return self.result(changed or bool(moved), image_id, repo_digests, after, moved)

    def result(self, changed, image_id, repo_digests, after, moved=()):
        result = dict(changed=changed, image=dict(id=image_id, name=self.name, repo_digests=repo_digests))
        result["tagged"] = list(moved)
        if self.am.diff_mode:
            before_diff = {self.name: self.before or ABSENT}
            after_diff = {self.name: after or ABSENT}
            for ref in self.tag_as:
                before_diff[ref] = self.tags_before.get(ref) or ABSENT
                after_diff[ref] = after if ref in moved else (self.tags_before.get(ref) or ABSENT)
            result["diff"] = dict(before=before_diff, after=after_diff)
        return scrub(result, self.forms)


def logic(am):
    return run_scrubbed(am, Puller(am))
