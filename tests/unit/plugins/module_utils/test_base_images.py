"""Pure parts of image_build's base images: registries, which bases refresh, registry_logins."""

from __future__ import annotations

import pytest

from ansible_collections.appfleet.docker.plugins.module_utils import _base_images as bi
from ansible_collections.appfleet.docker.plugins.module_utils._docker import AppfleetError

DIGEST = "sha256:" + "1780c68e28f29652181ce4f584e896857fe950f26f11553464e550db9b521523"
IMAGE_ID = "sha256:" + "9ca0a2c812710a9aadb1b58b0e16eaba2eb977ec59fa36eaf7b036b6f8df084b"


def login(registry, username="u", password="p"):
    return dict(registry=registry, username=username, password=password)


@pytest.mark.parametrize("ref, registry", [
    ("busybox", "docker.io"),
    ("busybox:1.36", "docker.io"),
    ("team/web:1", "docker.io"),
    ("docker.io/library/busybox:1", "docker.io"),
    ("index.docker.io/library/busybox:1", "docker.io"),
    ("registry.example.com/team/base:1", "registry.example.com"),
    ("127.0.0.1:5000/afa-test/base:1", "127.0.0.1:5000"),
    ("localhost/base@" + DIGEST, "localhost"),
    ("Registry.Example.com/base:1", "registry.example.com"),
])
def test_the_registry_of_a_base(ref, registry):
    assert bi.base_registry(ref) == registry


@pytest.mark.parametrize("ref, pullable, refreshable", [
    ("busybox", True, True),
    ("127.0.0.1:5000/afa-test/base:1", True, True),
    ("registry.example.com/team/base@" + DIGEST, True, False),
    (IMAGE_ID, False, False),
    (IMAGE_ID[len("sha256:"):], False, False),
    ("", False, False),
    ("Bad/Name:1", False, False),
    ("${UNSET}", False, False),
    ("base:-bad", False, False),
])
def test_which_bases_are_pulled_and_refreshed(ref, pullable, refreshable):
    assert bi.pullable(ref) is pullable
    assert bi.refreshable(ref) is refreshable


@pytest.mark.parametrize("ref, name", [
    ("busybox", "busybox:latest"),
    ("127.0.0.1:5000/base", "127.0.0.1:5000/base:latest"),
    ("127.0.0.1:5000/base:1", "127.0.0.1:5000/base:1"),
    ("base@" + DIGEST, "base@" + DIGEST),
])
def test_an_implicit_tag_is_latest(ref, name):
    assert bi.pull_name(ref) == name


@pytest.mark.parametrize("ref, repo_digests, digest", [
    ("busybox:1", ["busybox@" + DIGEST], DIGEST),
    ("docker.io/library/busybox:1", ["busybox@" + DIGEST], DIGEST),
    ("team/web:1", ["team/web@" + DIGEST], DIGEST),
    ("127.0.0.1:5000/b:1", ["127.0.0.1:5000/other@sha256:0", "127.0.0.1:5000/b@" + DIGEST], DIGEST),
    ("127.0.0.1:5000/b:1", ["127.0.0.1:5000/other@" + DIGEST], None),
    ("local/base:1", [], None),
])
def test_the_digest_a_local_base_was_pulled_with(ref, repo_digests, digest):
    assert bi.Bases.local_digest(ref, repo_digests) == digest


def test_logins_by_registry_and_the_login_of_a_base():
    logins = bi.check_logins([login("registry.example.com:5000", "a"), login("docker.io", "b"),
                              login("127.0.0.1:5000", "c")])
    assert sorted(logins) == ["127.0.0.1:5000", "docker.io", "registry.example.com:5000"]
    assert bi.login_for(logins, "registry.example.com:5000/team/base:1")["username"] == "a"
    assert bi.login_for(logins, "busybox")["username"] == "b"
    assert bi.login_for(logins, "index.docker.io/library/busybox:1")["username"] == "b"
    assert bi.login_for(logins, "registry.example.com/team/base:1") is None
    assert bi.check_logins([]) == {}


@pytest.mark.parametrize("logins, words", [
    ([login("https://registry.example.com")], ["registry_logins[0].registry", "without a scheme",
                                               "e.g. registry.example.com"]),
    ([login("r.example.com"), login("r.example.com:5000/team")], ["registry_logins[1].registry", "without a path"]),
    ([login("")], ["registry_logins[0].registry", "is not a registry host[:port]"]),
    ([login("bad host")], ["registry_logins[0].registry", "is not a registry host[:port]"]),
    ([login("r.example.com:port")], ["registry_logins[0].registry", "is not a registry host[:port]"]),
    ([login("r.example.com"), login("R.example.com")],
     ["registry_logins[1].registry", "registry_logins[0]", "one login per registry"]),
    ([login("docker.io"), login("index.docker.io")], ["registry_logins[1].registry", "same registry"]),
])
def test_bad_registry_logins_are_named(logins, words):
    with pytest.raises(AppfleetError) as err:
        bi.check_logins(logins)
    for word in words:
        assert word in err.value.msg


def test_puller_messages_speak_of_image_builds_options():
    ref = "127.0.0.1:5000/afa-test/base:1"
    refused = ("username, password: the registry 127.0.0.1:5000 refused the credentials of user 'u' for %s "
               "(unauthorized); check username and password, and that this user may pull 127.0.0.1:5000/afa-test/base"
               % ref)
    msg = bi.base_error(ref, login("127.0.0.1:5000"), refused)
    assert msg.startswith("base image %s (with the login of user 'u' from registry_logins): "
                          "registry_logins: the registry 127.0.0.1:5000 refused" % ref), msg
    assert "check the username and password of the entry for registry 127.0.0.1:5000 in registry_logins" in msg
    unreachable = ("name: the docker engine cannot reach the registry 127.0.0.1:5000 (dial tcp); check the registry "
                   "host and port in name, that the registry runs; no username and password were given: if the "
                   "registry requires them, set them")
    msg = bi.base_error(ref, None, unreachable)
    assert msg.startswith("base image %s: the docker engine cannot reach" % ref), msg
    assert "in the base reference," in msg and "registry_logins has no entry for registry 127.0.0.1:5000" in msg
    msg = bi.base_error(ref, None, "timeout: pulling x took longer than 3 s; raise timeout, or check")
    assert msg == "base image %s: pulling x took longer than 3 s; raise build_timeout, or check" % ref
