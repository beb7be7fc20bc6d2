# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of appfleet.docker.deploy_state: one task per host for deploy.yml's plan.

The module answers on the host. This action adds what deploy.yml's plan used to
spend three more tasks per host on: a one-line ``msg`` shown at every verbosity
(what the deploy will do here), the host put in the group named by ``group``
when a deploy is needed (as ansible.builtin.group_by would), and ``force``,
which answers "deploy" without asking the host.
"""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

FORCED = "the plan is off for this run (force): a selection of apps or tags, or appfleet_skip_unchanged=false"
CONVERGED = "nothing to deploy: the host is as the last deploy left it"


class ActionModule(ActionBase):
    """Run the module (unless forced), then summarise and group on the controller."""

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp  # unused: the module runs with pipelining or in the connection's own temp dir
        args = dict(self._task.args)
        group = args.get("group")
        if group is not None and (not isinstance(group, str) or not group.strip()):
            raise AnsibleActionFail("group: give the name of an inventory group (a non-empty string), or leave it out")
        try:
            force = boolean(args.get("force", False), strict=True)
        except TypeError as exc:
            raise AnsibleActionFail("force: %s; give true or false" % exc) from None
        state = args.get("state", "check")
        if (force or group) and state != "check":
            raise AnsibleActionFail("force and group go with state=check only; state=%s was given" % state)
        if force:
            # Not asked: the answer is known. Nothing reaches the host.
            # No fingerprint either: a forced run is not recorded as a complete deploy.
            result.update(changed=False, converged=False, recorded=False, reasons=[FORCED])
        else:
            result.update(self._execute_module(module_name="appfleet.docker.deploy_state", module_args=args,
                                               task_vars=task_vars))
        if state != "check":
            return result
        if result.get("failed") or result.get("unreachable"):
            # A failed check (no Docker SDK on the host yet, say) is a reason to deploy
            # once the task's failed_when lets it pass; its message stays the module's.
            needed = True
        else:
            needed = not result.get("converged", False)
            result["msg"] = CONVERGED if not needed else "deploying: " + "; ".join(result.get("reasons") or ["no reason given"])
        # Shown at the default verbosity, as ansible.builtin.debug's message is, also
        # when the check failed and failed_when let it pass.
        result["_ansible_verbose_always"] = True
        if group and needed and not result.get("unreachable"):
            # The strategy adds the host to the group, as for ansible.builtin.group_by.
            result["add_group"] = group.strip()
            result["parent_groups"] = ["all"]
        return result
