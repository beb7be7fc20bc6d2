"""Dockerfiles: the bases they build from, the syntax that needs BuildKit, the path the id sees."""

from __future__ import annotations

import pytest

from ansible_collections.appfleet.docker.plugins.module_utils._dockerfile import (
    base_images,
    normal_dockerfile_path,
    uses_buildkit_syntax,
)


@pytest.mark.parametrize("dockerfile, args, refs", [
    ("FROM scratch\nCOPY a /\n", None, []),
    ("FROM busybox:1 AS build\nRUN true\nFROM build\n", None, ["busybox:1"]),
    ("ARG BASE=debian:12\nFROM ${BASE}\n", None, ["debian:12"]),
    ("ARG BASE=debian:12\nFROM $BASE\n", {"BASE": "alpine:3"}, ["alpine:3"]),
    ("FROM --platform=linux/amd64 a:1 as one\nFROM b:2\nCOPY --from=one /x /x\nCOPY --from=c:3 /y /y\n",
     None, ["a:1", "b:2", "c:3"]),
    ("# comment\nFROM \\\n  a:1\n", None, ["a:1"]),
    ("# escape=`\nFROM `\n  a:1\n", None, ["a:1"]),
])
def test_base_images(dockerfile, args, refs):
    assert base_images(dockerfile, args) == refs


@pytest.mark.parametrize("dockerfile, needs", [
    ("FROM a\nRUN --mount=type=cache,target=/c true\n", True),
    ("FROM a\nRUN \\\n  --mount=type=cache,target=/c true\n", True),
    ("FROM a\nRUN echo --mount\n", False),
    ("FROM a\nCOPY --chmod=755 x /x\n", True),
    ("FROM a\nCOPY x /x\n", False),
])
def test_uses_buildkit_syntax(dockerfile, needs):
    assert uses_buildkit_syntax(dockerfile) is needs


@pytest.mark.parametrize("spelling, want", [
    ("Dockerfile", "Dockerfile"), ("./Dockerfile", "Dockerfile"), ("a/../Dockerfile", "Dockerfile"),
    ("docker//Dockerfile.prod", "docker/Dockerfile.prod"), ("/ctx/docker/Dockerfile", "docker/Dockerfile"),
])
def test_normal_dockerfile_path(spelling, want):
    assert normal_dockerfile_path("/ctx", spelling) == want
