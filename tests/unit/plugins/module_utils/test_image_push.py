"""Pure parts of image_push: the name, repository and tag checks, the decision, the stream, the messages."""

from __future__ import annotations


import pytest
from docker import errors as docker_errors

from ansible_collections.appfleet.docker.plugins.module_utils import _image_pull as ip
from ansible_collections.appfleet.docker.plugins.module_utils import _registry as reg
from ansible_collections.appfleet.docker.plugins.module_utils import _image_push as ipu
from ansible_collections.appfleet.docker.plugins.module_utils._docker import AppfleetError

from .docker_api_fakes import FakeClient, InspectApi

DIGEST = "sha256:" + "1780c68e28f29652181ce4f584e896857fe950f26f11553464e550db9b521523"
OTHER = "sha256:" + "9ca0a2c812710a9aadb1b58b0e16eaba2eb977ec59fa36eaf7b036b6f8df084b"
PASSWORD = 'p@ss w0rd/"x"+%&=;'
REPO = "registry.example.com:5000/team/web"


def assert_refused(call, *args, words=()):
    """``call(*args)`` raises an AppfleetError whose message holds each of ``words``."""
    with pytest.raises(AppfleetError) as err:
        call(*args)
    for word in words:
        assert word in err.value.msg


@pytest.mark.parametrize("name, tag", [
    ("web:3f2a9c1d0b7e", "3f2a9c1d0b7e"),
    ("afa-test/web:s1", "s1"),
    ("127.0.0.1:5599/afa/web:x", "x"),
    (OTHER, None),
    ("9ca0a2c81271", None),
    ("web@" + DIGEST, None),
])
def test_source_tag(name, tag):
    assert ipu.source_tag(name) == tag


@pytest.mark.parametrize("name, words", [
    ("", ["name: must be a local image"]),
    ("Web:1", ["name 'Web'", "not a valid image name"]),
    ("web:.bad", ["not a valid image tag"]),
    ("web:1@" + DIGEST, ["both a tag and a digest"]),
])
def test_source_tag_refused(name, words):
    assert_refused(ipu.source_tag, name, words=words)


@pytest.mark.parametrize("name, tag, want", [
    ("web:s1", None, "s1"),
    ("web:s1", "other", "other"),
    (OTHER, "by-id", "by-id"),
])
def test_push_tag(name, tag, want):
    assert ipu.push_tag(name, tag) == want


@pytest.mark.parametrize("name, tag, words", [
    (OTHER, None, ["tag: name", "has no tag to push as"]),
    ("web@" + DIGEST, None, ["has no tag to push as"]),
    ("web:s1", "-bad", ["tag '-bad'", "not a valid image tag"]),
])
def test_push_tag_refused(name, tag, words):
    assert_refused(ipu.push_tag, name, tag, words=words)


@pytest.mark.parametrize("repository", [REPO, "localhost:5000/web", "docker.io/team/web", "127.0.0.1:5599/a/b/c"])
def test_repository_accepted(repository):
    ipu.check_repository(repository)


@pytest.mark.parametrize("repository, words", [
    ("team/web", ["names no registry host", "docker.io/team/web"]),
    ("web", ["names no registry host", "docker.io/team/web"]),
    (REPO + ":1", ["has a tag", "the tag in tag"]),
    (REPO + "@" + DIGEST, ["has a digest"]),
    ("registry.example.com/Team/web", ["not a valid image name"]),
    ("", ["repository: must be a repository"]),
])
def test_repository_refused(repository, words):
    assert_refused(ipu.check_repository, repository, words=words)


@pytest.mark.parametrize("digests, repository, remote, want", [
    ([REPO + "@" + DIGEST], REPO, DIGEST, True),
    ([REPO + "@" + OTHER], REPO, DIGEST, False),
    (["registry.example.com:5000/team/api@" + DIGEST], REPO, DIGEST, False),
    ([REPO + "@" + DIGEST], REPO, reg.ABSENT, False),
    ([REPO + "@" + DIGEST], REPO, None, False),
    ([], REPO, DIGEST, False),
    (["team/web@" + DIGEST], "docker.io/team/web", DIGEST, True),
    (["nginx@" + DIGEST], "docker.io/library/nginx", DIGEST, True),
])
def test_up_to_date(digests, repository, remote, want):
    assert ipu.up_to_date(digests, repository, remote) is want


X509 = 'Get "https://registry.example.com:5000/v2/": x509: certificate signed by unknown authority'


@pytest.mark.parametrize("kind, username, words", [
    ("auth", "deploy", ["username, password: the registry registry.example.com:5000 refused the credentials of "
                        "user 'deploy'", "may push to %s" % REPO]),
    ("auth", None, ["username, password:", "requires credentials", "the push uses them for this push only"]),
    ("tls", "deploy", ["repository: the docker engine does not trust",
                       "/etc/docker/certs.d/registry.example.com:5000/ca.crt"]),
    ("http", "deploy", ["repository: the registry registry.example.com:5000 answers plain HTTP"]),
    ("unreachable", "deploy", ["repository: the docker engine cannot reach the registry registry.example.com:5000",
                               "port in repository"]),
    ("missing", "deploy", ["repository: the registry registry.example.com:5000 does not know %s" % REPO]),
    ("other", "deploy", ["repository: pushing %s:s1 to the registry registry.example.com:5000 failed" % REPO]),
])
def test_push_messages_name_the_option_and_the_fix(kind, username, words):
    msg = reg.registry_error(REPO + ":s1", "ENGINE TEXT", kind, username, option="repository", verb="push")
    for word in words:
        assert word in msg
    assert "ENGINE TEXT" in msg


class FakeModule(object):
    def __init__(self, params, api=None):
        self.params = dict(dict(username=None, password=None, tag=None, timeout=300), **params)
        self.check_mode = False
        self.diff_mode = False
        self.step = None
        self.client = FakeClient(api)
        self.module = self
        self.warnings = []

    def warn(self, text):
        self.warnings.append(text)

    def error_message(self, exc):
        return "%s failed: %s" % (self.step, exc)


def pusher(api):
    p = ipu.Pusher(FakeModule(dict(name="web:s1", repository=REPO, username="deploy", password=PASSWORD), api))
    p.ref = REPO + ":s1"
    return p


@pytest.mark.parametrize("api, want, warned", [
    (InspectApi(answer={"Descriptor": {"digest": DIGEST}}), DIGEST, False),
    (InspectApi(error=docker_errors.NotFound("404", explanation="manifest unknown: manifest unknown")), reg.ABSENT,
     False),
    (InspectApi(error=docker_errors.NotFound("404", explanation="name unknown: repository name not known")),
     reg.ABSENT, False),
    (InspectApi(version="1.29"), None, True),
    (InspectApi(error=docker_errors.APIError("500", explanation="schema1 manifest, token %s" % PASSWORD)), None,
     True),
])
def test_the_registry_digest_before_a_push(api, want, warned):
    run = pusher(api)
    assert run.remote_digest("push", "pushing it", absent_ok=True) == want
    assert bool(run.am.warnings) is warned
    assert all(PASSWORD not in w for w in run.am.warnings)


def test_refused_credentials_fail_before_the_push_and_are_scrubbed():
    error = docker_errors.APIError("401", explanation="unauthorized: bad password %s" % PASSWORD)
    with pytest.raises(AppfleetError) as err:
        pusher(InspectApi(error=error)).remote_digest("push", "pushing it", absent_ok=True)
    assert err.value.msg.startswith("username, password: the registry registry.example.com:5000 refused")
    assert PASSWORD not in err.value.msg and "w0rd" not in err.value.msg


def test_logic_scrubs_any_other_error(monkeypatch):
    """An error that is not a registry one (an OS error, say) is scrubbed on the module's one way out."""
    def boom(_self):
        raise OSError("cannot read %s" % PASSWORD)

    monkeypatch.setattr(ipu.Pusher, "run", boom)
    with pytest.raises(AppfleetError) as err:
        ipu.logic(FakeModule(dict(name="web:s1", repository=REPO, username="deploy", password=PASSWORD)))
    assert PASSWORD not in err.value.msg and reg.MASK in err.value.msg


@pytest.mark.parametrize("ref, words", [
    ("web@" + DIGEST, ["tag_as", "is a digest"]),
    ("web", ["tag_as", "neither a tag nor a digest"]),
    ("Web:1", ["tag_as", "not a valid image name"]),
])
def test_tag_as_needs_a_tag(ref, words):
    assert_refused(ip.tag_reference, "tag_as", ref, words=words)


def test_tag_as_reference():
    assert ip.tag_reference("tag_as", "web:3f2a9c1d0b7e") == ("web", "3f2a9c1d0b7e")
