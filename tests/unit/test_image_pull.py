"""Pure parts of image_pull: references, scrubbing of the password, registry error messages."""

from __future__ import annotations

import base64
import json
import time

import pytest
from docker import errors as docker_errors

from ansible_collections.appfleet.docker.plugins.module_utils import _image_pull as ip
from ansible_collections.appfleet.docker.plugins.module_utils._docker import AppfleetError

from .registry_fakes import FakeClient, InspectApi, StreamApi

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


def test_scrub_masks_every_form_of_the_password():
    forms = ip.secret_forms("deploy", PASSWORD)
    header = base64.urlsafe_b64encode(json.dumps(dict(username="deploy", password=PASSWORD)).encode()).decode()
    basic = base64.b64encode(("deploy:" + PASSWORD).encode()).decode()
    texts = [
        "plain %s end" % PASSWORD,
        "json %s end" % json.dumps(PASSWORD),
        "url https://deploy:%s@registry/v2/ end" % "p%40ss%20w0rd%2F%22x%22%2B%25%26%3D%3B",
        "form p%40ss+w0rd%2F%22x%22%2B%25%26%3D%3B end",
        "header X-Registry-Auth: %s end" % header,
        "basic Authorization: Basic %s end" % basic,
    ]
    for text in texts:
        out = ip.scrub(text, forms)
        assert ip.MASK in out
        assert "w0rd" not in out and header not in out and basic not in out, out
    nested = ip.scrub({"msg": [PASSWORD, {"k": "a " + PASSWORD}], "n": 3, PASSWORD: None}, forms)
    assert PASSWORD not in json.dumps(nested) and nested["n"] == 3


def test_scrub_without_a_password_changes_nothing():
    assert ip.secret_forms(None, None) == []
    assert ip.scrub("unauthorized: authentication required", []) == "unauthorized: authentication required"


# Texts as Engine 20.10 returns them (pull or distribution inspect), checked against a
# docker-registry 2.8 on 127.0.0.1; the TLS ones as Go's crypto/x509 words them.
ENGINE_TEXTS = [
    ("unauthorized: authentication required", False, "auth"),
    ('Head "https://127.0.0.1:5599/v2/afa/proto/manifests/1": no basic auth credentials', False, "auth"),
    ("pull access denied for team/web, repository does not exist or may require 'docker login': "
     "denied: requested access to the resource is denied", False, "auth"),
    ("manifest for 127.0.0.1:5599/afa/proto:nope not found: manifest unknown: manifest unknown", True, "missing"),
    ("manifest unknown: manifest unknown", True, "missing"),
    ("some text the classifier does not know", True, "missing"),
    ('Get "https://registry.example.com:5000/v2/": x509: certificate signed by unknown authority', False, "tls"),
    ('Get "https://registry.example.com/v2/": tls: failed to verify certificate: x509: certificate has '
     'expired or is not yet valid', False, "tls"),
    ('Get "https://10.0.0.5:5000/v2/": x509: cannot validate certificate for 10.0.0.5 because it doesn\'t '
     'contain any IP SANs', False, "tls"),
    ('Get "https://git:5000/v2/": http: server gave HTTP response to HTTPS client', False, "http"),
    ('Get "http://127.0.0.1:5598/v2/": dial tcp 127.0.0.1:5598: connect: connection refused', False, "unreachable"),
    ('Get "https://nohost.example:5000/v2/": dial tcp: lookup nohost.example on 10.0.0.2:53: no such host',
     False, "unreachable"),
    ('Get "https://registry.example.com/v2/": net/http: request canceled while waiting for connection '
     '(Client.Timeout exceeded while awaiting headers)', False, "unreachable"),
    ("read tcp 127.0.0.1:34508->127.0.0.1:5599: read: connection reset by peer", False, "unreachable"),
    ("unexpected EOF", False, "unreachable"),
    ("filesystem layer verification failed for digest sha256:abc", False, "other"),
]


@pytest.mark.parametrize("text, not_found, kind", ENGINE_TEXTS)
def test_error_kind(text, not_found, kind):
    assert ip.error_kind(text, not_found) == kind


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
    assert ip.MASK in err.value.msg and "'deploy'" in err.value.msg


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
    assert PASSWORD not in err.value.msg and ip.MASK in err.value.msg


@pytest.mark.parametrize("digests, digest, found", [
    (["r/web@" + DIGEST], DIGEST, True),
    (["other/repo@" + DIGEST], DIGEST, True),
    (["r/web@sha256:" + "0" * 64], DIGEST, False),
    ([], DIGEST, False),
])
def test_has_digest(digests, digest, found):
    assert ip.has_digest(digests, digest) is found


@pytest.mark.parametrize("message, error", [
    ({"status": "Pulling from afa/proto", "id": "1"}, None),
    ({"error": "unauthorized", "errorDetail": {"message": "unauthorized"}}, "unauthorized"),
    ({"errorDetail": {"message": "manifest unknown"}}, "manifest unknown"),
    ("not a dict", None),
])
def test_stream_error(message, error):
    assert ip.stream_error(message) == error


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
