# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of appfleet.docker.host_files: read each ``src`` file here.

A deploy key is a file on the controller, as ansible.builtin.copy's ``src`` is
(a vaulted one decrypted); its text goes to the module in ``src_content``, an
option the module's argument spec marks no_log, so it is neither logged on the
host nor shown in the result.
"""

from __future__ import annotations

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):
    """Read the ``src`` files, then run the module once with their text."""

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp  # unused
        args = dict(self._task.args)
        files = args.get("files") or []
        if isinstance(files, list):
            args["files"] = []
            for index, entry in enumerate(files):
                entry = dict(entry) if isinstance(entry, dict) else entry
                if isinstance(entry, dict) and entry.get("src"):
                    entry.pop("src_content", None)
                    text, error = self._read(entry["src"])
                    if error:
                        result.update(failed=True, changed=False, msg="files[%d] (%s): src %s: %s" % (
                            index, entry.get("dest"), entry["src"], error))
                        return result
                    entry["src_content"] = text
                args["files"].append(entry)
        result.update(self._execute_module(module_name="appfleet.docker.host_files", module_args=args,
                                           task_vars=task_vars))
        return result

    def _read(self, src):
        """(text, None) of a controller file, or (None, what went wrong)."""
        try:
            real = self._loader.get_real_file(self._loader.path_dwim(src), decrypt=True)
        except AnsibleError as exc:
            return None, "cannot be read on the controller: %s" % exc.message
        try:
            with open(real, "rb") as handle:
                data = handle.read()
        except (IOError, OSError) as exc:
            return None, "cannot be read on the controller: %s" % (exc.strerror or exc)
        finally:
            self._loader.cleanup_tmp_file(real)
        try:
            return data.decode("utf-8"), None
        except UnicodeDecodeError:
            return None, "is not a UTF-8 text file"
