#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: image_build
short_description: Build an app image keyed on its source, only when the source changed
version_added: 0.1.0
description:
  - Computes a I(source id) for a build without calling the builder, tags the image
    C(<name>:<short source id>) and builds it only when that tag does not exist yet.
  - The source id is a sha256 over the build context, the Dockerfile path and content,
    the C(.dockerignore) content, O(build_args), O(target), O(labels), and the ids of the
    images the Dockerfile builds C(FROM) (and C(COPY --from)) that are present locally,
    so a refreshed base image triggers a rebuild.
  - The build context counts as its git commit when it sits in a git work tree, plus a
    hash of the uncommitted changes below it (tracked and untracked files; files that
    C(.dockerignore) excludes or git ignores do not count). Otherwise it counts as a hash
    of the content of every file that C(.dockerignore) keeps.
  - The work tree is the nearest directory above the context (or the context itself)
    with a real C(.git) directory, found without running git. Every git call names that
    C(.git) and work tree explicitly, with fsmonitor and hooks off, implicit bare
    repositories refused and no system or global git configuration, so nothing a
    repository holds (a committed directory that looks like a git directory, with
    C(core.worktree) and C(core.fsmonitor) in its config, or hooks) runs on the host.
  - A work tree that git will not read (owned by another user, a C(.git) file of a
    linked work tree or submodule) counts by content.
  - When the tag exists the module returns C(changed=false) without building; this takes
    a few git and API calls, not a walk of the tree (for git contexts).
  - A failed build tags nothing and leaves every existing tag where it was; the module
    fails with the Dockerfile step that failed and the last lines of the build log.
  - The image gets the labels C(io.appfleet.app) (O(app)), C(io.appfleet.source-id),
    C(io.appfleet.git-commit) (git contexts) and C(io.appfleet.built-at) (UTC, ISO 8601),
    which M(appfleet.docker.app_info) and M(appfleet.docker.image_prune) read.
author:
  - appfleet developers (@appfleet)
extends_documentation_fragment:
  - appfleet.docker.attributes
  - appfleet.docker.docker
attributes:
  check_mode:
    support: full
    details: Reports whether a build would happen; builds and tags nothing.
  diff_mode:
    support: full
    details: Shows the source id of the newest existing image of the app and the new one.
options:
  name:
    description:
      - Image repository name, without tag, for example C(web) or C(registry.example.com/team/web).
      - Lowercase letters, digits and C(.), C(_), C(-) separators, as Docker requires.
    type: str
    required: true
  app:
    description:
      - App name written to the C(io.appfleet.app) label.
      - Defaults to the last path component of O(name).
    type: str
  context:
    description:
      - Build context directory on the managed host.
      - When it sits in a git work tree it must not resolve outside it (through a symlink
        that the repository holds); such a context is refused.
    type: path
    required: true
  dockerfile:
    description:
      - Path of the Dockerfile, relative to O(context).
      - An absolute path, a C(..) component, or a path that resolves outside O(context)
        (through a symlink) is refused.
    type: str
    default: Dockerfile
  build_args:
    description:
      - Build-time variables (C(--build-arg)). They are part of the source id and are
        visible in the image history; do not pass secrets here.
    type: dict
    default: {}
  target:
    description:
      - Build stage to stop at (C(--target)).
    type: str
  labels:
    description:
      - Extra labels for the image. They are part of the source id.
    type: dict
    default: {}
  force:
    description:
      - Build even when the image for this source id exists, and move its tag to the new image.
    type: bool
    default: false
  also_tag:
    description:
      - More tags of O(name) to point at the resulting image, for example V(latest).
      - Without this option no other tag is moved; C(latest) in particular is left alone.
    type: list
    elements: str
    default: []
  builder:
    description:
      - V(buildkit) builds with BuildKit by running the docker CLI (C(docker build) with
        C(DOCKER_BUILDKIT=1), C(--iidfile), C(--progress=plain)) against the same engine
        as O(docker_host). Dockerfiles with BuildKit-only syntax, such as
        C(RUN --mount=type=cache,...), need it.
      - V(api) builds with the Engine API's classic builder through the Docker SDK; it
        needs no CLI but cannot build BuildKit-only syntax.
      - V(auto) uses BuildKit when a suitable CLI is found (a client before 23.0, or a
        newer one with the buildx plugin) and the engine supports it, and falls back to
        V(api) otherwise; when the Dockerfile needs BuildKit and none is found, the module
        fails and says why.
      - A C(# syntax=) line in the Dockerfile makes BuildKit pull a frontend image from a
        registry, which hosts without registry access cannot do.
    type: str
    choices: [auto, buildkit, api]
    default: auto
  docker_cli:
    description:
      - The docker CLI to build with when BuildKit is used.
      - When not set, C(/usr/bin/docker) (the engine's own client on Debian and Ubuntu)
        is tried first, then C(docker) on E(PATH).
    type: path
  build_timeout:
    description:
      - Seconds the whole build may take, from its start to the image id. It is a wall-clock
        total, not an idle time, so a step that prints nothing counts too. A longer build is
        stopped and reported as failed; nothing is tagged.
    type: int
    default: 3600
notes:
  - Files that git ignores are not part of the source id of a git context even when
    the build copies them; commit them, or change a tracked file, to trigger a rebuild.
  - Per-Dockerfile ignore files (C(Dockerfile.dockerignore)) are not read; only
    C(<context>/.dockerignore).
seealso:
  - module: appfleet.docker.app_info
  - module: appfleet.docker.image_prune
"""

EXAMPLES = r"""
- name: Build the web image when its source changed
  appfleet.docker.image_build:
    name: web
    context: /srv/apps/web
    build_args:
      NODE_ENV: production
  register: web_image

- name: Build a stage of another Dockerfile and move latest too
  appfleet.docker.image_build:
    name: registry.example.com/team/api
    app: api
    context: /srv/apps/api
    dockerfile: docker/Dockerfile.prod
    target: runtime
    also_tag:
      - latest

- name: Rebuild without BuildKit, even when the source did not change
  appfleet.docker.image_build:
    name: worker
    context: /srv/apps/worker
    builder: api
    force: true
"""

RETURN = r"""
image:
  description: The image for the source id, built or found.
  returned: success
  type: dict
  contains:
    id:
      description: Image id; null in check mode when the image would be built.
      type: str
      sample: sha256:9ca0a2c812710a9aadb1b58b0e16eaba2eb977ec59fa36eaf7b036b6f8df084b
    tag:
      description: The source-id tag, C(<name>:<short source id>).
      type: str
      sample: web:3f2a9c1d0b7e
    source_id:
      description: Full source id (sha256 hex).
      type: str
      sample: 3f2a9c1d0b7e5a8f9e6d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f
    git_commit:
      description: Commit of the context's work tree, null when it is not in git.
      type: str
      sample: 65b13cf468730ab4169d913bee1c2f5e885de941
    dirty:
      description: Whether uncommitted changes below the context went into the source id.
      type: bool
      sample: false
    built:
      description: Whether this run built the image.
      type: bool
      sample: true
    builder:
      description: The builder used (V(buildkit) or V(api)); null when nothing was built.
      type: str
      sample: buildkit
    duration:
      description: Seconds the build took (0 when nothing was built).
      type: float
      sample: 12.4
    also_tagged:
      description: The O(also_tag) references that point at the image.
      type: list
      elements: str
      sample: [web:latest]
build_log:
  description: Last lines of the build log.
  returned: when a build ran, also on failure
  type: list
  elements: str
  sample: ["#7 [stage-0 4/5] RUN make", "#7 DONE 3.1s"]
failed_step:
  description: The Dockerfile step that failed.
  returned: when the build failed
  type: str
  sample: RUN make test
"""

import os

from ansible_collections.appfleet.docker.plugins.module_utils._build import (
    BuildFailed,
    Timer,
    build_with_api,
    build_with_cli,
    find_buildkit_cli,
)
from ansible_collections.appfleet.docker.plugins.module_utils._docker import (
    LABEL_APP,
    LABEL_BUILT_AT,
    LABEL_GIT_COMMIT,
    LABEL_SOURCE_ID,
    AppfleetError,
    AppfleetModule,
)
from ansible_collections.appfleet.docker.plugins.module_utils._images import (
    app_error,
    default_app,
    image_id,
    name_error,
    newest_app_image,
    now_label,
    tag_error,
)
from ansible_collections.appfleet.docker.plugins.module_utils._source import (
    ContextOutsideWorkTree,
    compute_source_id,
    find_work_tree,
    uses_buildkit_syntax,
)

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
        am.fail("app %s: context %s is not a directory; set context to the checked-out source "
                "of the app" % (app, p["context"]))
    try:
        find_work_tree(p["context"])
    except ContextOutsideWorkTree as exc:
        am.fail("app %s: %s; set context to a directory of the checkout itself" % (app, exc))
    dockerfile = p["dockerfile"]
    if os.path.isabs(dockerfile) or os.pardir in dockerfile.split("/"):
        am.fail("app %s: dockerfile %r must be a path relative to context, without '..'; for "
                "example Dockerfile or docker/Dockerfile.prod" % (app, dockerfile))
    path = os.path.join(p["context"], dockerfile)
    if not os.path.isfile(path):
        am.fail("app %s: dockerfile %s not found; set dockerfile to a path relative to context "
                "(%s)" % (app, path, p["context"]))
    real_context = os.path.realpath(p["context"])
    real = os.path.realpath(path)
    if not real.startswith(real_context.rstrip("/") + "/"):
        am.fail("app %s: dockerfile %s resolves to %s, outside context %s (a symlink?); set "
                "dockerfile to a file inside the context" % (app, dockerfile, real, p["context"]))
    for key in p["build_args"]:
        if not key or "=" in key:
            am.fail("app %s: build_args key %r is not a variable name" % (app, key))
    if p["build_timeout"] <= 0:
        am.fail("build_timeout must be a positive number of seconds")
    return app, path


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
        am.fail("app %s: builder=buildkit but no BuildKit-capable docker client was found (%s); "
                "install the engine's docker CLI (or the buildx plugin), set docker_cli, or use "
                "builder=api" % (app, reason))
    if uses_buildkit_syntax(dockerfile_text):
        am.fail("app %s: the Dockerfile uses BuildKit-only syntax (e.g. RUN --mount) but no "
                "BuildKit-capable docker client was found (%s); install the engine's docker CLI "
                "(or the buildx plugin) or set docker_cli" % (app, reason))
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
    app, _path = check_input(am)
    name = p["name"]
    client = am.client

    am.step = "computing the source id of context %s" % p["context"]
    src = compute_source_id(p["context"], dockerfile=p["dockerfile"], build_args=p["build_args"],
                            target=p["target"], labels=p["labels"],
                            resolve_image=lambda ref: image_id(client, ref))
    tag = src["short_id"]
    ref = "%s:%s" % (name, tag)
    existing = image_id(client, ref)
    image = dict(id=existing, tag=ref, source_id=src["source_id"], git_commit=src["git_commit"],
                 dirty=src["dirty"], built=False, builder=None, duration=0.0, also_tagged=[])
    result = dict(changed=False, image=image)

    if am.diff_mode:
        old = newest_app_image(client, app)
        result["diff"] = dict(
            before=dict(source_id=old["source_id"] if old else None,
                        image=(old["tags"][0] if old and old["tags"] else (old["id"] if old else None))),
            after=dict(source_id=src["source_id"], image=ref),
        )

    if existing and not p["force"]:
        image["also_tagged"], result["changed"] = ensure_also_tags(am, name, existing)
        return result

    result["changed"] = True
    if am.check_mode:
        image["also_tagged"] = ["%s:%s" % (name, t) for t in p["also_tag"]]
        return result

    labels = dict((str(k), str(v)) for k, v in p["labels"].items())
    labels[LABEL_APP] = app
    labels[LABEL_SOURCE_ID] = src["source_id"]
    labels[LABEL_BUILT_AT] = now_label()
    if src["git_commit"]:
        labels[LABEL_GIT_COMMIT] = src["git_commit"]
    build_args = dict((str(k), "" if v is None else str(v)) for k, v in p["build_args"].items())

    am.step = "building the image"
    builder, cli = choose_builder(am, app, src["dockerfile_text"])
    timer = Timer()
    try:
        if builder == "buildkit":
            dockerfile = os.path.join(os.path.abspath(p["context"]), p["dockerfile"])
            iid, log = build_with_cli(cli, p["docker_host"], os.path.abspath(p["context"]), dockerfile,
                                      build_args, p["target"], labels, p["build_timeout"])
        else:
            iid, log = build_with_api(client, os.path.abspath(p["context"]), p["dockerfile"],
                                      build_args, p["target"], labels, p["build_timeout"])
    except BuildFailed as exc:
        step = (" at step `%s`" % exc.step) if exc.step else ""
        if exc.timed_out:
            msg = ("image_build: the build of app %s took longer than build_timeout (%s s)%s; it was "
                   "stopped, nothing was tagged, %s still points where it did; raise build_timeout or "
                   "make the build faster. Last build log lines:\n%s"
                   % (app, p["build_timeout"], step, name, "\n".join(exc.log_tail)))
        else:
            msg = ("app %s: image build failed%s: %s; nothing was tagged, %s still points where it "
                   "did. Last build log lines:\n%s"
                   % (app, step, exc.message, name, "\n".join(exc.log_tail)))
        raise AppfleetError(msg, build_log=exc.log_tail, failed_step=exc.step, source_id=src["source_id"],
                            builder=builder)
    am.step = "tagging the built image"
    client.api.tag(iid, name, tag, force=True)
    image.update(id=iid, built=True, builder=builder, duration=timer.elapsed())
    image["also_tagged"], _moved = ensure_also_tags(am, name, iid)
    result["build_log"] = log
    return result


def main():
    am = AppfleetModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            app=dict(type="str"),
            context=dict(type="path", required=True),
            dockerfile=dict(type="str", default="Dockerfile"),
            build_args=dict(type="dict", default={}),
            target=dict(type="str"),
            labels=dict(type="dict", default={}),
            force=dict(type="bool", default=False),
            also_tag=dict(type="list", elements="str", default=[]),
            builder=dict(type="str", choices=["auto", "buildkit", "api"], default="auto"),
            docker_cli=dict(type="path"),
            build_timeout=dict(type="int", default=3600),
        ),
        supports_check_mode=True,
    )
    am.run(logic)


if __name__ == "__main__":
    main()
