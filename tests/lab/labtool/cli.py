"""labctl: the local lab fleet of appfleet.docker.

The command line of the lab tool (tests/lab/labctl.py, `python -m labtool`); the package's docstring says what each command does.
"""

from __future__ import annotations

import argparse
import json
import re

from .fleet import down, read_fleet, status, up
from .images import ensure_base_image
from .shell import die, require_engine
from .state import SUITES
from .vms import vm_create, vm_destroy


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("up")
    p.add_argument("--vms", type=int, help="how many VMs (default: as last time, else 2)")
    p.add_argument("--suites", help="Debian suites of vm1..vmN, cycled (e.g. bookworm,trixie)")
    sub.add_parser("down")
    sub.add_parser("status")
    sub.add_parser("fleet")
    p = sub.add_parser("base-image")
    p.add_argument("--suite", default="bookworm", choices=SUITES)
    p.add_argument("--save", action="store_true")
    p = sub.add_parser("vm-create")
    p.add_argument("name")
    p.add_argument("--ssh-port", type=int, required=True)
    p.add_argument("--suite", default="bookworm", choices=SUITES)
    p.add_argument("--network")
    p.add_argument("--hostname")
    p.add_argument("--publish", action="append", default=[])
    p.add_argument("--role", default="molecule")
    p = sub.add_parser("vm-destroy")
    p.add_argument("name")
    args = parser.parse_args(argv)

    if args.cmd == "up":
        up(args)
    elif args.cmd == "down":
        down(args)
    elif args.cmd == "status":
        status(args)
    elif args.cmd == "fleet":
        print(json.dumps(read_fleet(), indent=2))
    elif args.cmd == "base-image":
        require_engine()
        name, archive = ensure_base_image(args.suite, save=args.save)
        print(name)
        if archive:
            print(archive)
    elif args.cmd == "vm-create":
        require_engine()
        if not re.match(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$", args.name):
            die("vm name %r: use letters, digits, '.', '_' and '-'" % args.name)
        vm_create(args.name, args.ssh_port, suite=args.suite, network=args.network,
                  publish=args.publish, hostname=args.hostname, role=args.role)
    elif args.cmd == "vm-destroy":
        require_engine()
        vm_destroy(args.name)
    return 0
