# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The app model (module_utils/_app_model.py) for the roles, as a filter.

``{{ appfleet_apps | appfleet.docker.app_model(settings) }}`` returns
``{"apps": [...], "problems": [...], "selected": [...], "absent": [...]}``: the effective
facts of each valid app, every problem found (one line each, naming the app as
``appfleet_apps[i] (name)`` and the fix), the names of the apps to deploy and those
marked ``state: absent``. On top of the pure model it checks that the controller files
the apps name (``source.key_file``, ``proxy.tls.certificate``, ``proxy.tls.key``) exist,
before any host task. ``settings`` is described in ``app_model()``'s docstring; the apps
role passes ``apps_model_settings`` (roles/apps/vars/main.yml).

``{{ apps_checkout | appfleet.docker.first_deploy_preview(apps_app, ansible_check_mode,
apps_rollback) }}`` says whether a check-mode run only previews the app's first deploy.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import os

from ansible.errors import AnsibleFilterError

from ansible_collections.appfleet.docker.plugins.module_utils._app_model import app_model as _model


def app_model(apps, settings):
    """The checked apps, their effective facts and every problem (see the module's docstring)."""
    if not isinstance(settings, dict):
        raise AnsibleFilterError("app_model: settings must be a mapping, not %s" % type(settings).__name__)
    model = _model(apps, settings)
    for app in model["apps"]:
        if app["state"] == "absent":
            continue
        for entry in app["controller_files"]:
            if not os.path.isfile(entry["path"]):
                model["problems"].append(
                    "appfleet_apps[%d] (%s): %s: no such file on the controller: %s%s"
                    % (app["index"], app["name"], entry["option"], entry["path"],
                       " (a relative path is read from the inventory directory %s)" % settings.get("base_dir")
                       if entry["relative"] else ""))
    return model


def first_deploy_preview(checkout, app, check_mode, rollback):
    """Whether a check-mode run previews the first deploy of ``app`` (its model facts): built
    from source, not a rollback, and not on the host yet (``checkout``, the registered result of
    the checkout, was skipped or found no checkout before): there is nothing to build or compare."""
    if not check_mode or rollback or not isinstance(app, dict) or app.get("kind") != "source":
        return False
    if not isinstance(checkout, dict):
        raise AnsibleFilterError("first_deploy_preview: give the registered result of the checkout")
    return bool(checkout.get("skipped", False)) or checkout.get("before") is None


class FilterModule(object):
    def filters(self):
        return {"app_model": app_model, "first_deploy_preview": first_deploy_preview}
