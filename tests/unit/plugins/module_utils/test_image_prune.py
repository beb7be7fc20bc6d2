"""The image_prune inputs: durations."""

from __future__ import annotations

import pytest

from ansible_collections.appfleet.docker.plugins.module_utils._image_prune import duration_error, duration_seconds


@pytest.mark.parametrize("value, seconds", [("24h", 86400), ("90m", 5400), ("1h30m", 5400), ("45s", 45),
                                            ("1.5h", 5400), ("500ms", 0.5)])
def test_duration(value, seconds):
    assert duration_error("until", value) is None
    assert duration_seconds(value) == seconds


@pytest.mark.parametrize("value", ["1d", "24", "h", "", "24 h", "-1h"])
def test_bad_duration(value):
    assert "not a duration" in duration_error("builder_cache_until", value)
