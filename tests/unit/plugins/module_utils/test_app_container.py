"""app_container's decision for a serving container that is paused, stopped or exited, and the plan's."""

from __future__ import annotations

import pytest

from ansible_collections.appfleet.docker.plugins.module_utils import _deploy_state
from ansible_collections.appfleet.docker.plugins.module_utils._app_container import choose_action, found_message


def container(status, running=None, exit_code=0):
    """A serving container as _engine.describe_container describes it (Docker: paused is Running)."""
    if running is None:
        running = status in ("running", "paused")
    return {"id": "c1", "name": "web", "status": status, "running": running, "exit_code": exit_code}


@pytest.mark.parametrize("serving, matches, rollback, tidy, action", [
    (None, False, False, False, "created"),
    (container("running"), True, False, False, "unchanged"),
    (container("running"), True, False, True, "reconciled"),
    (container("paused"), True, False, False, "unpaused"),
    (container("paused"), True, False, True, "unpaused"),
    (container("paused"), False, False, False, "replaced"),
    (container("paused"), False, True, False, "rolled_back"),
    (container("exited", exit_code=137), True, False, False, "started"),
    (container("created"), True, False, False, "started"),
    (container("restarting", running=False), True, False, False, "started"),
    (container("exited"), False, False, False, "replaced"),
    (container("running"), False, False, False, "replaced"),
])
def test_choose_action(serving, matches, rollback, tidy, action):
    assert choose_action(serving, matches, rollback, tidy) == action


@pytest.mark.parametrize("serving, action, check_mode, msg", [
    (container("paused"), "unpaused", False, "container web was paused; unpaused it"),
    (container("paused"), "unpaused", True, "container web is paused; a run without check mode unpauses it"),
    (container("paused"), "replaced", False,
     "container web was paused; unpaused it for the rollout and replaced it"),
    (container("paused"), "replaced", True, "container web is paused; a run without check mode replaces it"),
    (container("exited", exit_code=137), "started", False,
     "container web was exited (exit code 137); started it again"),
    (container("exited", exit_code=1), "started", True,
     "container web is exited (exit code 1); a run without check mode starts it again"),
    (container("created"), "started", False, "container web was created; started it again"),
    (container("exited", exit_code=0), "replaced", False, "container web was exited (exit code 0); replaced it"),
    # A running container, or none, is nothing to report.
    (container("running"), "replaced", False, None),
    (container("running"), "unchanged", False, None),
    (None, "created", False, None),
])
def test_found_message(serving, action, check_mode, msg):
    # The wrapper leads it with "app web: " (AppfleetModule.with_app), as every message.
    assert found_message(serving, action, check_mode) == msg


def test_plan_deploys_a_host_whose_app_container_is_paused():
    recorded = {"version": _deploy_state.STATE_VERSION, "fingerprint": "f", "sources": {},
                "containers": {"web": {"id": "c1", "image": "i1", "state": "running", "status": ""}},
                "images": {}, "files": {}}
    now = dict(recorded, containers={"web": {"id": "c1", "image": "i1", "state": "paused", "status": "Up (Paused)"}})
    assert _deploy_state.compare(recorded, now, {}, [], []) == ["container web: paused"]
    assert _deploy_state.compare(recorded, recorded, {}, [], []) == []
