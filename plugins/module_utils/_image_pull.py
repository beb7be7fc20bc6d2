# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What image_pull does: pull an image with credentials used for this one pull only.

Private to this collection (leading underscore): not a public API.

The credentials go to the engine as this pull's ``X-Registry-Auth`` header (the SDK's
``auth_config``); nothing is written to a docker config file. Every text that leaves the
module (message, warning, result) goes through ``scrub`` first, so the password never does.
"""

from __future__ import annotations

import base64
import json
import re
import threading

from urllib.parse import quote, quote_plus

from ansible_collections.appfleet.docker.plugins.module_utils._docker import (
    APIError,
    AppfleetError,
    DockerException,
    NotFound,
    RequestException,
    api_version_tuple,
)
from ansible_collections.appfleet.docker.plugins.module_utils._spec import name_error, tag_error

ABSENT = "absent"
MASK = "********"
# The engine's Engine API has the distribution inspect endpoint from this version on.
DISTRIBUTION_API = (1, 30)
# algorithm:encoded, as distribution/reference and opencontainers/go-digest accept it.
DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}\Z")
SHA256_RE = re.compile(r"^sha256:[0-9a-f]{64}\Z")
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


def split_name(ref):
    """``reg:5000/team/web:1@sha256:..`` -> (``reg:5000/team/web``, ``1``, ``sha256:..``); None for parts absent."""
    text = ref or ""
    digest = None
    if "@" in text:
        text, digest = text.split("@", 1)
    slash = text.rfind("/")
    colon = text.rfind(":")
    if colon > slash:
        return text[:colon], text[colon + 1:], digest
    return text, None, digest


def parse_reference(option, ref):
    """(repository, tag, digest) of an image reference with a tag or a digest; AppfleetError otherwise.

    Exactly one of tag and digest is set: a reference without either would mean
    ``latest`` implicitly, and one with both is ambiguous; both are refused.
    """
    if not isinstance(ref, str) or not ref.strip():
        raise AppfleetError("%s: must be an image reference with a tag or a digest, e.g. "
                            "registry.example.com/team/web:1" % option)
    repo, tag, digest = split_name(ref)
    if tag is None and digest is None:
        raise AppfleetError(
            "%s %r has neither a tag nor a digest; give one explicitly, e.g. %s:1 or %s@sha256:<digest> "
            "(an implicit latest is refused: it does not say which image a host runs)"
            % (option, ref, repo or "registry.example.com/team/web", repo or "registry.example.com/team/web"))
    if tag is not None and digest is not None:
        raise AppfleetError("%s %r has both a tag and a digest; give one of them, e.g. %s@%s"
                            % (option, ref, repo, digest))
    err = name_error(option, repo)
    if err:
        raise AppfleetError(err.replace(", and no tag", ", then :tag or @digest"))
    if tag is not None:
        err = tag_error(option, tag)
        if err:
            raise AppfleetError(err)
    elif not DIGEST_RE.match(digest):
        raise AppfleetError("%s %r: %r is not a digest; use sha256: and 64 lowercase hex digits"
                            % (option, ref, digest))
    return repo, tag, digest


def registry_host(repo):
    """The registry of a repository name, as the engine decides it: ``docker.io`` when it names none."""
    first, sep, _rest = repo.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


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


def pull_error(name, text, kind, username):
    """The message for a failed pull (or distribution inspect) of ``name``; ``text`` is the engine's, scrubbed."""
    repo = split_name(name)[0]
    host = registry_host(repo)
    if kind == "auth":
        if username:
            return ("username, password: the registry %s refused the credentials of user %r for %s (%s); "
                    "check username and password, and that this user may pull %s"
                    % (host, username, name, text, repo))
        return ("username, password: the registry %s requires credentials for %s (%s); set username "
                "and password (the pull uses them for this pull only)" % (host, name, text))
    if kind == "missing":
        return ("name: %s was not found in the registry %s (%s); check the repository and the tag or "
                "digest, and that the image was pushed" % (name, host, text))
    if kind == "tls":
        return ("name: the docker engine does not trust the TLS certificate of the registry %s (%s); put "
                "the registry's CA certificate at %s/%s/ca.crt on this host (the engine role's "
                "engine_registry_cas does it), or fix the registry's certificate"
                % (host, text, CERTS_DIR, host))
    if kind == "http":
        return ("name: the registry %s answers plain HTTP, not HTTPS (%s); give it a TLS certificate "
                "(and its CA at %s/%s/ca.crt on this host)" % (host, text, CERTS_DIR, host))
    # Without credentials an engine that falls back to plain HTTP (an insecure registry) reports a
    # registry's refusal as a reset or refused connection: say that credentials may be the cause.
    hint = "" if username else "; no username and password were given: if the registry requires them, set them"
    if kind == "unreachable":
        return ("name: the docker engine cannot reach the registry %s (%s); check the registry host and "
                "port in name, that the registry runs, and this host's network and DNS%s" % (host, text, hint))
    return "name: pulling %s from the registry %s failed: %s%s" % (name, host, text, hint)


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


def pull_stream(client, name, auth, timeout):
    """Pull ``name`` within ``timeout`` seconds (wall clock).

    Returns (the engine's error text or None, True when the engine said 404, True when timed out).
    The stream is read in a thread and given up on when the time is over, even while
    the engine sends nothing; the module then exits, which closes the connection, and
    the engine cancels the pull.
    """
    state = dict(error=None, not_found=False)
    crashes = []  # an error that is not the registry's (the engine gone ...), raised in the caller's thread

    def read():
        try:
            for message in client.api.pull(name, auth_config=auth, stream=True, decode=True):
                error = stream_error(message)
                if error:
                    state["error"] = error
        except APIError as exc:
            # The engine refused the pull before streaming: the registry's answer, mostly.
            state["error"] = exc_text(exc)
            state["not_found"] = isinstance(exc, NotFound)
        except Exception as exc:  # pylint: disable=broad-exception-caught  # re-raised below
            crashes.append(exc)

    reader = threading.Thread(target=read, name="appfleet-pull", daemon=True)
    reader.start()
    reader.join(timeout)
    if reader.is_alive():
        return None, False, True
    if crashes:
        raise crashes[0]
    return state["error"], state["not_found"], False


class Puller(object):
    """One run of image_pull: decide, then pull (or predict in check mode).

    ``params`` are image_pull's options (name, username, password, policy, timeout), the
    module's own by default; another module (image_build's base pulls) passes its own.
    """

    def __init__(self, am, params=None):
        self.am = am
        self.params = p = params if params is not None else am.params
        self.name = p["name"]
        self.username = p.get("username")
        self.auth = dict(username=p["username"], password=p["password"]) if p.get("username") else None
        self.forms = secret_forms(p.get("username"), p.get("password"))
        self.before = None

    def fail(self, text, kind):
        raise AppfleetError(scrub(pull_error(self.name, scrub(text, self.forms), kind, self.username), self.forms))

    def remote_digest(self, purpose="check mode", consequence="reported as changed"):
        """The registry's manifest digest of ``name``, or None with a warning when it cannot be asked.

        The warning starts with ``purpose`` and ends with ``consequence`` (what the caller does then).

        A registry error that a pull would meet too (credentials, unknown reference,
        TLS, unreachable) fails, as the pull would.
        """
        client = self.am.client
        version = api_version_tuple(client.api.api_version)
        if version < DISTRIBUTION_API:
            self.warn(
                "%s: the docker engine's API %s has no distribution inspect (it needs %d.%d), so "
                "whether %s changed on the registry is unknown; %s"
                % (purpose, client.api.api_version, DISTRIBUTION_API[0], DISTRIBUTION_API[1], self.name, consequence))
            return None
        try:
            data = client.api.inspect_distribution(self.name, auth_config=self.auth)
        except APIError as exc:  # the engine answered: the registry's error, or the engine's own
            text = scrub(exc_text(exc), self.forms)
            kind = error_kind(text, isinstance(exc, NotFound))
            if kind != "other":
                self.fail(text, kind)
            self.warn(
                "%s: the docker engine could not inspect %s on its registry (%s), so whether it "
                "changed there is unknown; %s" % (purpose, self.name, text, consequence))
            return None
        return ((data or {}).get("Descriptor") or {}).get("digest")

    def run(self):
        am = self.am
        p = self.params
        name = self.name
        digest = parse_reference("name", name)[2]
        if p["timeout"] <= 0:
            raise AppfleetError("timeout: must be greater than 0 (seconds)")
        am.step = "looking up %s on this host" % name
        before, before_digests = local_image(am.client, name)
        self.before = before
        if before is not None and (p["policy"] == "missing" or digest is not None):
            # Present, and the reference cannot move (a digest) or need not be refreshed.
            return self.result(False, before, before_digests, before)
        if am.check_mode:
            am.step = "asking the registry about %s" % name
            remote = self.remote_digest() if digest is None else digest
            changed = before is None or remote is None or not has_digest(before_digests, remote)
            predicted = before
            if changed:
                predicted = ("a new image (manifest %s)" % remote) if remote else "a new image"
            return self.result(changed, before, before_digests, predicted)
        am.step = "pulling %s" % name
        error, not_found, timed_out = pull_stream(am.client, name, self.auth, p["timeout"])
        if timed_out:
            raise AppfleetError(
                "timeout: pulling %s took longer than %s s and was stopped; %s is as it was; raise timeout, "
                "or check the registry %s and this host's network"
                % (name, p["timeout"], name, registry_host(split_name(name)[0])))
        if error:
            text = scrub(error, self.forms)
            self.fail(text, error_kind(text, not_found))
        am.step = "looking up %s after the pull" % name
        after, after_digests = local_image(am.client, name)
        if after is None:
            raise AppfleetError("name: the docker engine reported the pull of %s done, but %s is not on this "
                                "host; run again, and check the engine's log if it repeats" % (name, name))
        return self.result(after != before, after, after_digests, after)

    def result(self, changed, image_id, repo_digests, after):
        result = dict(changed=changed, image=dict(id=image_id, name=self.name, repo_digests=repo_digests))
        if self.am.diff_mode:
            result["diff"] = dict(before={self.name: self.before or ABSENT}, after={self.name: after or ABSENT})
        return scrub(result, self.forms)

    def warn(self, text):
        self.am.module.warn(scrub(text, self.forms))


def logic(am):
    puller = Puller(am)
    try:
        return puller.run()
    except (AppfleetError, DockerException, RequestException, EnvironmentError) as exc:  # HANDLED_ERRORS
        # The password never leaves the module: not in a message built from an engine text either.
        raise AppfleetError(scrub(am.error_message(exc), puller.forms),
                            **scrub(getattr(exc, "result", {}), puller.forms))
