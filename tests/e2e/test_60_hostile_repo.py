"""A repository's content never runs code on the VMs (RELIABILITY 26).

The web repository gets a hostile commit: a sub-directory that looks like a git
directory (HEAD, objects/, refs/, a config with core.worktree=. and
core.fsmonitor=<payload>, hooks) and that is web's build context in this test,
and a .gitmodules whose submodule has the payload as update command and
another lab repository as URL. A deploy through the apps role must build and
serve from that sub-directory, label the image with the real commit, fetch no
submodule, and never run the payload (which would leave a marker on the VM).
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess

import yaml

from conftest import REPO, run_playbook
from lab_support import commit_and_push, lab, lab_host, lab_tool, read_work_file  # noqa: F401  # pylint: disable=unused-import
from test_50_fleet import VMS, fleet, running_commit, served_version  # noqa: F401  # pylint: disable=unused-import

MARKER = "/var/tmp/appfleet-hostile-payload-ran"
PAYLOAD = "touch " + MARKER
TRAP = "trap"  # the hostile sub-directory
CHECKOUT = "/srv/appfleet/src/web"  # apps_src_dir/<app> on the VMs
HOOKS = ("pre-commit", "post-checkout", "post-merge", "post-index-change", "reference-transaction")


def vm_sh(vm, script):
    """Run ``script`` as root on the VM (the lab connects as a sudoer)."""
    return lab_host(vm).run("sudo sh -c %s" % shlex.quote(script))


def marker_on(vm):
    out = vm_sh(vm, "if test -e %s; then echo present; else echo absent; fi" % MARKER)
    assert out.rc == 0, out.stderr
    return out.stdout.strip()


def plant_hostile_content(work, version):
    """The trap directory (also a working build context of web) and the .gitmodules."""
    trap = work / TRAP
    for sub in ("objects", "refs", "hooks"):
        (trap / sub).mkdir(parents=True, exist_ok=True)
    (trap / "objects" / "keep").write_text("")
    (trap / "refs" / "keep").write_text("")
    (trap / "HEAD").write_text("ref: refs/heads/main\n")
    (trap / "config").write_text("[core]\n\trepositoryformatversion = 0\n\tbare = false\n"
                                 "\tworktree = .\n\tfsmonitor = \"%s; false\"\n\thooksPath = hooks\n" % PAYLOAD)
    for hook in HOOKS:
        (trap / "hooks" / hook).write_text("#!/bin/sh\n%s\n" % PAYLOAD)
        (trap / "hooks" / hook).chmod(0o755)
    for name in ("Dockerfile", "server.py"):
        shutil.copy(work / name, trap / name)
    (trap / "VERSION").write_text(version + "\n")
    # A submodule (a gitlink to a commit of the api repository) that .gitmodules
    # would fetch from the lab git host, with the payload as its update command.
    (work / ".gitmodules").write_text('[submodule "evil"]\n\tpath = evil\n\turl = git@git:/srv/git/api.git\n'
                                      "\tupdate = !%s\n" % PAYLOAD)
    (work / "evil").mkdir(exist_ok=True)
    api_head = subprocess.run(["git", "-C", str(lab_tool.STATE / "work" / "api"), "rev-parse", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run(["git", "-C", str(work), "update-index", "--add", "--cacheinfo", "160000,%s,evil" % api_head],
                   env=lab_tool.git_env(), check=True)


def remove_hostile_content(work):
    shutil.rmtree(work / TRAP, ignore_errors=True)
    shutil.rmtree(work / "evil", ignore_errors=True)
    (work / ".gitmodules").unlink(missing_ok=True)


def web_built_from_trap(tmp_path):
    """Extra vars: the lab's apps, web built with the trap as its context."""
    apps = yaml.safe_load((REPO / "inventories/lab/group_vars/fleet.yml").read_text())["appfleet_apps"]
    for entry in apps:
        if entry["name"] == "web":
            entry.setdefault("build", {})["context"] = TRAP
    extra = tmp_path / "apps.json"
    extra.write_text(json.dumps({"appfleet_apps": apps}))
    return "@%s" % extra


def test_hostile_repository_runs_nothing_on_the_vms(fleet, tmp_path):
    work = lab_tool.STATE / "work" / "web"
    version = read_work_file("web", "VERSION").strip() + "-trap"
    for vm in VMS:
        vm_sh(vm, "rm -f %s" % MARKER)
    plant_hostile_content(work, version)
    head = commit_and_push("web", {}, "web: a hostile commit")
    try:
        run_playbook("playbooks/deploy.yml", "-i", "inventories/lab", "-e", web_built_from_trap(tmp_path),
                     "-e", "apps=web")
        for vm in VMS:
            assert marker_on(vm) == "absent", "the repository's payload ran on %s" % vm
            # built from the trap, with the checkout's real commit as its source
            assert served_version(vm, "web") == version
            # (the old container may still be draining, under a name of its own)
            assert running_commit(vm, "web") == head, vm
            # no submodule was fetched
            fetched = vm_sh(vm, "ls -A %s/evil; ls -d %s/.git/modules 2>/dev/null; true" % (CHECKOUT, CHECKOUT))
            assert fetched.stdout.strip() == "", (vm, fetched.stdout)
        # The trap is real: plain git discovery in it, as root, runs the payload.
        vm_sh("vm1", "git -c safe.directory='*' -C %s/%s status >/dev/null 2>&1; true" % (CHECKOUT, TRAP))
        assert marker_on("vm1") == "present", "the trap did not work on vm1: this test proves nothing"
    finally:
        for vm in VMS:
            vm_sh(vm, "rm -f %s" % MARKER)
        remove_hostile_content(work)
        commit_and_push("web", {}, "web: remove the hostile commit")
        run_playbook("playbooks/deploy.yml", "-i", "inventories/lab", "-e", "apps=web")
