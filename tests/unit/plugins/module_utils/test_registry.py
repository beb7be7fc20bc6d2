"""What image_pull, image_push and the base pulls share with a registry: scrubbing, errors, the push stream."""

from __future__ import annotations

import base64
import json
import time

import pytest
from docker import errors as docker_errors

from ansible_collections.appfleet.docker.plugins.module_utils import _registry as reg

from .docker_api_fakes import FakeClient, StreamApi

DIGEST = "sha256:" + "1780c68e28f29652181ce4f584e896857fe950f26f11553464e550db9b521523"
PASSWORD = 'p@ss w0rd/"x"+%&=;'
REPO = "registry.example.com:5000/team/web"


def test_scrub_masks_every_form_of_the_password():
    forms = reg.secret_forms("deploy", PASSWORD)
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
        out = reg.scrub(text, forms)
        assert reg.MASK in out
        assert "w0rd" not in out and header not in out and basic not in out, out
    nested = reg.scrub({"msg": [PASSWORD, {"k": "a " + PASSWORD}], "n": 3, PASSWORD: None}, forms)
    assert PASSWORD not in json.dumps(nested) and nested["n"] == 3


def test_scrub_without_a_password_changes_nothing():
    assert reg.secret_forms(None, None) == []
    assert reg.scrub("unauthorized: authentication required", []) == "unauthorized: authentication required"


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
    assert reg.error_kind(text, not_found) == kind


@pytest.mark.parametrize("digests, digest, found", [
    (["r/web@" + DIGEST], DIGEST, True),
    (["other/repo@" + DIGEST], DIGEST, True),
    (["r/web@sha256:" + "0" * 64], DIGEST, False),
    ([], DIGEST, False),
])
def test_has_digest(digests, digest, found):
    assert reg.has_digest(digests, digest) is found


@pytest.mark.parametrize("message, error", [
    ({"status": "Pulling from afa/proto", "id": "1"}, None),
    ({"error": "unauthorized", "errorDetail": {"message": "unauthorized"}}, "unauthorized"),
    ({"errorDetail": {"message": "manifest unknown"}}, "manifest unknown"),
    ("not a dict", None),
])
def test_stream_error(message, error):
    assert reg.stream_error(message) == error


def test_push_stream_reads_the_digest_with_this_pushs_credentials():
    api = StreamApi([{"status": "Pushed", "id": "1"},
                     {"status": "s1: digest: %s size: 528" % DIGEST},
                     {"progressDetail": {}, "aux": {"Tag": "s1", "Digest": DIGEST, "Size": 528}}])
    auth = dict(username="deploy", password=PASSWORD)
    assert reg.push_stream(FakeClient(api), REPO, "s1", auth, 5) == (None, False, False, DIGEST)
    assert api.calls == [dict(repository=REPO, tag="s1", auth_config=auth, stream=True, decode=True)]


def test_push_stream_reports_the_streamed_error():
    api = StreamApi([{"status": "The push refers to repository [%s]" % REPO},
                     {"errorDetail": {"message": "unauthorized: authentication required"},
                      "error": "unauthorized: authentication required"}])
    assert reg.push_stream(FakeClient(api), REPO, "s1", None, 5) == (
        "unauthorized: authentication required", False, False, None)


def test_push_stream_is_a_total_time_limit():
    api = StreamApi([{"status": "Pushing"}] * 3, pause=2.0)
    started = time.monotonic()
    assert reg.push_stream(FakeClient(api), REPO, "s1", None, 0.3) == (None, False, True, None)
    assert time.monotonic() - started < 1.5


def test_push_stream_reports_the_engines_refusal():
    error = docker_errors.NotFound("404", explanation="An image does not exist locally with the tag: " + REPO)
    assert reg.push_stream(FakeClient(StreamApi(error=error)), REPO, "s1", None, 5) == (
        "An image does not exist locally with the tag: " + REPO, True, False, None)
