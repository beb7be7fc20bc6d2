"""`python -m labtool` (from tests/lab): the lab tool's command line."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())
