"""The bench scripts as modules for their tests: one loader for every test file."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1]


def load_script(filename, name):
    """bench/<filename> imported as module ``name``, as the script would run.

    The scripts import their neighbours (noop, load, deploy_under_load) from bench/,
    which is on sys.path only while the script loads; deploy_under_load sets
    APPFLEET_LAB_DIR when it is unset, which is put back so other tests do not see it.
    """
    lab_dir = os.environ.get("APPFLEET_LAB_DIR")
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(name, BENCH / filename)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH))
        if lab_dir is None:
            os.environ.pop("APPFLEET_LAB_DIR", None)
    return module
