# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fingerprint of a deploy's inputs, for appfleet.docker.deploy_state.

deploy.yml skips a host whose last complete deploy had the same fingerprint (and
whose state still matches it). The fingerprint therefore covers what the
playbook passes (the inventory's variables, key and certificate contents) and
the collection's own roles, templates and plugins, so that upgrading the
collection, or editing it in place, is never skipped.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import hashlib
import json
import os

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean

# The collection's root: plugins/filter/deploy.py -> ../..
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_PARTS = ("galaxy.yml", "MANIFEST.json", "meta", "plugins", "roles", "playbooks")
_DIGEST = []


def collection_digest(root=_ROOT):
    """sha256 over the paths and contents of the collection's files (computed once per run)."""
    if root == _ROOT and _DIGEST:
        return _DIGEST[0]
    digest = hashlib.sha256()
    for part in _PARTS:
        top = os.path.join(root, part)
        if os.path.isfile(top):
            paths = [top]
        else:
            paths = []
            for current, dirs, files in os.walk(top):
                dirs[:] = sorted(d for d in dirs if d != "__pycache__")
                paths.extend(os.path.join(current, name) for name in sorted(files) if not name.endswith(".pyc"))
        for path in paths:
            digest.update(os.path.relpath(path, root).encode("utf-8", "surrogateescape") + b"\0")
            with open(path, "rb") as handle:
                digest.update(hashlib.sha256(handle.read()).digest())
    value = digest.hexdigest()
    if root == _ROOT:
        _DIGEST.append(value)
    return value


def deploy_fingerprint(inputs):
    """sha256 of ``inputs`` (any JSON data, keys sorted) and of the collection's files."""
    try:
        text = json.dumps(inputs, sort_keys=True, separators=(",", ":"), default=str)
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError("deploy_fingerprint: the inputs are not JSON data: %s" % exc)
    return hashlib.sha256(("%s\n%s" % (collection_digest(), text)).encode("utf-8", "surrogateescape")).hexdigest()


def _present(apps):
    if not isinstance(apps, list):
        raise AnsibleFilterError("deploy_plan: appfleet_apps must be a list of apps")
    return [app for app in apps if isinstance(app, dict) and app.get("state", "present") != "absent"]


def deploy_plan(apps, src_dir, key_dir, versions=None, base_refresh=False):
    """What deploy_state needs to know about the apps the deploy would run.

    ``sources``: per app built from git, its checkout, repository and version (a pin in
    ``versions`` wins, as in the apps role) and the deploy key and known hosts files the
    role installs; ``mutable_images``: the apps that run an image by tag; ``refresh_bases``:
    the apps built from git whose base images are refreshed (their ``build.base_refresh``,
    else ``base_refresh``, the role's default); ``files``: the controller files whose
    content goes into the fingerprint (deploy keys, certificates).
    """
    versions = versions or {}
    plan = {"sources": [], "mutable_images": [], "refresh_bases": [], "files": []}
    for app in _present(apps):
        name = app.get("name")
        source = app.get("source")
        if isinstance(source, dict):
            entry = {"app": name, "checkout": "%s/%s" % (src_dir, name), "repo": source.get("repo"),
                     "version": str(versions.get(name, source.get("version", "main")))}
            if source.get("key_file"):
                entry["key_file"] = "%s/%s" % (key_dir, name)
                plan["files"].append(source["key_file"])
            if source.get("known_hosts"):
                entry["known_hosts"] = "%s/%s.known_hosts" % (key_dir, name)
            plan["sources"].append(entry)
            build = app.get("build") if isinstance(app.get("build"), dict) else {}
            # As the role reads it (| bool): "yes", "on", 1 ... are true.
            if boolean(build.get("base_refresh", base_refresh), strict=False):
                plan["refresh_bases"].append(name)
        elif app.get("image") and "@" not in str(app["image"]):
            plan["mutable_images"].append({"app": name, "image": str(app["image"])})
        proxy = app.get("proxy")
        tls = proxy.get("tls") if isinstance(proxy, dict) else None
        if isinstance(tls, dict):
            plan["files"].extend(tls[key] for key in ("certificate", "key") if tls.get(key))
    return plan


class FilterModule(object):
    def filters(self):
        return {"deploy_fingerprint": deploy_fingerprint, "deploy_plan": deploy_plan}
