# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine role's input check, from module_utils/_engine_settings.py.

``{{ _engine_inputs | appfleet.docker.engine_problems(_engine_daemon_keys, unit_show, _engine_host_flag_re) }}``
gives one line per problem of the role's variables; [] when all is well.
``{{ 'rules_program' | appfleet.docker.engine_path }}``: where the role puts a program or its settings.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.appfleet.docker.plugins.module_utils import _engine_settings as model


def engine_problems(settings, daemon_keys, unit_show=None, host_flag_re=r"(^|\s)-H"):
    """One line per problem of the engine settings ({variable: value}); [] when all is well."""
    if not isinstance(settings, dict) or not isinstance(daemon_keys, dict):
        raise AnsibleFilterError("engine_problems: settings and daemon_keys must be mappings")
    try:
        return model.engine_problems(settings, daemon_keys, unit_show, host_flag_re)
    except KeyError as exc:
        raise AnsibleFilterError("engine_problems: %s" % exc.args[0]) from None


def engine_path(name):
    """The path on the host of one of the role's programs or settings files (model.PATHS)."""
    try:
        return model.PATHS[name]
    except (KeyError, TypeError):
        raise AnsibleFilterError("engine_path: unknown name %r; known: %s" % (name, ", ".join(sorted(model.PATHS)))) from None


class FilterModule(object):
    def filters(self):
        return {"engine_problems": engine_problems, "engine_path": engine_path}
