# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    # Options every appfleet.docker module takes to reach the engine.
    DOCUMENTATION = r"""
options:
  docker_host:
    description:
      - The Docker Engine API endpoint on the managed host.
    type: str
    default: unix:///var/run/docker.sock
  api_timeout:
    description:
      - Seconds to wait for one Docker Engine API call before giving up.
    type: int
    default: 120
requirements:
  - docker (Docker SDK for Python) >= 6.0 on the managed host
"""
