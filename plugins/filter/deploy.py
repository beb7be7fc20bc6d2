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


def deploy_plan(apps):
    """What deploy_state needs to know about the apps the deploy would run.

    ``apps``: the effective apps of the app model (``app_model(...).apps``), which owns
    their checkout and key paths, versions (a pin wins) and base refresh. ``sources``:
    per app built from git, its checkout, repository and version and the deploy key and
    known hosts files the role installs; ``mutable_images``: the apps that run an image
    by tag; ``refresh_bases``: the apps built from git whose base images are refreshed;
    ``files``: the controller files whose content goes into the fingerprint (deploy
    keys, certificates), as absolute paths.
    """
    if not isinstance(apps, list):
        raise AnsibleFilterError("deploy_plan: give the effective apps of appfleet.docker.app_model")
    plan = {"sources": [], "mutable_images": [], "refresh_bases": [], "files": []}
    for app in apps:
        if app["state"] == "absent":
            continue
        if app["kind"] == "source":
            source = app["source"]
            entry = {"app": app["name"], "checkout": app["src"], "repo": source["repo"], "version": app["version"]}
            if source.get("key_file"):
                entry["key_file"] = app["key"]
            if source.get("known_hosts"):
                entry["known_hosts"] = app["known_hosts"]
            plan["sources"].append(entry)
            if app["build"]["base_refresh"]:
                plan["refresh_bases"].append(app["name"])
        elif app["kind"] == "image" and not app.get("pinned"):
            plan["mutable_images"].append({"app": app["name"], "image": app["image"]})
        plan["files"].extend(entry["path"] for entry in app["controller_files"])
    return plan


# Options of the roles' main entry points that are not inputs of a deploy: how an
# image reaches a host (build once), who runs it, where the inputs are read from,
# which apps this run selects, and values the role derives from the inputs.
NOT_INPUTS = frozenset([
    "apps_archive_controller_dir", "apps_archive_dir", "apps_build_once", "apps_build_registry",
    "apps_release_by", "apps_base_dir", "apps_only", "apps_plan_force", "apps_plan_group",
    "apps_absent_names", "apps_model_checked",
])


def deploy_input_names(roles, root=_ROOT):
    """The variables whose values go into the fingerprint: every option of the main entry
    point of each of ``roles`` (their meta/argument_specs.yml), less NOT_INPUTS. Listed, so
    that what a run registers or sets is never an input by accident."""
    import yaml  # ansible-core's own dependency; imported where it is needed

    names = set()
    for role in roles:
        path = os.path.join(root, "roles", role, "meta", "argument_specs.yml")
        try:
            with open(path) as handle:
                spec = yaml.safe_load(handle)
            names.update(spec["argument_specs"]["main"]["options"])
        except (IOError, OSError, KeyError, TypeError, yaml.YAMLError) as exc:
            raise AnsibleFilterError("deploy_input_names: cannot read the options of role %s from %s: %s"
                                     % (role, path, exc))
    return sorted(names - NOT_INPUTS)


class FilterModule(object):
    def filters(self):
        return {"deploy_fingerprint": deploy_fingerprint, "deploy_plan": deploy_plan,
                "deploy_input_names": deploy_input_names}
