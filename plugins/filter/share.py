# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build once: which host of the play gives an app's image to which (roles/apps/tasks/app.yml).

The first host of a deploy play that builds a commit of an app shares the image
(an archive through the controller, or a push to the build registry) with the
later hosts of the play that deploy the app; they take it instead of building.
This filter answers, for one host and one app, the questions the tasks
ask: which earlier host already shared this commit (``source``), which host of
the play is the last to deploy the app (``last``), which host of this batch
exports the image it built (``exporter``), and whether this host is the one
that shares its image now (``export``). Read from the hosts' facts, in
play order; pure but for the check that an archive is still on the controller.
``build_once_on`` says whether build once applies to an app at all, and
``archive_step`` which failed task may have left an image archive on the host.

Which apps a host deploys is the app model's answer (plugins/module_utils/_app_model.py),
the fact ``apps_model`` that the role's tasks/assert.yml sets on each host: its
``selected`` apps less its ``absent`` ones. deploy.yml sets it on every host up front,
with the apps the plan found out of date there, so that a host of a later batch counts
only for the apps it will deploy. A host that has not checked its apps yet counts for none.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import os

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean


def _get(mapping, *keys):
    """mapping[k1][k2]... or None when a level is missing or not a mapping."""
    for key in keys:
        if not hasattr(mapping, "get"):
            return None
        mapping = mapping.get(key)
        if mapping is None:
            return None
    return mapping


def _deploys(model, app):
    """Whether a host's app model (its fact apps_model) deploys ``app``: selected, not absent."""
    selected = _get(model, "selected") or []
    absent = _get(model, "absent") or []
    return app in selected and app not in absent


def build_share(hostvars, app, host, play_hosts, batch, commit, tag, registry):
    """{source, last, exporter}: host names, '' when there is none."""
    if not hasattr(hostvars, "get"):
        raise AnsibleFilterError("build_share: give hostvars")
    fact = "apps_pushed" if registry else "apps_archives"
    source = ""
    for other in play_hosts or []:
        if other == host or commit is None:
            continue
        shared = _get(hostvars, other, fact, app) or {}
        if shared.get("commit") != commit:
            continue
        # An archive counts while its controller copy exists (the last host removes it).
        if registry or os.path.isfile(str(_get(hostvars, other, "apps_archives", app, "path") or "")):
            source = other
            break
    last = ""
    for other in play_hosts or []:
        if _deploys(_get(hostvars, other, "apps_model"), app):
            last = other
    exporter = ""
    for other in batch or []:
        build = _get(hostvars, other, "apps_build", "image") or {}
        if build.get("built") and tag is not None and build.get("tag") == tag:
            exporter = other
            break
    # This host shares the image it built when no earlier host did, it is the
    # batch's exporter, and the app's last host comes in a later batch.
    export = (not source and exporter == host and bool(batch) and last in play_hosts
              and batch[-1] in play_hosts and play_hosts.index(last) > play_hosts.index(batch[-1]))
    return {"source": source, "last": last, "exporter": exporter, "export": export}


def build_once_on(app, enabled, check_mode, rollback, play_hosts):
    """Whether build once applies to ``app`` (its model facts) in this run: asked for
    (apps_build_once), a real run, an app built from source, no rollback, and more than one
    host in the play."""
    return (boolean(enabled, strict=False) and not check_mode and _get(app, "kind") == "source"
            and not rollback and len(play_hosts or []) > 1)


def archive_step(task_name):
    """Whether the failed task (its name) is one of the archive steps (archive_export.yml,
    archive_load.yml), after which an image archive may be left on the host."""
    name = str(task_name or "")
    return "archive" in name or name.startswith("Load the image of ")


class FilterModule(object):
    def filters(self):
        return {"build_share": build_share, "build_once_on": build_once_on, "archive_step": archive_step}
