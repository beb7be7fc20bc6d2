# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The resource limits of an app container (memory, CPU shares): their rules, checked once.

Private to this collection (leading underscore): not a public API.

Pure Python, read by the app model (the apps role's input check) and by app_container, so
that both refuse the same values with the same words.
"""

from __future__ import annotations

import re

MEMORY_RE = re.compile(r"^([0-9]{1,15})([bkmg]?)\Z", re.I)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}
# dockerd refuses a smaller memory limit ("Minimum memory limit allowed is 6MB").
MEMORY_MIN = 6 * 1024 ** 2
# The kernel's range of cpu.shares (cgroup v1); 1024 is its default weight.
CPU_SHARES_MIN, CPU_SHARES_MAX = 2, 262144


def memory_bytes(value):
    """Bytes of a memory size (``512m``, ``1g``, ``1073741824``), or None when it is not one."""
    match = MEMORY_RE.match(str(value).strip()) if not isinstance(value, bool) else None
    if not match:
        return None
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def memory_problem(value):
    """Why ``value`` is not a memory limit Docker takes, or None; the caller puts the option
    and the value before it (``memory: "1 GB" is not a size: ...``)."""
    size = memory_bytes(value)
    if size is None:
        return "is not a size: write a whole number with b, k, m or g, for example 512m or 1g (null for no limit)"
    if size < MEMORY_MIN:
        return "is below the 6m Docker allows: give 6m or more (null for no limit)"
    return None


def cpu_shares_problem(value):
    """Why ``value`` is not a CPU shares weight, or None; the caller puts the option and the value
    before it."""
    if isinstance(value, bool) or not isinstance(value, int) or not CPU_SHARES_MIN <= value <= CPU_SHARES_MAX:
        return ("is not a CPU weight: give a whole number %d-%d (1024 is the kernel's default weight), "
                "or null for none" % (CPU_SHARES_MIN, CPU_SHARES_MAX))
    return None
