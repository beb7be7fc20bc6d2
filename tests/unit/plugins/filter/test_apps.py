"""first_deploy_preview: whether a check-mode run only previews an app's first deploy."""

from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.appfleet.docker.plugins.filter.apps import first_deploy_preview

SOURCE, IMAGE = {"kind": "source"}, {"kind": "image"}


@pytest.mark.parametrize("checkout, app, check_mode, rollback, preview", [
    # Check mode, nothing checked out before: preview.
    ({"changed": True, "before": None, "after": "c1"}, SOURCE, True, False, True),
    ({"changed": True, "after": "c1"}, SOURCE, True, False, True),
    # The checkout was skipped (a new host key in check mode): preview.
    ({"skipped": True, "changed": False}, SOURCE, True, False, True),
    # A checkout already there: a real comparison, no preview.
    ({"changed": True, "before": "c0", "after": "c1"}, SOURCE, True, False, False),
    # A real run, a rollback or an image app: never.
    ({"changed": True, "before": None}, SOURCE, False, False, False),
    ({"skipped": True}, SOURCE, True, True, False),
    ({"skipped": True}, IMAGE, True, False, False),
])
def test_preview_only_in_check_mode_for_a_source_app_not_checked_out(checkout, app, check_mode, rollback, preview):
    assert first_deploy_preview(checkout, app, check_mode, rollback) is preview


def test_preview_needs_the_registered_checkout():
    with pytest.raises(AnsibleFilterError, match="registered result of the checkout"):
        first_deploy_preview("c1", SOURCE, True, False)
