# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Image references: the one parser of ``[registry/]repository[:tag][@digest]`` of the collection.

Private to this collection (leading underscore): not a public API.

The rules are Docker's reference grammar (distribution/reference): a repository path of
lowercase components joined by ``/``, each component letters and digits separated by
``.``, ``_``, ``__`` or dashes; a registry host first when the first component has a ``.``
or a ``:`` or is ``localhost``; a tag ``[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}``; a digest
``sha256:`` and 64 lowercase hex digits. ``name:tag@sha256:...`` is one reference (the
digest decides, the tag is informative). Every module that takes an image reference,
and the apps role's model, read it through ``parse_image_ref`` or the checks below.
"""

from __future__ import annotations

import re
from collections import namedtuple

DOCKER_HUB = "docker.io"
# The names Docker Hub goes by in a reference; registry_logins and the bases use docker.io.
DOCKER_HUB_ALIASES = ("index.docker.io", "registry-1.docker.io", "registry.hub.docker.com")
# A repository name (registry host included) is at most this long, as the engine counts it.
NAME_MAX_LENGTH = 255

_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = r"(?:%s(?:\.%s)*|\[[0-9a-fA-F:.]+\])(?::[0-9]{1,5})?" % (_DOMAIN_COMPONENT, _DOMAIN_COMPONENT)
# \Z, not $: "$" also matches before a trailing newline.
REGISTRY_RE = re.compile(r"^%s\Z" % _DOMAIN)
PATH_RE = re.compile(r"^%s(?:/%s)*\Z" % (_PATH_COMPONENT, _PATH_COMPONENT))
NAME_RE = re.compile(r"^(?:%s/)?%s(?:/%s)*\Z" % (_DOMAIN, _PATH_COMPONENT, _PATH_COMPONENT))
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}\Z")
# A local image id: sha256:<64 hex>, or 64 hex.
IMAGE_ID_RE = re.compile(r"^(?:sha256:)?[0-9a-f]{64}\Z")

EXAMPLE = "registry.example.com/team/web:1"


class ImageRef(namedtuple("ImageRef", "registry repository tag digest")):
    """A parsed reference: ``registry`` None when the reference names none (Docker Hub),
    ``repository`` the path below the registry, ``tag`` and ``digest`` None when absent."""

    __slots__ = ()

    @property
    def name(self):
        """The repository as written: ``registry/repository`` or ``repository``."""
        return "%s/%s" % (self.registry, self.repository) if self.registry else self.repository

    @property
    def host(self):
        """The registry the engine asks: ``docker.io`` when the reference names none."""
        return normal_registry(self.registry or DOCKER_HUB)

    def __str__(self):
        return self.name + (":" + self.tag if self.tag else "") + ("@" + self.digest if self.digest else "")


def split_ref(text):
    """``reg:5000/team/web:1@sha256:..`` -> (``reg:5000/team/web``, ``1``, ``sha256:..``);
    None for the parts absent. Lexical only: nothing is checked."""
    text = text or ""
    name, sep, digest = text.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    tag = None
    if colon > slash:
        name, tag = name[:colon], name[colon + 1:]
    return name, tag, digest if sep else None


def is_registry_host(component):
    """True when the first component of a name is a registry host, as the engine decides it."""
    return "." in component or ":" in component or component == "localhost"


def split_registry(name):
    """(registry or None, repository path) of a repository name."""
    first, sep, rest = name.partition("/")
    if sep and is_registry_host(first):
        return first, rest
    return None, name


def parse_image_ref(text):
    """The ImageRef of ``text``; ValueError with a lowercase message saying what is wrong.

    A tag, a digest, both or neither may be given: whether one is required is the
    caller's rule.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("an image reference must be a non-empty string, e.g. %s" % EXAMPLE)
    name, tag, digest = split_ref(text)
    registry, repository = split_registry(name)
    if registry is not None and not REGISTRY_RE.match(registry):
        raise ValueError("%r: registry host %r is not a host name or address with an optional :port, "
                         "e.g. %s" % (text, registry, EXAMPLE))
    if not repository or len(name) > NAME_MAX_LENGTH or not PATH_RE.match(repository):
        raise ValueError("%r: repository %r is not valid: use lowercase letters and digits, with . _ __ "
                         "or - between them and / between path components, at most %d characters with "
                         "the registry host, e.g. %s" % (text, repository, NAME_MAX_LENGTH, EXAMPLE))
    if tag is not None and not TAG_RE.match(tag):
        raise ValueError("%r: tag %r is not valid: use up to 128 letters, digits, _ . -, not starting "
                         "with . or -" % (text, tag))
    if digest is not None and not DIGEST_RE.match(digest):
        raise ValueError("%r: digest %r is not valid: use sha256: and 64 lowercase hex digits"
                         % (text, digest))
    return ImageRef(registry, repository, tag, digest)


def name_error(option, value):
    """None when ``value`` is a valid image repository name (no tag, no digest), else a message."""
    if not value or len(value) > NAME_MAX_LENGTH or not NAME_RE.match(value):
        return ("%s %r is not a valid image name: use lowercase letters, digits and . _ - "
                "separators, optionally prefixed by a registry host and / (e.g. web or "
                "registry.example.com/team/web), and no tag" % (option, value))
    return None


def tag_error(option, value):
    """None when ``value`` is a valid tag, else a message."""
    if not TAG_RE.match(value or ""):
        return ("%s %r is not a valid image tag: use up to 128 letters, digits, _ . -, "
                "not starting with . or -" % (option, value))
    return None


def is_image_id(ref):
    """True for a bare image id (``sha256:<64 hex>`` or 64 hex): no registry has it."""
    return bool(IMAGE_ID_RE.match(ref or ""))


def image_error(option, value):
    """None when ``value`` is an image id or a valid reference, else a message naming ``option``."""
    if is_image_id(value):
        return None
    try:
        parse_image_ref(value)
    except ValueError as exc:
        return "%s %s" % (option, exc)
    return None


def registry_host(name):
    """The registry of a repository name, as the engine decides it: ``docker.io`` when it names none."""
    return split_registry(name)[0] or DOCKER_HUB


def normal_registry(host):
    """``host`` lowercased, with Docker Hub's other names as ``docker.io``."""
    host = (host or "").lower()
    return DOCKER_HUB if host in DOCKER_HUB_ALIASES else host


def familiar(ref):
    """``ref`` as the engine shows it (RepoTags, RepoDigests): Docker Hub's host left out, and
    ``library/`` before a single component: ``docker.io/library/busybox:1`` is ``busybox:1``."""
    registry, rest = split_registry(ref)
    if registry is not None and normal_registry(registry) == DOCKER_HUB:
        ref = rest
    if ref.startswith("library/") and "/" not in ref[len("library/"):]:
        ref = ref[len("library/"):]
    return ref


def default_app(name):
    """The app name of an image repository name: its last path component."""
    return name.rsplit("/", 1)[-1]
