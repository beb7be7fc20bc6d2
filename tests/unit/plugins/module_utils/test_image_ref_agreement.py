"""The apps role and image_pull accept and refuse the same image references.

The role's check is the app model's (``image:`` of an app); the module's is
image_pull's ``parse_reference``. Both must say yes or no alike for each case.
"""

from __future__ import annotations

import pytest

from ansible_collections.appfleet.docker.plugins.module_utils._app_model import app_model
from ansible_collections.appfleet.docker.plugins.module_utils._docker import AppfleetError
from ansible_collections.appfleet.docker.plugins.module_utils._image_pull import parse_reference

DIGEST = "sha256:" + "a" * 64
REFERENCES = [
    "web:1", "redis:7.2-alpine", "registry.example.com/team/web:1.4", "registry.example.com:5000/team/web:v2",
    "localhost:5000/web:1", "git:5000/lab/hello:1", "web@" + DIGEST, "registry.example.com/web@" + DIGEST,
    "library/nginx:1.25", "a.b/c__d/e-f:g",
    # refused by both
    "web", "web:1@" + DIGEST, "Web:1", "web:-1", "web:1 ; reboot", "web@sha256:abc", "registry.example.com/web",
    "web:" + "x" * 129, "/web:1", "web//x:1", "web:1:2", "https://registry.example.com/web:1", "",
]


def role_accepts(ref):
    model = app_model([{"name": "web", "image": ref}], {})
    return not [p for p in model["problems"] if "image" in p]


def module_accepts(ref):
    try:
        parse_reference("name", ref)
    except AppfleetError:
        return False
    return True


@pytest.mark.parametrize("ref", REFERENCES)
def test_role_and_image_pull_agree(ref):
    assert role_accepts(ref) == module_accepts(ref), ref


def test_the_table_has_both_answers():
    answers = {module_accepts(ref) for ref in REFERENCES}
    assert answers == {True, False}
