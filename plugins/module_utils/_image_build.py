# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What image_build does: build an app image only when its source id is new, and tag it.

Private to this collection (leading underscore): not a public API.
"""

from __future__ import annotations

import os

from ansible_collections.appfleet.docker.plugins.module_utils._base_images import Bases, check_logins
from ansible_collections.appfleet.docker.plugins.module_utils._build import (
    BuildFailed,
    Timer,
    build_with_api,
    build_with_cli,
    cli_reads,
    find_buildkit_cli,
    relabel_image,
)
from ansible_collections.appfleet.docker.plugins.module_utils._docker import (
    LABEL_APP,
    LABEL_BUILT_AT,
    LABEL_GIT_COMMIT,
    LABEL_SOURCE_ID,
    AppfleetError,
    app_error,
    now_label,
)
from ansible_collections.appfleet.docker.plugins.module_utils._engine import image_id, newest_app_image
from ansible_collections.appfleet.docker.plugins.module_utils._image_ref import default_app, name_error, tag_error
from ansible_collections.appfleet.docker.plugins.module_utils._dockerfile import base_images, read_dockerfile, uses_buildkit_syntax
from ansible_collections.appfleet.docker.plugins.module_utils._dockerignore import read_dockerignore
from ansible_collections.appfleet.docker.plugins.module_utils._git import ContextOutsideWorkTree, find_work_tree
from ansible_collections.appfleet.docker.plugins.module_utils._repo_files import RepositoryFileRefused
from ansible_collections.appfleet.docker.plugins.module_utils._snapshot import Snapshot, SnapshotError
from ansible_collections.appfleet.docker.plugins.module_utils._source_id import compute_source_id, rekey_bases

DEFAULT_CLIS = ["/usr/bin/docker", "docker"]


def check_input(am):
    """Refuse bad input before anything touches the engine; return (app, dockerfile path)."""
    p = am.params
    err = name_error("name", p["name"])
    if err:
        am.fail(err)
    app = p["app"] or default_app(p["name"])
    err = app_error("app", app)
    if err:
        am.fail(err)
    for tag in p["also_tag"]:
        err = tag_error("also_tag", tag)
        if err:
            am.fail(err)
    if not os.path.isdir(p["context"]):
        am.fail("context %s is not a directory; set context to the checked-out source "
                "of the app" % p["context"])
    try:
        find_work_tree(p["context"])
    except ContextOutsideWorkTree as exc:
        am.fail("%s; set context to a directory of the checkout itself" % exc)
    dockerfile = p["dockerfile"]
    if os.path.isabs(dockerfile) or os.pardir in dockerfile.split("/"):
        am.fail("dockerfile %r must be a path relative to context, without '..'; for "
                "example Dockerfile or docker/Dockerfile.prod" % dockerfile)
    path = os.path.join(p["context"], dockerfile)
    if not os.path.isfile(path):
        am.fail("dockerfile %s not found; set dockerfile to a path relative to context "
                "(%s)" % (path, p["context"]))
    real_context = os.path.realpath(p["context"])
    real = os.path.realpath(path)
    if not real.startswith(real_context.rstrip("/") + "/"):
        am.fail("dockerfile %s resolves to %s, outside context %s (a symlink?); set "
                "dockerfile to a file inside the context" % (dockerfile, real, p["context"]))
    for key in p["build_args"]:
        if not key or "=" in key or "\0" in key:
            am.fail("build_args key %r is not a variable name" % (key,))
        if p["builder"] != "api" and cli_reads(key):
            # BuildKit builds get their build args through the docker CLI's environment.
            am.fail("build_args key %s is a variable the docker CLI reads itself, and a BuildKit build "
                    "passes build args through the CLI's environment; rename the build arg or set builder=api"
                    % key)
    if p["build_timeout"] <= 0:
        am.fail("build_timeout must be a positive number of seconds")
    try:
        logins = check_logins(p["registry_logins"])
    except AppfleetError as exc:
        am.fail(exc.msg)
    return app, path, logins


def choose_builder(am, app, dockerfile_text):
    """Return ("buildkit", cli) or ("api", None), or fail saying why."""
    wanted = am.params["builder"]
    if wanted == "api":
        return "api", None
    candidates = [am.params["docker_cli"]] if am.params["docker_cli"] else DEFAULT_CLIS
    api_version = am.client.api.version().get("ApiVersion", "0")
    cli, reason = find_buildkit_cli(candidates, am.params["docker_host"], api_version)
    if cli:
        return "buildkit", cli
    if wanted == "buildkit":
        am.fail("builder=buildkit but no BuildKit-capable docker client was found (%s); "
                "install the engine's docker CLI (or the buildx plugin), set docker_cli, or use "
                "builder=api" % reason)
    if uses_buildkit_syntax(dockerfile_text):
        am.fail("the Dockerfile uses BuildKit-only syntax (e.g. RUN --mount) but no "
                "BuildKit-capable docker client was found (%s); install the engine's docker CLI "
                "(or the buildx plugin) or set docker_cli" % reason)
    return "api", None


def ensure_also_tags(am, name, iid):
    """Point the also_tag references at ``iid``; return (refs, changed)."""
    refs = []
    changed = False
    for tag in am.params["also_tag"]:
        ref = "%s:%s" % (name, tag)
        refs.append(ref)
        if image_id(am.client, ref) != iid:
            changed = True
            if not am.check_mode:
                am.client.api.tag(iid, name, tag, force=True)
    return refs, changed


def logic(am):
    p = am.params
    am.app = p["app"] or default_app(p["name"])
    am.step = "checking the input"
    app, _path, logins = check_input(am)
    name = p["name"]
    client = am.client

    # The bases first: absent ones are pulled (and moved ones refreshed) by the module, so the
    # source id counts them by the id the build will use, whichever builder runs.
    build_args = dict((str(k), "" if v is None else str(v)) for k, v in p["build_args"].items())
    try:
        # Both files the repository controls, refused before any base is pulled.
        text = read_dockerfile(p["context"], p["dockerfile"]).decode("utf-8", "replace")
        read_dockerignore(p["context"])
    except RepositoryFileRefused as exc:
        raise AppfleetError(exc.msg)
    bases = Bases(am, logins, p["base_refresh"], p["build_timeout"])
    bases.prepare(base_images(text, build_args))
    moved = bases.moved()
    resolved = bases.ids()

    am.step = "computing the source id of context %s" % p["context"]
    try:
        src = compute_source_id(p["context"], dockerfile=p["dockerfile"], build_args=p["build_args"],
                                target=p["target"], labels=p["labels"],
                                resolve_image=lambda ref: resolved[ref] if ref in resolved else image_id(client, ref))
    except RepositoryFileRefused as exc:
        raise AppfleetError(exc.msg)
    tag = src["short_id"]
    ref = "%s:%s" % (name, tag)
    existing = image_id(client, ref)
    image = dict(id=existing, tag=ref, source_id=src["source_id"], git_commit=src["git_commit"],
                 dirty=src["dirty"], built=False, builder=None, duration=0.0, also_tagged=[])
    result = dict(changed=bool(moved), image=image, bases=bases.result())

    if am.diff_mode:
        old = newest_app_image(client, app)
        result["diff"] = dict(
            before=dict(source_id=old["source_id"] if old else None,
                        image=(old["tags"][0] if old and old["tags"] else (old["id"] if old else None))),
            after=dict(source_id=src["source_id"], image=ref),
        )
        if moved:
            result["diff"]["before"]["bases"], result["diff"]["after"]["bases"] = bases.diff()

    if existing and not p["force"] and not (am.check_mode and moved):
        image["also_tagged"], tags_moved = ensure_also_tags(am, name, existing)
        result["changed"] = result["changed"] or tags_moved
        return result

    result["changed"] = True
    if am.check_mode:
        if moved:
            image["id"] = None  # a base would be pulled: the image would be built on it
        image["also_tagged"] = ["%s:%s" % (name, t) for t in p["also_tag"]]
        return result

    labels = dict((str(k), str(v)) for k, v in p["labels"].items())
    labels[LABEL_APP] = app
    labels[LABEL_SOURCE_ID] = src["source_id"]
    labels[LABEL_BUILT_AT] = now_label()
    if src["git_commit"]:
        labels[LABEL_GIT_COMMIT] = src["git_commit"]

    am.step = "building the image"
    builder, cli = choose_builder(am, app, src["dockerfile_text"])
    timer = Timer()
    dockerfile = src["snapshot"]["dockerfile"]
    try:
        # The builder reads a private copy of what the source id hashed, never the live
        # checkout, which another run may move before a COPY reads it (_snapshot.py).
        am.step = "copying what the source id hashed into the build's snapshot"
        with Snapshot(src["snapshot"]) as context:
            am.step = "building the image"
            if builder == "buildkit":
                iid, log = build_with_cli(cli, p["docker_host"], context, os.path.join(context, dockerfile),
                                          build_args, p["target"], labels, p["build_timeout"])
            else:
                iid, log = build_with_api(client, context, dockerfile,
                                          build_args, p["target"], labels, p["build_timeout"])
    except SnapshotError as exc:
        raise AppfleetError(exc.msg, source_id=src["source_id"], builder=builder)
    except BuildFailed as exc:
        step = (" at step `%s`" % exc.step) if exc.step else ""
        if exc.timed_out:
            msg = ("the build took longer than build_timeout (%s s)%s; it was "
                   "stopped, nothing was tagged, %s still points where it did; raise build_timeout or "
                   "make the build faster. Last build log lines:\n%s"
                   % (p["build_timeout"], step, name, "\n".join(exc.log_tail)))
        else:
            msg = ("image build failed%s: %s; nothing was tagged, %s still points where it "
                   "did. Last build log lines:\n%s"
                   % (step, exc.message, name, "\n".join(exc.log_tail)))
        raise AppfleetError(msg, build_log=exc.log_tail, failed_step=exc.step, source_id=src["source_id"],
                            builder=builder)
    # A base that was absent and that the build pulled into the image store (the API
    # builder does, BuildKit does not) counts by its id from now on: record the id the
    # next run will compute, so that it finds this image whichever builder ran.
    after = rekey_bases(src, lambda base: image_id(client, base))
    if after["source_id"] != src["source_id"]:
        am.step = "labelling the image with its source id after the build pulled its base"
        labels[LABEL_SOURCE_ID] = after["source_id"]
        try:
            iid = relabel_image(client, iid, labels, p["build_timeout"])
        except BuildFailed as exc:
            raise AppfleetError("the build worked but labelling its image failed: %s; nothing was "
                                "tagged, %s still points where it did" % (exc.message, name),
                                build_log=exc.log_tail, source_id=after["source_id"], builder=builder)
        tag = after["short_id"]
        image.update(tag="%s:%s" % (name, tag), source_id=after["source_id"])
    am.step = "tagging the built image"
    client.api.tag(iid, name, tag, force=True)
    image.update(id=iid, built=True, builder=builder, duration=timer.elapsed())
    image["also_tagged"], _moved = ensure_also_tags(am, name, iid)
    result["build_log"] = log
    return result
