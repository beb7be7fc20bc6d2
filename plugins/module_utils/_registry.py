# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What image_pull, image_push and image_build's base pulls share with a registry, and the push itself.

Private to this collection (leading underscore): not a public API.

The credentials go to the engine as each call's ``X-Registry-Auth`` header (the SDK's
``auth_config``); nothing is written to a docker config file. Every text that leaves a
module (message, warning, result) goes through ``scrub`` first, so the password never does.
Registry errors are classified once (``error_kind``) and told the same way (``registry_error``).
"""

from __future__ import annotations

import base64
import json
import re

from urllib.parse import quote, quote_plus

from ansible_collections.appfleet.docker.plugins.module_utils._docker import (
    APIError,
    AppfleetError,
    DockerException,
    NotFound,
    RequestException,
    api_version_tuple,
)
from ansible_collections.appfleet.docker.plugins.module_utils._image_ref import registry_host, split_ref
from ansible_collections.appfleet.docker.plugins.module_utils._stream import read_stream_within

ABSENT = "absent"
MASK = "********"
# The engine's Engine API has the distribution inspect endpoint from this version on.
DISTRIBUTION_API = (1, 30)
CERTS_DIR = "/etc/docker/certs.d"

# What a registry error is, from the engine's text (lowercased), first match wins.
# The TLS and reachability checks come before the credential ones: a TLS error's text
# may mention a certificate "authority", an unreachable host's a "denied" connection.
_KINDS = (
    ("tls", ("x509:", "certificate signed by unknown authority", "tls: failed to verify",
             "certificate is not valid", "certificate has expired", "certificate is valid for")),
    ("http", ("server gave http response to https client",)),
    ("unreachable", ("connection refused", "no such host", "i/o timeout", "no route to host",
                     "network is unreachable", "tls handshake timeout", "connection reset by peer",
                     "dial tcp", "server misbehaving", "temporary failure in name resolution",
                     "context deadline exceeded", "client.timeout exceeded", "eof")),
    ("auth", ("unauthorized", "authentication required", "no basic auth credentials",
              "access to the resource is denied", "pull access denied", "incorrect username or password",
              "access denied", "denied:")),
    ("missing", ("manifest unknown", "name unknown", "not found", "does not exist",
                 "no such image", "blob unknown", "no matching manifest")),
)


def secret_forms(username, password):
    """The forms in which ``password`` could appear in a text: as is, escaped, encoded."""
    if not password:
        return []
    forms = {password, json.dumps(password)[1:-1], quote(password, safe=""), quote_plus(password, safe="")}
    basic = "%s:%s" % (username or "", password)
    forms.add(base64.b64encode(basic.encode("utf-8")).decode("ascii"))
    header = json.dumps(dict(username=username, password=password)).encode("utf-8")
    forms.add(base64.urlsafe_b64encode(header).decode("ascii"))
    return sorted((f for f in forms if f), key=len, reverse=True)


def scrub(value, forms):
    """``value`` (a str, or lists and dicts of them) with every form of the secret masked."""
    if isinstance(value, str):
        for form in forms:
            value = value.replace(form, MASK)
        return value
    if isinstance(value, dict):
        return dict((scrub(k, forms), scrub(v, forms)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [scrub(v, forms) for v in value]
    return value


def error_kind(text, not_found=False):
    """tls, http, unreachable, auth, missing or other, for an engine error text."""
    low = (text or "").lower()
    for kind, needles in _KINDS:
        if kind == "unreachable":
            # eof is a word of its own ("unexpected EOF"), not part of another word.
            if any(n in low for n in needles if n != "eof") or re.search(r"\beof\b", low):
                return kind
        elif any(n in low for n in needles):
            return kind
    return "missing" if not_found else "other"


# What each verb's messages say: the gerund, the preposition before the registry, and
# the option that names the reference (for every failure but refused credentials).
_VERBS = dict(
    pull=dict(ing="pulling", to="from", may="pull"),
    push=dict(ing="pushing", to="to", may="push to"),
)


def registry_error(ref, text, kind, username, option="name", verb="pull"):
    """The message for a failed pull or push (or distribution inspect) of ``ref``; ``text`` is the engine's, scrubbed.

    ``option`` is the option that names the reference (``name`` for a pull, ``repository``
    for a push); ``verb`` is ``pull`` or ``push``.
    """
    words = _VERBS[verb]
    repo = split_ref(ref)[0]
    host = registry_host(repo)
    if kind == "auth":
        if username:
            return ("username, password: the registry %s refused the credentials of user %r for %s (%s); "
                    "check username and password, and that this user may %s %s"
                    % (host, username, ref, text, words["may"], repo))
        return ("username, password: the registry %s requires credentials for %s (%s); set username "
                "and password (the %s uses them for this %s only)" % (host, ref, text, verb, verb))
    if kind == "missing":
        if verb == "push":
            return ("%s: the registry %s does not know %s (%s); check the repository, and that it exists "
                    "on the registry or the registry creates repositories on push" % (option, host, repo, text))
        return ("%s: %s was not found in the registry %s (%s); check the repository and the tag or "
                "digest, and that the image was pushed" % (option, ref, host, text))
    if kind == "tls":
        return ("%s: the docker engine does not trust the TLS certificate of the registry %s (%s); put "
                "the registry's CA certificate at %s/%s/ca.crt on this host (the engine role's "
                "engine_registry_cas does it), or fix the registry's certificate"
                % (option, host, text, CERTS_DIR, host))
    if kind == "http":
        return ("%s: the registry %s answers plain HTTP, not HTTPS (%s); give it a TLS certificate "
                "(and its CA at %s/%s/ca.crt on this host)" % (option, host, text, CERTS_DIR, host))
    # Without credentials an engine that falls back to plain HTTP (an insecure registry) reports a
    # registry's refusal as a reset or refused connection: say that credentials may be the cause.
    hint = "" if username else "; no username and password were given: if the registry requires them, set them"
    if kind == "unreachable":
        return ("%s: the docker engine cannot reach the registry %s (%s); check the registry host and "
                "port in %s, that the registry runs, and this host's network and DNS%s"
                % (option, host, text, option, hint))
    return "%s: %s %s %s the registry %s failed: %s%s" % (option, words["ing"], ref, words["to"], host, text, hint)


def exc_text(exc):
    """The engine's explanation of an SDK error, else its text."""
    return str(getattr(exc, "explanation", None) or exc)


def local_image(client, ref):
    """(id, RepoDigests) of the local image ``ref``; (None, []) when absent."""
    try:
        info = client.api.inspect_image(ref)
    except NotFound:
        return None, []
    return info["Id"], sorted(info.get("RepoDigests") or [])


def has_digest(repo_digests, digest):
    """True when one of the image's RepoDigests (``repo@sha256:..``) is ``digest``."""
    return any(d.rpartition("@")[2] == digest for d in repo_digests or [])


def stream_error(message):
    """The error of one decoded message of the pull stream, or None."""
    if not isinstance(message, dict):
        return None
    return message.get("error") or (message.get("errorDetail") or {}).get("message") or None


def read_stream(open_stream, timeout, thread="appfleet-stream"):
    """Read the decoded messages of ``open_stream()`` (an engine pull or push) within ``timeout`` s (wall clock).

    Returns (the engine's error text or None, True when the engine said 404, True when timed
    out, the ``aux`` payloads of the messages). The stream is read in a thread and given up on
    when the time is over, even while the engine sends nothing; the module then exits, which
    closes the connection, and the engine cancels the pull or push.
    """
    state = dict(error=None, not_found=False, aux=[])

    def on_message(message):
        error = stream_error(message)
        if error:
            state["error"] = error
        elif isinstance(message, dict) and isinstance(message.get("aux"), dict):
            state["aux"].append(message["aux"])

    try:
        if not read_stream_within(open_stream, on_message, timeout, thread):
            return None, False, True, []
    except APIError as exc:
        # The engine refused before streaming: the registry's answer, mostly.
        state["error"] = exc_text(exc)
        state["not_found"] = isinstance(exc, NotFound)
    return state["error"], state["not_found"], False, state["aux"]


def push_stream(client, repository, tag, auth, timeout):
    """Push ``repository:tag`` within ``timeout`` seconds (wall clock), see read_stream.

    Returns (the engine's error text or None, True when the engine said 404, True when timed
    out, the manifest digest from the push's ``aux`` message or None).
    """
    error, not_found, timed_out, aux = read_stream(
        lambda: client.api.push(repository, tag=tag, auth_config=auth, stream=True, decode=True),
        timeout, "appfleet-push")
    digests = [a.get("Digest") for a in aux if a.get("Digest")]
    return error, not_found, timed_out, (digests[-1] if digests else None)


def distribution_digest(client, ref, auth):
    """The registry's manifest digest of ``ref`` through the engine's distribution inspect.

    Returns (digest, None, False); (None, the engine's error text, True when it said 404)
    when the engine answered with an error. The caller checks the engine's API version first.
    """
    try:
        data = client.api.inspect_distribution(ref, auth_config=auth)
    except APIError as exc:  # the engine answered: the registry's error, or the engine's own
        return None, exc_text(exc), isinstance(exc, NotFound)
    return ((data or {}).get("Descriptor") or {}).get("digest"), None, False


class RegistryRun(object):
    """What a run against a registry shares: the credentials, the scrubbing, the distribution inspect.

    ``ref`` is the registry reference asked about (set by the subclass), ``option`` the
    option that names it, ``verb`` ``pull`` or ``push``.
    """

    option = "name"
    verb = "pull"

    def __init__(self, am, params=None):
        self.am = am
        self.params = p = params if params is not None else am.params
        self.ref = None
        self.username = p.get("username")
        self.auth = dict(username=p["username"], password=p["password"]) if p.get("username") else None
        self.forms = secret_forms(p.get("username"), p.get("password"))

    def fail(self, text, kind):
        raise AppfleetError(scrub(registry_error(self.ref, scrub(text, self.forms), kind, self.username,
                                                 self.option, self.verb), self.forms))

    def warn(self, text):
        self.am.module.warn(scrub(text, self.forms))

    def remote_digest(self, purpose="check mode", consequence="reported as changed", absent_ok=False):
        """The registry's manifest digest of ``ref``, or None with a warning when it cannot be asked.

        The warning starts with ``purpose`` and ends with ``consequence`` (what the caller does then).
        With ``absent_ok`` a reference the registry does not know gives ABSENT.

        A registry error that a pull or push would meet too (credentials, unknown reference,
        TLS, unreachable) fails, as the pull or push would.
        """
        client = self.am.client
        version = api_version_tuple(client.api.api_version)
        if version < DISTRIBUTION_API:
            self.warn(
                "%s: the docker engine's API %s has no distribution inspect (it needs %d.%d), so "
                "whether %s changed on the registry is unknown; %s"
                % (purpose, client.api.api_version, DISTRIBUTION_API[0], DISTRIBUTION_API[1], self.ref, consequence))
            return None
        digest, error, not_found = distribution_digest(client, self.ref, self.auth)
        if error is None:
            return digest
        text = scrub(error, self.forms)
        kind = error_kind(text, not_found)
        if kind == "missing" and absent_ok:
            return ABSENT
        if kind != "other":
            self.fail(text, kind)
        self.warn(
            "%s: the docker engine could not inspect %s on its registry (%s), so whether it "
            "changed there is unknown; %s" % (purpose, self.ref, text, consequence))
        return None


def run_scrubbed(am, runner):
    """``runner.run()`` (a RegistryRun), with every form of its password masked in a failure too."""
    try:
        return runner.run()
    except (AppfleetError, DockerException, RequestException, EnvironmentError) as exc:  # HANDLED_ERRORS
        # The password never leaves the module: not in a message built from an engine text either.
        raise AppfleetError(scrub(am.error_message(exc), runner.forms),
                            **scrub(getattr(exc, "result", {}), runner.forms))
