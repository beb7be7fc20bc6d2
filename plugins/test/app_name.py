# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's one app-name rule as a Jinja test, for the roles' input checks.

``{{ name is appfleet.docker.app_name }}`` applies the same pattern the modules
apply (module_utils/_app_model.py APP_NAME_RE).
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

from ansible_collections.appfleet.docker.plugins.module_utils._app_model import APP_NAME_RE


def app_name(value):
    """True when ``value`` is a valid app name."""
    return isinstance(value, str) and APP_NAME_RE.match(value) is not None


class TestModule(object):
    def tests(self):
        return {"app_name": app_name}
