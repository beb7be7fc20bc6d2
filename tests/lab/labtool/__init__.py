"""labtool: the local lab fleet of appfleet.docker (its command line: tests/lab/labctl.py).

The lab is a real fleet on this machine: N "VMs" (default 2) that look like a
fresh Debian cloud image as cloud-init leaves it -- systemd, sshd, python3,
sudo, an initial user `debian` with the operator's key and passwordless sudo,
root login refused, and no git, Docker or nginx -- plus a git host serving the
sample apps over SSH. Ansible reaches each VM by SSH on a port published on
127.0.0.1, checking the host keys recorded in .lab/ssh/known_hosts.

    labctl.py up [--vms N] [--suites bookworm[,trixie...]]
                            base image(s), keys, git host, vm1..vmN (idempotent)
    labctl.py down          remove every container, volume and network the lab made
    labctl.py status        what runs
    labctl.py fleet         the fleet as JSON (the lab inventory reads it)
    labctl.py base-image [--suite bookworm] [--save]
    labctl.py vm-create NAME --ssh-port PORT [--suite S] [--network N] [--publish SPEC]...
    labctl.py vm-destroy NAME

Everything the lab creates carries the label io.appfleet.lab; state (SSH keys,
known_hosts, image archives, the fleet description, the sample apps' work
trees) lives in .lab/ (APPFLEET_LAB_DIR).

The parts: state (paths, names, ports), shell (commands, messages, waits),
keys (SSH keys, known_hosts), images (base images), vms (the VM containers),
githost (the sample apps' repositories and commits), registry (the lab
registry), fleet (up, down, status), cli (the commands above). What the tests,
the benchmarks and the lab inventory use is imported here.
"""

from __future__ import annotations

from .fleet import down, fleet_spec, read_fleet, status, up, write_ssh_config
from .githost import commit_and_push, git_env, push_app, push_url, sample_apps, setup_git_host, work_tree
from .images import ensure_base_image, image_name
from .keys import ensure_keys, forget_host_keys, host_keys, record_host_keys
from .registry import REGISTRY_IMAGES, push_registry_image, registry_credentials, setup_registry
from .state import (APPS_DIR, DEPLOY_KEY, FLEET_FILE, GIT_HOST, GIT_KNOWN_HOSTS, INITIAL_USER, KEY, KNOWN_HOSTS,
                    LABEL, MAX_VMS, NETWORK, REGISTRY_DIR, REGISTRY_LOCAL_PORT, REGISTRY_PORT, REGISTRY_USER, REPO,
                    SSH_OPTS, STATE, SUITES)
from .vms import ssh_cmd, vm_create, vm_destroy, vm_spec

__all__ = [
    "APPS_DIR", "DEPLOY_KEY", "FLEET_FILE", "GIT_HOST", "GIT_KNOWN_HOSTS", "INITIAL_USER", "KEY", "KNOWN_HOSTS",
    "LABEL", "MAX_VMS", "NETWORK", "REGISTRY_DIR", "REGISTRY_IMAGES", "REGISTRY_LOCAL_PORT", "REGISTRY_PORT",
    "REGISTRY_USER", "REPO", "SSH_OPTS", "STATE", "SUITES",
    "commit_and_push", "down", "ensure_base_image", "ensure_keys", "fleet_spec", "forget_host_keys", "git_env",
    "host_keys", "image_name", "push_app", "push_registry_image", "push_url", "read_fleet", "record_host_keys",
    "registry_credentials", "sample_apps", "setup_git_host", "setup_registry", "ssh_cmd", "status", "up",
    "vm_create", "vm_destroy", "vm_spec", "work_tree", "write_ssh_config",
]
