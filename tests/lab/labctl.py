"""labctl: the local lab fleet of appfleet.docker (tests/lab/labtool does the work).

    labctl.py up [--vms N] [--suites bookworm[,trixie...]]
    labctl.py down | status | fleet
    labctl.py base-image [--suite bookworm] [--save]
    labctl.py vm-create NAME --ssh-port PORT [--suite S] [--network N] [--publish SPEC]...
    labctl.py vm-destroy NAME

What each command does: tests/lab/labtool/__init__.py. This file stays the
command's path for the Makefile, molecule, playbooks/lab.yml and the docs.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from labtool.cli import main  # noqa: E402  pylint: disable=wrong-import-position

if __name__ == "__main__":
    sys.exit(main())
