"""The engine role's host programs (roles/engine/files/*.py), imported by path.

They are scripts installed on the managed host, not modules of the collection:
each test module gets them through these fixtures.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

ROLE = Path(__file__).resolve().parents[4] / "roles" / "engine"


def _load(filename):
    spec = importlib.util.spec_from_file_location(filename[:-3].replace("-", "_"), ROLE / "files" / filename)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session", name="role_vars")
def fixture_role_vars():
    """roles/engine/vars/main.yml and defaults/main.yml, as the role reads them (untemplated)."""
    data = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    data.update(yaml.safe_load((ROLE / "vars" / "main.yml").read_text()))
    return data


@pytest.fixture(scope="session")
def checker():
    return _load("appfleet-dockerd-config-check.py")


@pytest.fixture(scope="session")
def rules():
    return _load("appfleet-docker-user.py")
