"""The git host: the sample apps' repositories, their work trees in the lab state, commits pushed to it."""

from __future__ import annotations

import os
import shutil
import subprocess

from .keys import host_keys, record_host_keys
from .shell import docker, log, run
from .state import APPS_DIR, DEPLOY_KEY, GIT_HOST, GIT_KNOWN_HOSTS, KEY, NETWORK, SSH_OPTS, STATE
from .vms import vm_create


def sample_apps():
    return sorted(p.name for p in APPS_DIR.iterdir() if (p / "Dockerfile").exists())


def git_env():
    env = dict(os.environ)
    env["GIT_SSH_COMMAND"] = " ".join(["ssh"] + SSH_OPTS + ["-i", str(KEY)])
    env.setdefault("GIT_AUTHOR_NAME", "appfleet lab")
    env.setdefault("GIT_AUTHOR_EMAIL", "lab@appfleet.invalid")
    env.setdefault("GIT_COMMITTER_NAME", "appfleet lab")
    env.setdefault("GIT_COMMITTER_EMAIL", "lab@appfleet.invalid")
    return env


def push_url(app):
    """The app's repository as this machine reaches it (the VMs use git@git:/srv/git/APP.git)."""
    return "ssh://git@127.0.0.1:%d/srv/git/%s.git" % (GIT_HOST["ssh_port"], app)


def setup_git_host():
    name = GIT_HOST["name"]
    vm_create(name, GIT_HOST["ssh_port"], network=NETWORK, hostname=GIT_HOST["hostname"],
              publish=GIT_HOST["publish"], role="fleet")
    # The base image is a cloud image without git: the git host installs it.
    if docker("exec", name, "sh", "-c", "command -v git", check=False).returncode != 0:
        log("installing git on the git host")
        docker("exec", name, "sh", "-c",
               "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
               "--no-install-recommends git >/dev/null", timeout=600)
    keys = KEY.with_suffix(".pub").read_text() + DEPLOY_KEY.with_suffix(".pub").read_text()
    apps = " ".join(sample_apps())
    script = (
        "set -e\n"
        "id git >/dev/null 2>&1 || useradd -m -d /home/git -s /usr/bin/git-shell git\n"
        "install -d -o git -g git -m 0700 /home/git/.ssh\n"
        "cat > /home/git/.ssh/authorized_keys\n"
        "chown git:git /home/git/.ssh/authorized_keys; chmod 0600 /home/git/.ssh/authorized_keys\n"
        "install -d -o git -g git /srv/git\n"
        "for app in %s; do\n"
        "  [ -d /srv/git/$app.git ] || su -s /bin/sh git -c \"git init -q --bare -b main /srv/git/$app.git\"\n"
        "done\n"
    ) % apps
    docker("exec", "-i", name, "sh", "-c", script, input=keys)
    # The VMs reach the git host as `git` on the lab network: its host key, for
    # the apps' source.known_hosts.
    record_host_keys([GIT_HOST["hostname"]], host_keys(name), GIT_KNOWN_HOSTS)
    for app in sample_apps():
        push_app(app)


def work_tree(app):
    """The app's work tree in the lab state: what push_app pushes to the git host."""
    return STATE / "work" / app


def push_app(app):
    """Keep a work tree per app in the lab state and push it to the git host."""
    work = work_tree(app)
    env = git_env()
    if not (work / ".git").exists():
        shutil.copytree(APPS_DIR / app, work, dirs_exist_ok=True)
        run(["git", "-C", str(work), "init", "-q", "-b", "main"], env=env)
        run(["git", "-C", str(work), "add", "-A"], env=env)
        run(["git", "-C", str(work), "commit", "-q", "-m", "%s: initial version" % app], env=env)
    run(["git", "-C", str(work), "push", "-q", "--force", push_url(app),
         "main"], env=env)
    log("pushed %s to the git host" % app)


def commit_and_push(app, files, message):
    """Write ``files`` ({path in the work tree: text}), commit every change of the app's
    work tree and push it to the git host; the new commit's id.

    The one way a test or a benchmark releases a new commit of a sample app."""
    work = work_tree(app)
    for rel, text in files.items():
        (work / rel).write_text(text)
    env = git_env()
    subprocess.run(["git", "-C", str(work), "add", "-A"], env=env, check=True)
    subprocess.run(["git", "-C", str(work), "commit", "-q", "-m", message], env=env, check=True)
    push_app(app)
    return subprocess.run(["git", "-C", str(work), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
