"""The app_name test plugin: the roles' app name rule is the modules' rule."""

from __future__ import annotations

import pytest

from ansible_collections.appfleet.docker.plugins.module_utils._docker import app_error
from ansible_collections.appfleet.docker.plugins.test.app_name import TestModule


APP_NAME = TestModule().tests()["app_name"]


@pytest.mark.parametrize("name", ["web", "api-2", "a_b", "a" * 63, "Web", "web.x", "web\n", "-web", "", "a" * 64,
                                  "w/b", None, 7])
def test_roles_and_modules_share_the_app_name_rule(name):
    module_ok = isinstance(name, str) and app_error("name", name) is None
    assert APP_NAME(name) is module_ok
