"""The upstream filters through which the proxy role uses the module's rules."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.appfleet.docker.plugins.filter.upstream import FilterModule
from ansible_collections.appfleet.docker.plugins.module_utils import _proxy


FILTERS = FilterModule().filters()


def test_placeholder_is_what_the_module_treats_as_no_container():
    text = FILTERS["upstream_placeholder"]("web")
    assert text == _proxy.render_placeholder("web")
    assert _proxy.parse_upstream_port(text) == _proxy.PLACEHOLDER_PORT


def test_upstream_path_is_the_module_default():
    assert FILTERS["upstream_path"]("web") == _proxy.default_upstream_file("web")
    assert FILTERS["upstream_path"]("web", "/srv/ups") == "/srv/ups/web.conf"


def test_reload_marker_is_the_modules_and_deploy_state_knows_it():
    path = FILTERS["upstream_reload_marker"]("web", "/srv/ups")
    assert path == "/srv/ups/web.reload-pending" == _proxy.reload_marker_file("web", "/srv/ups")
    assert _proxy.marker_app(path) == "web"


@pytest.mark.parametrize("name", ["../etc", "Web", "web app", ""])
def test_upstream_filters_refuse_a_bad_name(name):
    for flt in ("upstream_path", "upstream_placeholder", "upstream_reload_marker"):
        with pytest.raises(AnsibleFilterError, match="is not an app name"):
            FILTERS[flt](name)
