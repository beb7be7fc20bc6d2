"""Input checks and build log parsing shared by image_build / app_info / image_prune."""

from __future__ import annotations

import pytest

from ansible_collections.appfleet.docker.plugins.module_utils._build import buildkit_failed_step
from ansible_collections.appfleet.docker.plugins.module_utils._image_ref import default_app
from ansible_collections.appfleet.docker.plugins.module_utils._docker import app_error
from ansible_collections.appfleet.docker.plugins.module_utils._image_prune import duration_error, duration_seconds


@pytest.mark.parametrize("app, ok", [("web", True), ("web_1-api", True), ("a" * 63, True), ("Web", False),
                                     ("web.api", False), ("web\n", False), ("a" * 64, False), ("-web", False),
                                     ("web app", False), ("web/x", False), ("", False)])
def test_app(app, ok):
    assert (app_error("app", app) is None) is ok


@pytest.mark.parametrize("value, seconds", [("24h", 86400), ("90m", 5400), ("1h30m", 5400), ("45s", 45),
                                            ("1.5h", 5400), ("500ms", 0.5)])
def test_duration(value, seconds):
    assert duration_error("until", value) is None
    assert duration_seconds(value) == seconds


@pytest.mark.parametrize("value", ["1d", "24", "h", "", "24 h", "-1h"])
def test_bad_duration(value):
    assert "not a duration" in duration_error("builder_cache_until", value)


@pytest.mark.parametrize("name, app", [("web", "web"), ("registry.example.com/team/api", "api")])
def test_default_app(name, app):
    assert default_app(name) == app


BUILDKIT_LOG = """\
#5 [stage-0 2/3] RUN echo hi
#5 DONE 0.3s
#7 [stage-0 3/3] RUN make test
#7 0.162 boom
#7 ERROR: executor failed running [/bin/sh -c make test]: exit code: 1
------
 > [stage-0 3/3] RUN make test:
------
executor failed running [/bin/sh -c make test]: exit code: 1
"""


@pytest.mark.parametrize("log, step", [
    (BUILDKIT_LOG, "RUN make test"),
    # without the summary block, the #N ERROR line names the step
    ("\n".join(BUILDKIT_LOG.splitlines()[:5]), "RUN make test"),
    ("#1 [internal] load build definition\n#1 DONE\n", None),
])
def test_buildkit_failed_step(log, step):
    assert buildkit_failed_step(log.splitlines()) == step
