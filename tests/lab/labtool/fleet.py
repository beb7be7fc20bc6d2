"""The whole lab: the fleet `up` makes (and keeps), `down`, `status`."""

from __future__ import annotations

import json
import re
import shutil

from .githost import setup_git_host
from .images import ensure_base_image
from .keys import ensure_keys, forget_host_keys
from .registry import setup_registry
from .shell import die, docker, exists, log, require_engine
from .state import (FLEET_FILE, GIT_HOST, INITIAL_USER, KEY, KNOWN_HOSTS, LABEL, MAX_VMS, NETWORK,
                    NETWORK_IPV6_SUBNET, STATE, SUITES)
from .vms import vm_create, vm_destroy, vm_spec


def read_fleet():
    """The lab's VMs as `up` last made them (default: vm1, vm2 on bookworm)."""
    if FLEET_FILE.exists():
        return json.loads(FLEET_FILE.read_text())["vms"]
    return [vm_spec(i) for i in (1, 2)]


def write_ssh_config(vms):
    """`ssh -F .lab/ssh/config vm1` (and testinfra) reach the lab hosts by name,
    as the initial user, checking the recorded host keys."""
    lines = []
    for host in [GIT_HOST] + vms:
        lines += ["Host %s" % host["hostname"], "  HostName 127.0.0.1",
                  "  Port %d" % host["ssh_port"], "  User %s" % INITIAL_USER,
                  "  IdentityFile %s" % KEY, "  IdentitiesOnly yes",
                  "  StrictHostKeyChecking yes", "  UserKnownHostsFile %s" % KNOWN_HOSTS,
                  "  LogLevel ERROR", ""]
    (STATE / "ssh" / "config").write_text("\n".join(lines))


def fleet_spec(args):
    """The VMs `up` should make: from --vms/--suites, else as last time."""
    previous = read_fleet()
    count = args.vms if args.vms is not None else len(previous)
    if not 1 <= count <= MAX_VMS:
        die("--vms must be between 1 and %d, not %d" % (MAX_VMS, count))
    if args.suites:
        suites = [x.strip() for x in args.suites.split(",") if x.strip()]
        bad = [x for x in suites if x not in SUITES]
        if bad or not suites:
            die("--suites takes a comma-separated list of %s, not %r" % ("/".join(SUITES), args.suites))
        return [vm_spec(i, suites[(i - 1) % len(suites)]) for i in range(1, count + 1)]
    old = {vm["hostname"]: vm["suite"] for vm in previous}
    return [vm_spec(i, old.get("vm%d" % i, "bookworm")) for i in range(1, count + 1)]


def up(args):
    require_engine()
    ensure_keys()
    vms = fleet_spec(args)
    for suite in sorted({vm["suite"] for vm in vms} | {"bookworm"}):
        # bookworm is what the sample apps build FROM: its archive is preloaded.
        ensure_base_image(suite, save=True)
    if not exists("network", NETWORK):
        docker("network", "create", "--label", "%s=fleet" % LABEL, "--ipv6",
               "--subnet", NETWORK_IPV6_SUBNET, NETWORK)
    # VMs beyond the requested count, or on another suite, go.
    wanted = {vm["name"]: vm["suite"] for vm in vms}
    for name in docker("ps", "-a", "--filter", "label=%s=fleet" % LABEL,
                       "--format", "{{.Names}}").stdout.split():
        if re.match(r"^appfleet-vm\d+$", name):
            suite = docker("inspect", "-f", '{{index .Config.Labels "%s.suite"}}' % LABEL,
                           name).stdout.strip()
            if wanted.get(name) != suite:
                vm_destroy(name)
    setup_git_host()
    setup_registry()
    for vm in vms:
        vm_create(vm["name"], vm["ssh_port"], suite=vm["suite"], network=NETWORK,
                  publish=vm["publish"], hostname=vm["hostname"], role="fleet")
    FLEET_FILE.write_text(json.dumps({"vms": vms}, indent=2) + "\n")
    write_ssh_config(vms)
    status(args)


def down(args):
    require_engine()
    names = docker("ps", "-aq", "--filter", "label=%s=fleet" % LABEL).stdout.split()
    if names:
        docker("rm", "-f", "-v", *names)
    vols = docker("volume", "ls", "-q", "--filter", "label=%s=fleet" % LABEL).stdout.split()
    if vols:
        docker("volume", "rm", *vols)
    if exists("network", NETWORK):
        docker("network", "rm", NETWORK)
    shutil.rmtree(STATE / "work", ignore_errors=True)
    for vm in read_fleet():
        forget_host_keys(["[127.0.0.1]:%d" % vm["ssh_port"]])
    forget_host_keys(["[127.0.0.1]:%d" % GIT_HOST["ssh_port"]])
    log("lab is down (%d containers, %d volumes removed)" % (len(names), len(vols)))


def status(args):
    rows = docker("ps", "-a", "--filter", "label=%s" % LABEL,
                  "--format", "{{.Names}}\t{{.Status}}\t{{.Ports}}").stdout.strip()
    print(rows or "lab: nothing runs")
