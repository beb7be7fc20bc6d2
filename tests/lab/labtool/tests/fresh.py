"""The lab tool imported afresh, for a test that moves its state (APPFLEET_LAB_DIR)."""

from __future__ import annotations

import contextlib
import importlib
import sys


def _labtool_modules():
    return {name: module for name, module in sys.modules.items()
            if (name == "labtool" or name.startswith("labtool.")) and not name.startswith("labtool.tests")}


@contextlib.contextmanager
def fresh_labtool():
    """labtool imported again, so its paths follow the environment as it is now;
    the modules imported before are put back afterwards (the benchmarks' and
    other tests' references stay what they were)."""
    before = _labtool_modules()
    for name in before:
        del sys.modules[name]
    try:
        yield importlib.import_module("labtool")
    finally:
        for name in _labtool_modules():
            del sys.modules[name]
        sys.modules.update(before)
