# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The bootstrap role's input check and plan, from module_utils/_bootstrap_settings.py.

``{{ _bootstrap_inputs | appfleet.docker.bootstrap_problems }}`` gives one line per
problem of the role's variables; [] when all is well.
``{{ _bootstrap_inputs | appfleet.docker.bootstrap_plan(ansible_facts, home) }}`` adds
the host's release to those problems and, when there are none, gives what the role
does: packages, directories, files and their contents.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.appfleet.docker.plugins.module_utils import _bootstrap_settings as model


def _call(name, function, settings, *args):
    if not isinstance(settings, dict):
        raise AnsibleFilterError("%s: settings must be a mapping" % name)
    try:
        return function(settings, *args)
    except KeyError as exc:
        raise AnsibleFilterError("%s: %s" % (name, exc.args[0])) from None


def bootstrap_problems(settings):
    """One line per problem of the bootstrap settings ({variable: value}); [] when all is well."""
    return _call("bootstrap_problems", model.bootstrap_problems, settings)


def bootstrap_plan(settings, facts=None, home=None):
    """{problems, packages, dirs, files, timesync, sshd_dropin, in_container} for this host."""
    return _call("bootstrap_plan", model.bootstrap_plan, settings, facts, home)


class FilterModule(object):
    def filters(self):
        return {"bootstrap_problems": bootstrap_problems, "bootstrap_plan": bootstrap_plan}
