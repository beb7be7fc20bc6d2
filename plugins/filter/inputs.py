# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A role's variables checked for their shape, from module_utils/_input_types.py.

``{{ values | appfleet.docker.input_type_problems(shapes) }}`` gives one line per
variable of ``values`` ({name: value}) that is not of its shape in ``shapes``
({name: kind, [kind, what, example] or {choices: [...]}}; kinds: str, bool, int,
list, strlist, dict, strmap); [] when all fit. For the rules a role's own settings
module does not cover (the proxy role's switches).
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.appfleet.docker.plugins.module_utils._input_types import type_problems


def input_type_problems(values, shapes):
    """One line per variable of ``values`` not of its shape; [] when all fit."""
    if not isinstance(values, dict) or not isinstance(shapes, dict):
        raise AnsibleFilterError("input_type_problems: values and shapes must be mappings")
    missing = sorted(set(shapes) - set(values))
    if missing:
        raise AnsibleFilterError("input_type_problems: values lack %s" % ", ".join(missing))
    try:
        return type_problems(values, shapes)[0]
    except ValueError as exc:
        raise AnsibleFilterError("input_type_problems: %s" % exc) from None


class FilterModule(object):
    def filters(self):
        return {"input_type_problems": input_type_problems}
