# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Keep the DOCKER-USER chains of iptables and ip6tables as the inventory wants them.

Usage: appfleet-docker-user [--settings FILE] [--check]

Published container ports are reachable only from the allowed networks: a
packet forwarded to a container bridge (docker0, br-*) that is neither part
of an established connection, nor from a container, nor from an allowed
network of its family is dropped, over IPv4 and over IPv6 alike. Traffic
from the host itself (a local proxy) does not cross FORWARD and is
unaffected; containers keep their outbound traffic. IPv6 gets the chain even
where dockerd does not manage ip6tables, so that enabling IPv6 later opens
nothing. Run before every start of dockerd (ExecStartPre= of a
docker.service drop-in): dockerd does not start while the rules fail. With --check: exit 0 when the rules are in place, 1 when not.

FILE (written by the appfleet.docker.engine role) is a JSON object:
{"allowed_networks": ["127.0.0.0/8", "::1/128", ...]}.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys

SETTINGS = "/etc/appfleet/engine/docker-user.json"
CHAIN = "DOCKER-USER"
BRIDGES = ("docker0", "br-+")
TOOLS = {4: ("iptables", "iptables-restore"), 6: ("ip6tables", "ip6tables-restore")}
# Seconds to wait for the xtables lock that dockerd may hold.
LOCK_WAIT = "10"


class SettingsError(Exception):
    """The settings file is missing or malformed."""


def load_settings(text):
    """The allowed networks of a settings text, as ip_network objects."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise SettingsError("is not valid JSON: %s" % exc) from None
    nets = data.get("allowed_networks") if isinstance(data, dict) else None
    if not isinstance(nets, list) or not all(isinstance(net, str) for net in nets):
        raise SettingsError('needs "allowed_networks", a list of networks in CIDR form')
    try:
        return [ipaddress.ip_network(net, strict=False) for net in nets]
    except ValueError as exc:
        raise SettingsError("has a bad network in allowed_networks: %s" % exc) from None


def families(ipv6_present):
    """The address families to fill: a kernel without IPv6 (ipv6.disable=1)
    has no ip6tables to fill, and nothing reaches a port over IPv6."""
    return [4, 6] if ipv6_present else [4]


def source(network):
    """The "-s" part of a rule: iptables -S prints none for a /0 network."""
    return "" if network.prefixlen == 0 else " -s %s" % network


def wanted_rules(family, allowed):
    """The chain's rules for one family, as `iptables -S CHAIN` prints them."""
    rules = ["-A %s -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN" % CHAIN]
    rules += ["-A %s -i %s -j RETURN" % (CHAIN, bridge) for bridge in BRIDGES]
    rules += ["-A %s%s -j RETURN" % (CHAIN, source(net)) for net in allowed if net.version == family]
    rules += ["-A %s -o %s -j DROP" % (CHAIN, bridge) for bridge in BRIDGES]
    rules.append("-A %s -j RETURN" % CHAIN)
    return rules


def normalised(rule):
    """A rule with its "-s" network in canonical form: ip6tables prints
    addresses its own way (e.g. ::ffff:10.0.0.1)."""
    words = rule.split()
    for i, word in enumerate(words[:-1]):
        if word == "-s":
            try:
                words[i + 1] = str(ipaddress.ip_network(words[i + 1], strict=False))
            except ValueError:
                pass
    return " ".join(words)


def parse_rules(listing):
    """The rules of an `iptables -S CHAIN` listing, normalised."""
    return [normalised(line) for line in listing.splitlines() if line.startswith("-A ")]


def list_argv(family):
    """The command that prints the chain's rules."""
    return [TOOLS[family][0], "-w", LOCK_WAIT, "-S", CHAIN]


def jump_check_argv(family):
    """The command that exits 0 when FORWARD jumps to the chain."""
    return [TOOLS[family][0], "-w", LOCK_WAIT, "-C", "FORWARD", "-j", CHAIN]


def restore_input(family, allowed):
    """The *-restore text that replaces the chain's rules: with --noflush,
    declaring the chain creates or flushes only it, and the new rules replace
    the old ones in one transaction."""
    return "*filter\n:%s - [0:0]\n%s\nCOMMIT\n" % (CHAIN, "\n".join(wanted_rules(family, allowed)))


def apply_commands(family, allowed, jump_present):
    """The commands, (argv, stdin text or None), that put one family's chain in place."""
    commands = [([TOOLS[family][1], "-w", LOCK_WAIT, "--noflush"], restore_input(family, allowed))]
    if not jump_present:
        commands.append(([TOOLS[family][0], "-w", LOCK_WAIT, "-I", "FORWARD", "1", "-j", CHAIN], None))
    return commands


def run(argv, stdin=None, check=False):
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=60, check=check)


def jump_present(family):
    return run(jump_check_argv(family)).returncode == 0


def in_place(family, allowed):
    proc = run(list_argv(family))
    return (proc.returncode == 0 and parse_rules(proc.stdout) == wanted_rules(family, allowed)
            and jump_present(family))


def main(argv):
    args = argv[1:]
    settings = SETTINGS
    if args[:1] == ["--settings"] and len(args) >= 2:
        settings, args = args[1], args[2:]
    if args not in ([], ["--check"]):
        sys.stderr.write("usage: appfleet-docker-user [--settings FILE] [--check]\n")
        return 2
    try:
        with open(settings, encoding="utf-8") as handle:
            allowed = load_settings(handle.read())
    except OSError as exc:
        sys.stderr.write("appfleet-docker-user: cannot read the settings %s: %s; "
                         "run the appfleet.docker.engine role to write it\n" % (settings, exc.strerror))
        return 2
    except SettingsError as exc:
        sys.stderr.write("appfleet-docker-user: the settings %s %s\n" % (settings, exc))
        return 2
    wanted = families(os.path.isdir("/proc/sys/net/ipv6"))
    if args == ["--check"]:
        return 0 if all(in_place(family, allowed) for family in wanted) else 1
    try:
        for family in wanted:
            for command, stdin in apply_commands(family, allowed, jump_present(family)):
                run(command, stdin, check=True)
    except subprocess.CalledProcessError as exc:
        sys.stderr.write("appfleet-docker-user: %s failed: %s\n" % (exc.cmd[0], (exc.stderr or "").strip()))
        return 1
    return 0 if all(in_place(family, allowed) for family in wanted) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
