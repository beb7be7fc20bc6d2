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
  - The source id (version 2) is a sha256 over what the builder gets from the build, that is the
    build context, the Dockerfile's normalised path (C(./Dockerfile) and C(Dockerfile) are
    the same) and its content, the C(.dockerignore) content, O(build_args), O(target),
    O(labels), and the ids of the images the Dockerfile builds C(FROM) (and
    C(COPY --from)) that are present locally, so a refreshed base image triggers a rebuild.
  - When the context sits in a git work tree it counts as the entries of the C(HEAD) tree
    below it (path, mode and git's blob id, from one C(git ls-tree), no file read) that
    C(.dockerignore) keeps, plus a hash of the content of the uncommitted changes below it
    (tracked and untracked files; files that C(.dockerignore) excludes or git ignores do
    not count), plus the commit checked out in each submodule below it. The commit itself
    does not count, so a commit that touches only files that C(.dockerignore) excludes, or
    only files outside the context (another app of a monorepo), builds nothing. Otherwise
    the context counts as a hash of the content of every file that C(.dockerignore) keeps.
  - Before it computes the source id, the module pulls each base image that is not present
    locally itself (with the login of its registry from O(registry_logins)), so the first
    run already counts it by its id, whichever builder runs, and bases from a private
    registry work with BuildKit too (BuildKit in dockerd uses a base present locally).
    A pull that fails fails the module before any build, naming the base and, when the
    registry refused the credentials, O(registry_logins). A base the module cannot pull
    (a bare image id) counts as absent; after a build it is looked up again, and the image
    is tagged and labelled with the source id computed then (to give the image that label,
    the module adds it on top of the built image, with no layer), so the next run computes
    the same id. Check mode pulls nothing, so when a base is absent it reports the id
    before the pull, and C(changed=true).
  - A base present locally is not compared with its registry unless O(base_refresh) is
    set; a newer image pushed to the base's tag does not trigger a rebuild by itself, and
    an unchanged source never rebuilds.
  - The work tree is the nearest directory above the context (or the context itself)
    with a real C(.git) directory, found without running git. Every git call names that
    C(.git) and work tree explicitly, with fsmonitor and hooks off, implicit bare
    repositories refused and no system or global git configuration, so nothing a
    repository holds (a committed directory that looks like a git directory, with
    C(core.worktree) and C(core.fsmonitor) in its config, or hooks) runs on the host.
    The commit checked out in a submodule is read from its files, without running git.
  - A work tree that git will not read (owned by another user, a C(.git) file of a
    linked work tree or submodule) counts by content.
  - When the tag exists the module returns C(changed=false) without building; this takes
    a few git and API calls, not a walk of the tree (for git contexts).
  - When it builds, the builder reads a private snapshot of exactly what the source id
    counted, never the live checkout, so a checkout of another commit in the same work tree
    while the build runs (another run, another play) cannot put that commit's files into the
    image tagged for this one. For a git context the snapshot holds the blobs of the tree
    entries counted, read from git by their ids with git's modes (no filter, hook or
    fsmonitor runs), symbolic links as links (never followed), the uncommitted files as
    they were read for the source id, and each submodule at the commit counted. Otherwise
    it holds a copy of each file counted. A file that changed between the source id and the
    copy fails the module before any build; run it again.
  - The snapshot is a root-only (0700) directory C(/var/tmp/appfleet-snapshot-*), removed
    after the build whether it worked or not; one left by a killed run is removed by the
    next build. It needs free space for the context's files there.
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
    details: Reports whether a build (or a base pull) would happen; builds, pulls and tags nothing.
  diff_mode:
    support: full
    details:
      - Shows the source id of the newest existing image of the app and the new one.
      - When a base image is pulled (or would be, in check mode), C(bases) shows its local id
        before and after.
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
      - Lowercase letters, digits, C(_) and C(-), starting with a letter or digit, at most 63 characters (the roles apply the same rule).
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
      - With BuildKit the values reach the docker CLI through its environment, never its
        command line (which any local user can read). So a name the CLI reads itself
        (C(DOCKER_*), C(PATH), C(HOME)) is refused; use O(builder=api) for such a name.
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
      - Each pull of a base image by the module may take as long, separately.
    type: int
    default: 3600
  base_refresh:
    description:
      - Ask the registry of each base image named by a tag (not C(scratch), a build stage, a
        bare image id or a reference by digest, which cannot move) for the current manifest
        digest of that tag, and pull the base when the local image does not have it (or is
        absent). The base's local id then changes, and so does the source id, so the image is
        rebuilt on the new base.
      - In check mode nothing is pulled; C(changed=true) and the C(bases) result say which
        base would be refreshed.
      - When the engine cannot ask the registry (an engine API before 1.30, or an error that
        is not the registry's), the module warns and uses the local base. A registry error
        that a pull would meet too (refused credentials, an unknown tag, an untrusted TLS
        certificate, an unreachable registry) fails the module.
      - When V(false), no registry is asked about a base present locally.
    type: bool
    default: false
    version_added: 0.3.0
  registry_logins:
    description:
      - Credentials for the registries of the base images, used for this module's pulls and
        registry inspects of bases only. They go to the engine with each call (the Engine
        API's C(X-Registry-Auth)) and are never written to a docker config file.
      - A base image's registry is the host of its reference (C(registry.example.com:5000) for
        C(registry.example.com:5000/team/base:1)), V(docker.io) when it names none (Docker Hub).
      - One entry per registry. The builder itself does not get them.
    type: list
    elements: dict
    default: []
    version_added: 0.3.0
    suboptions:
      registry:
        description:
          - The registry as C(host[:port]), as image references start; no scheme, no path.
            V(docker.io) for Docker Hub.
        type: str
        required: true
      username:
        description:
          - User name on O(registry_logins[].registry).
        type: str
        required: true
      password:
        description:
          - Password or token of O(registry_logins[].username); never shown in a message or result.
        type: str
        required: true
notes:
  - Files that git ignores are neither part of the source id of a git context nor in
    its build context; a build that needs a file must have it committed (or at least
    untracked and not ignored).
  - Changes inside a submodule that are not committed there (a modified file in its
    checkout) do not count and are not built; the commit checked out in it counts, and its
    files are built. A submodule inside a submodule is built as an empty directory.
  - Files are built as git stores them, without smudge or end-of-line filters; a file
    stored with Git LFS is built as its pointer file.
  - Version 2 of the source id gives every image a new tag, so the first run after an
    upgrade from a release with version 1 builds each image once more.
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

- name: Rebuild the api image when its base moved on the private registry
  appfleet.docker.image_build:
    name: registry.example.com/team/api
    context: /srv/apps/api
    base_refresh: true
    registry_logins:
      - registry: registry.example.com
        username: ci-puller
        password: "{{ vault_registry_password }}"

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
      description:
        - Commit checked out in the context's work tree, null when it is not in git.
        - It is not part of the source id; the image's C(io.appfleet.git-commit) label
          keeps the commit it was built from.
      type: str
      sample: 65b13cf468730ab4169d913bee1c2f5e885de941
    dirty:
      description: Whether uncommitted changes below the context (or a submodule checked out at
        another commit than HEAD records) went into the source id.
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
bases:
  description:
    - The base images of the Dockerfile (C(FROM) and C(COPY --from)), in order of first use.
  returned: success
  type: list
  elements: dict
  version_added: 0.3.0
  contains:
    ref:
      description: The base reference, as the Dockerfile names it (build args substituted).
      type: str
      sample: registry.example.com/team/base:1
    id:
      description:
        - Local image id of the base, the one the source id counts; null when absent.
        - In check mode, the id before any pull.
      type: str
      sample: sha256:0b2f1b7ec8b4a0a4c1ed9c3a5a5fca8d1e8e0a5c4fbc1ac3e0f0ff7b9de4e6f1
    digest:
      description:
        - The manifest digest of the base on its registry, as the registry reported it
          (O(base_refresh)), else as the local image recorded it when pulled; null when unknown.
      type: str
      sample: sha256:4c5a38ad3ee1bbbf12eb9cd0c1e5d2a83e13bda2fe9cfc92b3a02b0f2e1c9d8a
    pulled:
      description: Whether this run pulled the base (absent, or refreshed).
      type: bool
      sample: true
    refreshed:
      description:
        - Whether the registry has another image for the base's tag than the local one
          (O(base_refresh)); in check mode, the base that would be pulled.
      type: bool
      sample: false
  sample:
    - ref: registry.example.com/team/base:1
      id: sha256:0b2f1b7ec8b4a0a4c1ed9c3a5a5fca8d1e8e0a5c4fbc1ac3e0f0ff7b9de4e6f1
      digest: sha256:4c5a38ad3ee1bbbf12eb9cd0c1e5d2a83e13bda2fe9cfc92b3a02b0f2e1c9d8a
      pulled: true
      refreshed: true
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

from ansible_collections.appfleet.docker.plugins.module_utils._docker import AppfleetModule
from ansible_collections.appfleet.docker.plugins.module_utils._image_build import logic


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
            base_refresh=dict(type="bool", default=False),
            registry_logins=dict(type="list", elements="dict", default=[], options=dict(
                registry=dict(type="str", required=True),
                username=dict(type="str", required=True),
                password=dict(type="str", required=True, no_log=True),
            )),
        ),
        supports_check_mode=True,
    )
    am.run(logic)


if __name__ == "__main__":
    main()
