"""Pure parts of image_pull: references, scrubbing of the password, registry error messages."""

from __future__ import annotations

import time

import pytest
from docker import errors as docker_errors

from ansible_collections.appfleet.docker.plugins.module_utils import _image_pull as ip
from ansible_collections.appfleet.docker.plugins.module_utils import _registry as reg
from ansible_collections.appfleet.docker.plugins.module_utils._docker import AppfleetError

from .docker_api_fakes import FakeClient, InspectApi, StreamApi

DIGEST = "sha256:" + "1780c68e28f29652181ce4f584e896857fe950f26f11553464e550db9b521523"
PASSWORD = 'p@ss w0rd/"x"+%&=;'


@pytest.mark.parametrize("ref, want", [
    ("git:5000/lab/hello:1", ("git:5000/lab/hello", "1", None)),
    ("registry.example.com/team/web@" + DIGEST, ("registry.example.com/team/web", None, DIGEST)),
    ("web:src-0123abcd", ("web", "src-0123abcd", None)),
    ("localhost:5000/web:v1.2_3", ("localhost:5000/web", "v1.2_3", None)),
    ("127.0.0.1:5599/afa/a-b__c.d:x", ("127.0.0.1:5599/afa/a-b__c.d", "x", None)),
])
def test_reference_with_a_tag_or_a_digest(ref, want):
    assert ip.parse_reference("name", ref) == want


@pytest.mark.parametrize("ref, words", [
    ("git:5000/lab/hello", ["name 'git:5000/lab/hello'", "neither a tag nor a digest", "git:5000/lab/hello:1",
                            "implicit latest"]),
    ("web", ["name 'web'", "neither a tag nor a digest"]),
    ("registry.example.com/team/web:1@" + DIGEST, ["both a tag and a digest", "registry.example.com/team/web@sha256"]),
    ("registry.example.com/team/web@sha256:abc", ["is not a digest", "sha256:abc"]),
    ("Registry.example.com/Team/Web:1", ["is not a valid image name", "then :tag or @digest"]),
    ("web:-bad", ["is not a valid image tag"]),
    ("", ["name: must be an image reference with a tag or a digest"]),
])
def test_reference_refused_naming_name(ref, words):
    with pytest.raises(AppfleetError) as err:
        ip.parse_reference("name", ref)
    for word in words:
        assert word in err.value.msg
    assert err.value.msg.startswith("name")


NAME = "registry.example.com:5000/team/web:1"


@pytest.mark.parametrize("kind, username, words", [
    ("auth", "deploy", ["username, password:", "registry.example.com:5000 refused the credentials of user "
                        "'deploy'", "check username and password"]),
    ("auth", None, ["username, password:", "requires credentials", "set username and password"]),
    ("missing", None, ["name: registry.example.com:5000/team/web:1 was not found in the registry "
                       "registry.example.com:5000", "check the repository and the tag or digest"]),
    ("tls", None, ["does not trust the TLS certificate of the registry registry.example.com:5000",
                   "/etc/docker/certs.d/registry.example.com:5000/ca.crt", "engine_registry_cas"]),
    ("http", None, ["answers plain HTTP", "/etc/docker/certs.d/registry.example.com:5000/ca.crt"]),
    ("unreachable", None, ["cannot reach the registry registry.example.com:5000"]),
    ("other", None, ["pulling registry.example.com:5000/team/web:1 from the registry registry.example.com:5000 "
                     "failed: ENGINE TEXT"]),
])
def test_messages_name_the_option_and_the_fix(kind, username, words):
    msg = ip.pull_error(NAME, "ENGINE TEXT", kind, username)
    for word in words:
        assert word in msg
    assert "ENGINE TEXT" in msg
    assert msg[0].islower()


def test_messages_without_credentials_say_they_may_be_the_cause():
    assert "no username and password were given" in ip.pull_error(NAME, "x", "unreachable", None)
    assert "no username and password were given" not in ip.pull_error(NAME, "x", "unreachable", "deploy")


def test_message_for_docker_hub_names_docker_io():
    assert "registry docker.io" in ip.pull_error("team/web:1", "x", "unreachable", None)


class FakeModule(object):
    def __init__(self, params):
        self.params = dict(dict(username=None, password=None, policy="always", timeout=300), **params)
        self.check_mode = False
        self.diff_mode = False
        self.step = None

    def error_message(self, exc):
        return "%s failed: %s" % (self.step, exc)


def test_fail_scrubs_the_password_from_an_engine_text():
    """An engine text that echoes the password (a registry that prints what it got) never reaches the message."""
    puller = ip.Puller(FakeModule(dict(name=NAME, username="deploy", password=PASSWORD)))
    with pytest.raises(AppfleetError) as err:
        puller.fail("unauthorized: bad password %s for deploy" % PASSWORD, "auth")
    assert PASSWORD not in err.value.msg and "w0rd" not in err.value.msg
    assert reg.MASK in err.value.msg and "'deploy'" in err.value.msg


def test_logic_scrubs_any_other_error():
    """An error that is not a registry one (an OS error, say) is scrubbed on the module's one way out."""
    am = FakeModule(dict(name=NAME, username="deploy", password=PASSWORD))

    def boom():
        raise OSError("cannot write %s" % PASSWORD)

    original = ip.Puller.run
    ip.Puller.run = lambda self: boom()
    try:
        with pytest.raises(AppfleetError) as err:
            ip.logic(am)
    finally:
        ip.Puller.run = original
    assert PASSWORD not in err.value.msg and reg.MASK in err.value.msg


def test_pull_stream_passes_the_credentials_as_this_pulls_auth_config():
    api = StreamApi([{"status": "Downloaded newer image"}])
    auth = dict(username="deploy", password=PASSWORD)
    assert ip.pull_stream(FakeClient(api), NAME, auth, 5) == (None, False, False)
    assert api.calls == [dict(name=NAME, auth_config=auth, stream=True, decode=True)]


def test_pull_stream_reports_the_streamed_error():
    api = StreamApi([{"status": "Pulling"}, {"error": "manifest unknown", "errorDetail": {"message": "manifest unknown"}}])
    assert ip.pull_stream(FakeClient(api), NAME, None, 5) == ("manifest unknown", False, False)


def test_pull_stream_is_a_total_time_limit():
    """A pull whose engine goes silent is given up on after timeout, not after the silence ends."""
    api = StreamApi([{"status": "Pulling"}] * 3, pause=2.0)
    started = time.monotonic()
    assert ip.pull_stream(FakeClient(api), NAME, None, 0.3) == (None, False, True)
    assert time.monotonic() - started < 1.5


@pytest.mark.parametrize("error, want", [
    (docker_errors.NotFound("404 Client Error", explanation="manifest unknown: manifest unknown"),
     ("manifest unknown: manifest unknown", True, False)),
    (docker_errors.APIError("500 Server Error", explanation="unauthorized: authentication required"),
     ("unauthorized: authentication required", False, False)),
])
def test_pull_stream_reports_the_engines_refusal(error, want):
    assert ip.pull_stream(FakeClient(StreamApi(error=error)), NAME, None, 5) == want


class WarnModule(FakeModule):
    def __init__(self, params, api):
        super(WarnModule, self).__init__(params)
        self.client = FakeClient(api)
        self.warnings = []
        self.module = self

    def warn(self, text):
        self.warnings.append(text)


def test_check_mode_digest_from_the_distribution_inspect():
    api = InspectApi(answer={"Descriptor": {"digest": DIGEST}, "Platforms": []})
    am = WarnModule(dict(name=NAME, username="deploy", password=PASSWORD), api)
    assert ip.Puller(am).remote_digest() == DIGEST
    assert api.calls == [(NAME, dict(username="deploy", password=PASSWORD))]
    assert am.warnings == []


@pytest.mark.parametrize("api, words", [
    (InspectApi(version="1.29"), ["API 1.29 has no distribution inspect", "reported as changed"]),
    (InspectApi(error=docker_errors.APIError("500", explanation="schema1 manifest not supported, token %s"
                                             % PASSWORD)),
     ["could not inspect", "schema1 manifest not supported", "reported as changed"]),
])
def test_check_mode_without_an_inspect_warns_and_reports_changed(api, words):
    am = WarnModule(dict(name=NAME, username="deploy", password=PASSWORD), api)
    assert ip.Puller(am).remote_digest() is None
    assert len(am.warnings) == 1
    for word in words:
        assert word in am.warnings[0]
    assert PASSWORD not in am.warnings[0]


X509 = 'Get "https://registry.example.com:5000/v2/": x509: certificate signed by unknown authority'


@pytest.mark.parametrize("error, words", [
    (docker_errors.APIError("401", explanation="unauthorized: authentication required"), ["refused the credentials"]),
    (docker_errors.NotFound("404", explanation="manifest unknown: manifest unknown"), ["was not found"]),
    (docker_errors.APIError("500", explanation=X509), ["does not trust"]),
])
def test_check_mode_fails_where_the_pull_would(error, words):
    am = WarnModule(dict(name=NAME, username="deploy", password=PASSWORD), InspectApi(error=error))
    with pytest.raises(AppfleetError) as err:
        ip.Puller(am).remote_digest()
    for word in words:
        assert word in err.value.msg
    assert am.warnings == []
