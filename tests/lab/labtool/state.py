"""Where the lab keeps its state (.lab/, APPFLEET_LAB_DIR), and the names and ports of what it makes."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
STATE = Path(os.environ.get("APPFLEET_LAB_DIR", REPO / ".lab")).resolve()
KEY = STATE / "ssh" / "id_ed25519"
DEPLOY_KEY = STATE / "ssh" / "deploy_key"
LABEL = "io.appfleet.lab"
IMAGE_REPO = "appfleet-lab/debian"
NETWORK = "appfleet-lab"
# The lab network has IPv6 as well (a ULA prefix), as cloud VMs do.
NETWORK_IPV6_SUBNET = "fd00:af1:1ab::/64"
APPS_DIR = REPO / "examples" / "apps"
FLEET_FILE = STATE / "fleet.json"
KNOWN_HOSTS = STATE / "ssh" / "known_hosts"
GIT_KNOWN_HOSTS = STATE / "ssh" / "git_known_hosts"
SUITES = ("bookworm", "trixie")
MAX_VMS = 16

# The user cloud-init creates on Debian's cloud images (AWS: admin).
INITIAL_USER = "debian"

# The git host also runs the lab's registry (Debian's docker-registry: TLS with
# the lab's own CA, htpasswd): the VMs reach it as git:5000, this machine as
# 127.0.0.1:5500 (to push the lab's images).
REGISTRY_PORT = 5000
REGISTRY_LOCAL_PORT = 5500
GIT_HOST = {"name": "appfleet-git", "hostname": "git", "ssh_port": 2200,
            "publish": ["127.0.0.1:%d:%d" % (REGISTRY_LOCAL_PORT, REGISTRY_PORT)]}
REGISTRY_DIR = STATE / "registry"
REGISTRY_USER = "lab"

# Host keys are checked against the ones recorded when each VM was made.
SSH_OPTS = ["-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=%s" % KNOWN_HOSTS,
            "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
            "-o", "IdentitiesOnly=yes"]
