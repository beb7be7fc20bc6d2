# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    # The per-call registry credentials of image_pull and image_push.
    DOCUMENTATION = r"""
options:
  username:
    description:
      - The user name for the registry, used for this one pull or push only.
      - Without O(username) and O(password) the registry is asked anonymously, or with the
        credentials the Docker SDK finds in the Docker config file of the user the module runs
        as, if any.
    type: str
  password:
    description:
      - The password (or token) of O(username), used for this one pull or push only and never
        written to a file or shown in a message, warning or return value.
    type: str
notes:
  - The engine trusts a registry on C(127.0.0.0/8) without checking its certificate
    (Docker's default insecure registries); every other registry needs a certificate the
    engine trusts.
"""
