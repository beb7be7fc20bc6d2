"""Make ``ansible_collections.appfleet.docker`` importable for plain pytest unit tests.

The repository's .collections directory holds ansible_collections/appfleet/docker,
a link back to this checkout.
"""

from __future__ import annotations

import sys
from pathlib import Path

COLLECTIONS = Path(__file__).resolve().parents[2] / ".collections"
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))
