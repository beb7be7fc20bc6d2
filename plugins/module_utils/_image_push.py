# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What image_push does: push a local image to a registry with credentials used for this one push only.

Private to this collection (leading underscore): not a public API.

It shares image_pull's registry code (_image_pull.py): the credentials go to the engine as this
push's ``X-Registry-Auth`` header (the SDK's ``auth_config``), nothing is written to a docker
config file, every text that leaves the module goes through ``scrub``, and registry errors are
classified the same way. The local reference ``repository:tag`` that a push needs is kept: it
keeps the image's ``RepoDigests`` entry ``repository@digest`` that makes the next run a no-op,
and image_prune removes it with the image (it untags every tag of an app image).
"""

from __future__ import annotations

import re

from ansible_collections.appfleet.docker.plugins.module_utils._docker import AppfleetError
from ansible_collections.appfleet.docker.plugins.module_utils._image_ref import familiar, name_error, split_ref, split_registry, tag_error
from ansible_collections.appfleet.docker.plugins.module_utils._registry import (
    ABSENT,
    RegistryRun,
    error_kind,
    local_image,
    push_stream,
    run_scrubbed,
    scrub,
)

# A local image id: sha256:<64 hex>, or a prefix of its hex of 12 or more digits.
IMAGE_ID_RE = re.compile(r"^(?:sha256:[0-9a-f]{64}|[0-9a-f]{12,64})\Z")


def source_tag(name):
    """The tag of the local image reference ``name``; None for an image id or a reference by digest.

    Raises AppfleetError for a ``name`` that is neither an image id nor a valid reference.
    """
    if not isinstance(name, str) or not name.strip():
        raise AppfleetError("name: must be a local image, repo:tag or an image id, e.g. web:3f2a9c1d0b7e")
    if IMAGE_ID_RE.match(name):
        return None
    repo, tag, digest = split_ref(name)
    err = name_error("name", repo)
    if err:
        raise AppfleetError(err.replace(", and no tag", ", then :tag, or an image id"))
    if tag is not None:
        err = tag_error("name", tag)
        if err:
            raise AppfleetError(err)
    if tag is not None and digest is not None:
        raise AppfleetError("name %r has both a tag and a digest; give one of them" % name)
    return tag


def check_repository(repository):
    """AppfleetError unless ``repository`` is a repository with its registry host, and no tag or digest."""
    if not isinstance(repository, str) or not repository.strip():
        raise AppfleetError("repository: must be a repository with its registry host, e.g. "
                            "registry.example.com:5000/team/web")
    repo, tag, digest = split_ref(repository)
    if tag is not None or digest is not None:
        raise AppfleetError("repository %r has a %s; give the repository alone (e.g. %s) and the tag in tag"
                            % (repository, "digest" if digest is not None else "tag", repo))
    err = name_error("repository", repository)
    if err:
        raise AppfleetError(err)
    if split_registry(repository)[0] is None:
        raise AppfleetError(
            "repository %r names no registry host; give it first, e.g. registry.example.com:5000/%s "
            "(for Docker Hub: docker.io/%s), so that an image never goes to Docker Hub by accident"
            % (repository, repository, repository if "/" in repository else "team/" + repository))


def push_tag(name, tag):
    """The tag to push: ``tag`` when given, else the tag of ``name``; AppfleetError when neither."""
    own = source_tag(name)
    if tag is None:
        if own is None:
            raise AppfleetError("tag: name %r has no tag to push as; set tag, e.g. tag: 3f2a9c1d0b7e" % name)
        tag = own
    err = tag_error("tag", tag)
    if err:
        raise AppfleetError(err)
    return tag


def up_to_date(repo_digests, repository, remote):
    """True when the registry's digest ``remote`` of ``repository`` is one of the local image's RepoDigests."""
    if not remote or remote == ABSENT:
        return False
    mine = familiar(repository)
    return any(familiar(ref) == "%s@%s" % (mine, remote) for ref in repo_digests or [])


class Pusher(RegistryRun):
    """One run of image_push: decide (the registry's digest against the image's RepoDigests), then push."""

    option = "repository"
    verb = "push"

    def __init__(self, am, params=None):
        super(Pusher, self).__init__(am, params)
        p = self.params
        self.name = p["name"]
        self.repository = p["repository"]
        self.tag = p.get("tag")
        self.image_id = None
        self.before = None

    def run(self):
        am = self.am
        p = self.params
        check_repository(self.repository)
        self.tag = push_tag(self.name, self.tag)
        self.ref = "%s:%s" % (self.repository, self.tag)
        if p["timeout"] <= 0:
            raise AppfleetError("timeout: must be greater than 0 (seconds)")
        am.step = "looking up %s on this host" % self.name
        self.image_id, repo_digests = local_image(am.client, self.name)
        if self.image_id is None:
            raise AppfleetError("name: the image %s is not on this host; build, pull or load it first "
                                "(appfleet.docker.image_build, image_pull or image_archive)" % self.name)
        am.step = "asking the registry about %s" % self.ref
        purpose = "check mode" if am.check_mode else "push"
        consequence = "reported as changed" if am.check_mode else "pushing it"
        self.before = self.remote_digest(purpose, consequence, absent_ok=True)
        if up_to_date(repo_digests, self.repository, self.before):
            return self.result(False, self.before, self.before)
        if am.check_mode:
            return self.result(True, None, "a new manifest of image %s" % self.image_id)
        am.step = "tagging %s as %s" % (self.name, self.ref)
        local_before = local_image(am.client, self.ref)[0]
        if local_before != self.image_id:
            am.client.api.tag(self.image_id, self.repository, self.tag, force=True)
        am.step = "pushing %s" % self.ref
        error, not_found, timed_out, digest = push_stream(am.client, self.repository, self.tag, self.auth,
                                                          p["timeout"])
        if timed_out:
            raise AppfleetError(
                "timeout: pushing %s took longer than %s s and was stopped; the registry's %s is as it was "
                "(its manifest goes last); raise timeout, or check the registry %s and this host's network"
                % (self.ref, p["timeout"], self.ref, self.repository.partition("/")[0]))
        if error:
            text = scrub(error, self.forms)
            self.fail(text, error_kind(text, not_found))
        if not digest:
            raise AppfleetError("repository: the docker engine reported the push of %s done but gave no "
                                "manifest digest; run again, and check the engine's log if it repeats" % self.ref)
        changed = digest != self.before or local_before != self.image_id
        return self.result(changed, digest, digest)

    def result(self, changed, digest, after):
        image = dict(id=self.image_id, name=self.name, repository=self.repository, tag=self.tag, digest=digest,
                     ref=("%s@%s" % (self.repository, digest)) if digest else None)
        result = dict(changed=changed, image=image)
        if self.am.diff_mode:
            before = self.before if self.before is not None else "unknown"
            result["diff"] = dict(before={self.ref: before}, after={self.ref: after or before})
        return scrub(result, self.forms)


def logic(am):
    return run_scrubbed(am, Pusher(am))
