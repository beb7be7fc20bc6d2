# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A role's directories and small files on the host in one call (appfleet.docker.host_files).

Private to this collection (leading underscore): not a public API.

One module call instead of a find, a file loop and a copy loop: each of those
costs a round trip per item. Planned first (what is missing or differs from the
wanted mode and owner), then done; the files are written by _files.FilePlan.
"""

from __future__ import annotations

import os
import re

from ansible_collections.appfleet.docker.plugins.module_utils._docker import AppfleetError
from ansible_collections.appfleet.docker.plugins.module_utils._files import FilePlan, path_state

# Everything this module makes belongs to root, as the roles' file and copy tasks made it.
ROOT = (0, 0)
MODE_RE = re.compile(r"^[0-7]{3,4}\Z")


def parse_mode(value, where):
    """The mode bits of an octal string such as ``0700``."""
    if not isinstance(value, str) or not MODE_RE.match(value):
        raise AppfleetError('%s: "%s" is not an octal mode such as 0700' % (where, value))
    return int(value, 8)


def describe(state, kind):
    """One diff line: what is at a path now, from path_state()."""
    if state is None:
        return "absent\n"
    return "%s mode %04o owner %d:%d\n" % ((kind,) + tuple(state))


class DirectoryPlan(object):
    """A directory as it should be: its missing parents are made with the same mode and owner
    (as ansible.builtin.file makes them), an existing one gets the mode and owner."""

    def __init__(self, path, mode, owner=ROOT):
        self.path, self.mode, self.owner = path, mode, owner
        self.missing = []
        current = path
        while current and not os.path.lexists(current):
            self.missing.insert(0, current)
            current = os.path.dirname(current.rstrip("/"))
        self.before = path_state(path)
        if not self.missing and not os.path.isdir(path):
            raise AppfleetError("directories: %s exists and is not a directory" % path)

    @property
    def changed(self):
        return bool(self.missing) or self.before != (self.mode,) + tuple(self.owner)

    def diff(self):
        return {"before_header": self.path, "after_header": self.path,
                "before": describe(self.before, "directory"),
                "after": describe((self.mode,) + tuple(self.owner), "directory")}

    def apply(self):
        for path in self.missing:
            # A parent shared with a directory planned before this one is there by now.
            if not os.path.isdir(path):
                os.mkdir(path, self.mode)
        for path in self.missing or [self.path]:
            os.chown(path, *self.owner)
            os.chmod(path, self.mode)


def file_plan(entry, index):
    """The FilePlan of one entry of ``files``: its content inline, or read on the controller
    (``src_content``, filled by the action plugin: secret, never in the diff)."""
    where = "files[%d] (%s)" % (index, entry["dest"])
    if entry.get("src") is not None and entry.get("src_content") is None:
        raise AppfleetError("%s: src is read on the controller by the action plugin; give content "
                            "when calling the module without it" % where)
    if os.path.isdir(entry["dest"]):
        raise AppfleetError("%s: dest is a directory" % where)
    secret = entry.get("src") is not None
    content = entry["src_content"] if secret else entry["content"]
    return FilePlan(entry["dest"], content, parse_mode(entry["mode"], where + ".mode"), owner=ROOT, secret=secret)


def run(params, check_mode, diff_mode):
    """The module's result: found paths, then, unless a required path is missing, the
    directories in order and the files after them, made or fixed outside check mode."""
    found = [path for path in params["look_for"] if os.path.lexists(path)]
    missing = [path for path in params["require"] if not os.path.lexists(path)]
    result = {"changed": False, "found": found, "missing": missing, "changed_paths": []}
    if missing:
        return result
    plans = [DirectoryPlan(d["path"], parse_mode(d["mode"], "directories[%d] (%s).mode" % (i, d["path"])))
             for i, d in enumerate(params["directories"])]
    # A file in a directory made by this call is planned against its absent self.
    plans += [file_plan(entry, index) for index, entry in enumerate(params["files"])]
    todo = [plan for plan in plans if plan.changed]
    if not check_mode:
        for plan in todo:
            if isinstance(plan, DirectoryPlan):
                plan.apply()
            else:
                plan.write()
    result.update(changed=bool(todo), changed_paths=[plan.path for plan in todo])
    if diff_mode:
        result["diff"] = [plan.diff() for plan in todo]
    return result
