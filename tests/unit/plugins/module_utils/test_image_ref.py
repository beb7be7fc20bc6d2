"""The one image-reference parser: Docker's reference grammar, the familiar form, the name checks."""

from __future__ import annotations

import pytest

from ansible_collections.appfleet.docker.plugins.module_utils._image_ref import (
    ImageRef,
    default_app,
    familiar,
    image_error,
    name_error,
    normal_registry,
    parse_image_ref,
    registry_host,
    split_ref,
    tag_error,
)

DIGEST = "sha256:" + "1780c68e28f29652181ce4f584e896857fe950f26f11553464e550db9b521523"


@pytest.mark.parametrize("text, want", [
    ("web", (None, "web", None, None)),
    ("team/web:1", (None, "team/web", "1", None)),
    ("registry.example.com/team/web:1", ("registry.example.com", "team/web", "1", None)),
    ("git:5000/lab/hello@" + DIGEST, ("git:5000", "lab/hello", None, DIGEST)),
    ("localhost/web:v1.2_3", ("localhost", "web", "v1.2_3", None)),
    ("localhost:5000/a-b__c.d:x@" + DIGEST, ("localhost:5000", "a-b__c.d", "x", DIGEST)),
    ("[::1]:5000/web:1", ("[::1]:5000", "web", "1", None)),
    ("docker.io/library/busybox:1.36", ("docker.io", "library/busybox", "1.36", None)),
])
def test_parse_image_ref(text, want):
    ref = parse_image_ref(text)
    assert isinstance(ref, ImageRef)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == want
    assert str(ref) == text
    assert ref.name == split_ref(text)[0]


@pytest.mark.parametrize("text, words", [
    ("", ["must be a non-empty string"]),
    ("Web:1", ["'Web:1'", "repository 'Web' is not valid", "lowercase"]),
    ("team//web", ["repository 'team//web'"]),
    ("web app", ["repository 'web app'"]),
    ("a/" * 130 + "b", ["at most 255 characters"]),
    ("web:-1", ["tag '-1' is not valid"]),
    ("web:" + "a" * 129, ["tag 'aaaa"]),
    ("web@sha256:abc", ["digest 'sha256:abc' is not valid", "64 lowercase hex"]),
    ("web@sha512:" + "a" * 128, ["digest 'sha512:"]),
    ("web@" + DIGEST.upper(), ["digest"]),
    ("-bad.example.com/web", ["registry host '-bad.example.com'"]),
    ("web:1\n", ["tag"]),
])
def test_parse_image_ref_refused(text, words):
    with pytest.raises(ValueError) as err:
        parse_image_ref(text)
    for word in words:
        assert word in str(err.value)


def test_parse_image_ref_refuses_what_is_not_a_string():
    with pytest.raises(ValueError, match="non-empty string"):
        parse_image_ref(None)


@pytest.mark.parametrize("ref, want", [
    ("docker.io/library/busybox", "busybox"),
    ("index.docker.io/library/busybox:1", "busybox:1"),
    ("Registry-1.Docker.io/team/web@" + DIGEST, "team/web@" + DIGEST),
    ("library/busybox", "busybox"),
    ("docker.io/library/a/b", "library/a/b"),
    ("registry.example.com/library/web", "registry.example.com/library/web"),
    ("web:1", "web:1"),
])
def test_familiar(ref, want):
    assert familiar(ref) == want


def test_normal_registry():
    assert normal_registry("Index.Docker.io") == "docker.io"
    assert normal_registry("Registry.Example.com:5000") == "registry.example.com:5000"
    assert parse_image_ref("web").host == "docker.io"


@pytest.mark.parametrize("value, ok", [
    ("sha256:" + "a" * 64, True), ("a" * 64, True), ("web:1", True), ("web", True),
    ("git:5000/lab/web@" + DIGEST, True), ("Web:1", False), ("web:.x", False), ("", False),
])
def test_image_error(value, ok):
    err = image_error("image", value)
    assert (err is None) is ok
    if not ok:
        assert err.startswith("image ")


@pytest.mark.parametrize("name, ok", [
    ("web", True),
    ("team/web-app", True),
    ("registry.example.com:5000/team/web", True),
    ("localhost/web", True),
    ("a__b.c-d", True),
    ("Web", False),
    ("web:latest", False),
    ("web@sha256:abc", False),
    ("web app", False),
    ("-web", False),
    ("web-", False),
    ("a..b", False),
    ("", False),
    ("a/" * 130 + "b", False),
])
def test_image_name(name, ok):
    err = name_error("name", name)
    assert (err is None) is ok
    if not ok:
        assert err.startswith("name ") and "not a valid image name" in err


@pytest.mark.parametrize("tag, ok", [("latest", True), ("v1.2_3-rc", True), (".x", False), ("-x", False),
                                     ("a" * 129, False), ("a/b", False)])
def test_tag(tag, ok):
    assert (tag_error("also_tag", tag) is None) is ok


@pytest.mark.parametrize("repo, host", [
    ("git:5000/lab/hello", "git:5000"),
    ("registry.example.com/team/web", "registry.example.com"),
    ("localhost/web", "localhost"),
    ("team/web", "docker.io"),
    ("web", "docker.io"),
])
def test_registry_host(repo, host):
    assert registry_host(repo) == host


@pytest.mark.parametrize("name, app", [("web", "web"), ("registry.example.com/team/api", "api")])
def test_default_app(name, app):
    assert default_app(name) == app
