# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine role's files on the host, its docker group and its DOCKER-USER rules.

Private to this collection (leading underscore): not a public API.

The modules engine_daemon and engine_firewall plan here first (which files differ,
how dockerd takes a new daemon.json, who joins the docker group), then act. The
checks of daemon.json and the rules themselves stay in the role's host programs
(roles/engine/files/), which these functions run: the programs also work by hand.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import tempfile

from ansible_collections.appfleet.docker.plugins.module_utils._docker import AppfleetError
from ansible_collections.appfleet.docker.plugins.module_utils._files import FilePlan, remove_file, write_file_atomic

NOT_INSTALLED = "not installed"


def json_text(data):
    """A JSON file's text as the role writes them: sorted, indented by 2, ending in a newline."""
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def parsed_json(text):
    """The object in a JSON text; {} for none, unreadable JSON or another type."""
    try:
        data = json.loads(text) if text else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def changed_options(before, after):
    """The top-level options that differ between two daemon configurations, sorted."""
    return sorted(key for key in set(before) | set(after)
                  if key not in before or key not in after or before[key] != after[key])


def apply_of(changed, reloadable, installed):
    """How dockerd takes the new daemon.json: ``none``, ``reload`` (SIGHUP, containers untouched)
    or ``restart`` (an option dockerd does not reload; live-restore keeps the containers).
    A fresh install starts dockerd with the file already in place: a reload is enough then."""
    if not changed:
        return "none"
    if installed and set(changed) - set(reloadable):
        return "restart"
    return "reload"


def run_program(run_command, argv, what):
    """(rc, stderr) of a host program; an error naming ``what`` when it cannot run."""
    try:
        rc, _out, err = run_command(argv)
    except OSError as exc:
        raise AppfleetError("%s: cannot run %s: %s" % (what, argv[0], exc)) from None
    return rc, (err or "").strip()


def checked_daemon_json(run_command, checker, settings, daemon):
    """Run the daemon.json checker on the planned file and settings, in a private directory:
    the live files are not touched before the checker accepted them."""
    work = tempfile.mkdtemp(prefix="appfleet-engine-")
    try:
        settings_file = os.path.join(work, "settings.json")
        daemon_file = os.path.join(work, "daemon.json")
        write_file_atomic(settings_file, settings.content, 0o600)
        write_file_atomic(daemon_file, daemon.content, 0o600)
        rc, err = run_program(run_command, [checker, "--settings", settings_file, daemon_file], "daemon.json")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if rc != 0:
        raise AppfleetError("%s refused by %s, nothing changed: %s" % (daemon.path, checker, err[-2000:]))


def group_plan(name, users, check_mode):
    """(create the group, users to add): the users must exist, except in check mode, where an
    earlier role may not have made them yet (they are left out)."""
    try:
        group = grp.getgrnam(name)
        members, gid = set(group.gr_mem), group.gr_gid
    except KeyError:
        members, gid = set(), None
    add, missing = [], []
    for user in users:
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            missing.append(user)
            continue
        if user not in members and entry.pw_gid != gid and user not in add:
            add.append(user)
    if missing and not check_mode:
        raise AppfleetError("users (the engine role's engine_docker_users): no such user(s) on this host: %s; "
                            "create them first (an earlier role) "
                            "or leave them out; nothing changed" % json.dumps(missing))
    return gid is None, add


def dropin_text(program, settings):
    """docker.service's drop-in that runs the DOCKER-USER rules program before every start of dockerd."""
    return ("# Written by the appfleet.docker.engine role; changes here are overwritten.\n"
            "# dockerd starts only once the DOCKER-USER rules are in place: at boot they\n"
            "# are there before dockerd restarts a container (dockerd keeps an existing\n"
            "# DOCKER-USER chain). A failed apply fails this start, so no container runs\n"
            "# unprotected; docker.service's own Restart=on-failure tries again.\n"
            "[Service]\n"
            "ExecStartPre=%s --settings %s\n" % (program, settings))


def rules_state(run_command, program, settings, check_mode):
    """``in place`` or ``missing``, as the rules program's --check says with the planned settings;
    ``not installed`` in check mode before the role installed the program."""
    if not os.path.exists(program):
        if check_mode:
            return NOT_INSTALLED
        raise AppfleetError("the DOCKER-USER rules program %s is missing; install it first" % program)
    work = tempfile.mkdtemp(prefix="appfleet-engine-")
    try:
        settings_file = os.path.join(work, "settings.json")
        write_file_atomic(settings_file, settings.content, 0o600)
        rc, err = run_program(run_command, [program, "--settings", settings_file, "--check"], "DOCKER-USER rules")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if rc in (0, 1):
        return "in place" if rc == 0 else "missing"
    if check_mode:
        return NOT_INSTALLED
    raise AppfleetError("the DOCKER-USER rules could not be checked (%s --check exited %s: %s)"
                        % (program, rc, err[-1000:]))


def apply_rules(run_command, program, settings_path):
    rc, err = run_program(run_command, [program, "--settings", settings_path], "DOCKER-USER rules")
    if rc != 0:
        raise AppfleetError("the DOCKER-USER rules could not be put in place (%s exited %s: %s); dockerd will "
                            "not start while they fail" % (program, rc, err[-1000:]))


def registry_cas(certs_dir, entries):
    """(CA files to keep, registry directories to remove): dockerd reads
    CERTS_DIR/<registry>/ca.crt at each pull or push, so no restart is needed."""
    files, remove = [], []
    for entry in entries:
        directory = os.path.join(certs_dir, entry["registry"])
        if entry.get("state", "present") == "absent":
            remove.extend(remove_paths([directory]))
        else:
            files.append(FilePlan(os.path.join(directory, "ca.crt"), entry["ca"].strip() + "\n"))
    return files, remove


def remove_paths(paths):
    """The paths of ``paths`` that exist (to remove)."""
    return [path for path in paths if os.path.lexists(path)]


def remove_all(paths):
    for path in paths:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            remove_file(path)
