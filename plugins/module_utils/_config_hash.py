# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The config hash of an app container (schema v2, and v1 to recognise older containers) and
the config stored in its label.

Private to this collection (leading underscore): not a public API.
"""

from __future__ import annotations

import hashlib
import json
import re

from ansible_collections.appfleet.docker.plugins.module_utils._docker import LABEL_CONFIG


# Schema version of the config hash, the prefix of the label value (``v2:<hex>``).
CONFIG_HASH_VERSION = "v2"
# The value each desired_config() key has when its option is not set (the module's defaults
# as of schema v2). A key holding it is left out of the v2 hash, so an option added in a later
# release, left at its default, changes no hash and swaps no container. Frozen here on purpose:
# a changed module default that changes the container does change the hash.
CONFIG_DEFAULTS_V2 = {
    "command": None, "env": {}, "secret_env_keys": [], "secret_delivery": "file", "secret_uid": None,
    "port": None, "published_ports": [], "volumes": [], "networks": [], "restart_policy": "unless-stopped",
    "labels": {}, "healthcheck": None, "log_driver": None, "log_options": {}, "memory": None, "cpus": None,
    "stop_timeout": 10, "user": None, "read_only": False, "tmpfs": [], "cap_drop": [], "cap_add": [],
    "pids_limit": 1024, "security_opts": ["no-new-privileges:true"],
}


def config_hash(cfg):
    """The label value of the desired config: ``v2:<sha256>`` of its non-default settings."""
    # A key unknown to v2 (a later option) counts as default when None; a None where v2's default
    # is not None (pids_limit unset: no limit) is a setting of its own and stays.
    kept = dict((k, v) for k, v in cfg.items() if CONFIG_DEFAULTS_V2.get(k) != v)
    text = json.dumps(kept, sort_keys=True, separators=(",", ":"))
    return "%s:%s" % (CONFIG_HASH_VERSION, hashlib.sha256(text.encode("utf-8")).hexdigest())


def config_hash_v1(cfg):
    """The hash of releases before schema v2 (a bare sha256 over every key, None included).

    Kept only to recognise containers made by those releases: one whose label
    equals this hash of the desired config is unchanged and is not swapped.
    """
    # A key added after v2 (unknown to CONFIG_DEFAULTS_V2) did not exist then: left out while unset.
    kept = dict((k, v) for k, v in cfg.items() if k in CONFIG_DEFAULTS_V2 or v is not None)
    text = json.dumps(kept, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def hash_matches(label, cfg):
    """True when a container's config-hash label is the hash of ``cfg`` (any schema version)."""
    if not label:
        return False
    if label.startswith(CONFIG_HASH_VERSION + ":"):
        return label == config_hash(cfg)
    if re.match(r"^[0-9a-f]{64}\Z", label):
        return label == config_hash_v1(cfg)
    return False  # an unknown (later) schema: swap once to this release's


def stored_config(labels):
    """The desired config a container was created with (from its label), or {}."""
    try:
        data = json.loads((labels or {}).get(LABEL_CONFIG) or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
