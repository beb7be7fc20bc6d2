# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The bootstrap role's input check, from module_utils/_bootstrap_settings.py.

``{{ _bootstrap_inputs | appfleet.docker.bootstrap_problems }}`` gives one line per
problem of the role's variables; [] when all is well.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.appfleet.docker.plugins.module_utils import _bootstrap_settings as model


def bootstrap_problems(settings):
    """One line per problem of the bootstrap settings ({variable: value}); [] when all is well."""
    if not isinstance(settings, dict):
        raise AnsibleFilterError("bootstrap_problems: settings must be a mapping")
    try:
        return model.bootstrap_problems(settings)
    except KeyError as exc:
        raise AnsibleFilterError("bootstrap_problems: %s" % exc.args[0]) from None


class FilterModule(object):
    def filters(self):
        return {"bootstrap_problems": bootstrap_problems}
