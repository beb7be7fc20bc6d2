"""appfleet.docker.deploy_state against the real local engine, real git repositories and files.

Each test records the host, changes one thing a deploy depends on (the git
server's branch, the checkout, a container, an image, a watched file, the
inputs' fingerprint), and checks that the module says a deploy is needed and why;
with nothing changed it must say the host is converged.
"""

from __future__ import annotations

import json
import os
import stat
import sys

import pytest

from conftest import run_direct, run_module, run_modules, run_playbook
# busybox_image is a fixture, used by name.
from images.helpers import (  # noqa: F401 pylint: disable=unused-import
    BUSYBOX_IMAGE,
    LABEL_APP,
    busybox_image,
    cleanup,
    git,
    labelled_image,
)

APP = "afa-ds-web"
CONTAINER = "afa-ds-web"


@pytest.fixture
def host(tmp_path, docker_client, busybox_image):
    """A deployed app: a bare repository, its checkout, a watched directory, a running container."""
    cleanup(docker_client, apps=[APP], containers=[CONTAINER])
    repo, work, checkout = tmp_path / "web.git", tmp_path / "work", tmp_path / "src" / APP
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(repo))
    git(tmp_path, "clone", "-q", str(repo), str(work))
    (work / "app.txt").write_text("v1\n")
    git(work, "add", "app.txt")
    git(work, "commit", "-q", "-m", "v1")
    git(work, "push", "-q", "origin", "HEAD:main")
    git(tmp_path, "clone", "-q", "-b", "main", str(repo), str(checkout))
    watch = tmp_path / "nginx"
    (watch / "sites").mkdir(parents=True)
    (watch / "sites" / "web.conf").write_text("server {}\n")
    image = labelled_image(docker_client, BUSYBOX_IMAGE, APP, 1, tag="afa-test/%s:1" % APP)
    container = docker_client.containers.run(image, ["sleep", "600"], name=CONTAINER, detach=True,
                                             labels={LABEL_APP: APP})
    args = dict(
        path=str(tmp_path / "state" / "deploy-state.json"),
        fingerprint="f" * 64,
        sources=[dict(app=APP, checkout=str(checkout), repo=str(repo), version="main")],
        watch_paths=[str(watch), str(tmp_path / "absent.conf")],
    )
    yield dict(args=args, repo=repo, work=work, checkout=checkout, watch=watch, container=container,
               image=image, tmp=tmp_path)
    cleanup(docker_client, apps=[APP], containers=[CONTAINER])


def call(args, check_mode=False, play=False):
    """The module alone, its Python run directly (what it answers on a host), or with
    ``play=True`` through a play, where the action plugin around it adds the summary
    line, ``force`` and ``group`` (tested below, after the module's own tests)."""
    if play:
        return run_module("deploy_state", args, check=check_mode)
    return run_direct("deploy_state", args, check=check_mode)


def record(args, check=False):
    res = call(dict(args, state="record"), check_mode=check)
    assert res.get("failed") is not True, res.get("msg")
    assert res["changed"] is False
    return res


def check(args, check_mode=False, play=False):
    res = call(args, check_mode=check_mode, play=play)
    assert res.get("failed") is not True, res.get("msg")
    assert res["changed"] is False
    return res


def push(work, text):
    (work / "app.txt").write_text(text)
    git(work, "commit", "-q", "-am", text.strip())
    git(work, "push", "-q", "origin", "HEAD:main")
    return git(work, "rev-parse", "HEAD")


def test_without_a_record_a_deploy_is_needed(host):
    res = check(host["args"])
    assert res["converged"] is False
    assert res["reasons"] == ["no record of a complete deploy on this host yet"]


def test_record_then_check_is_converged_in_both_modes(host):
    res = record(host["args"])
    assert res["recorded"] is True
    state_file = host["tmp"] / "state" / "deploy-state.json"
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(state_file.parent.stat().st_mode) == 0o700
    data = json.loads(state_file.read_text())
    assert data["sources"] == {APP: git(host["checkout"], "rev-parse", "HEAD")}
    assert data["containers"][CONTAINER]["id"] == host["container"].id
    assert str(host["watch"] / "sites" / "web.conf") in data["files"]
    for check_mode in (False, True):
        res = check(host["args"], check_mode=check_mode)
        assert (res["converged"], res["reasons"]) == (True, [])


def test_record_in_check_mode_writes_nothing(host):
    res = record(host["args"], check=True)
    assert res["recorded"] is False
    assert not (host["tmp"] / "state").exists()


def test_new_commit_on_the_git_server_needs_a_deploy(host):
    record(host["args"])
    deployed = git(host["checkout"], "rev-parse", "HEAD")
    new = push(host["work"], "v2\n")
    res = check(host["args"])
    assert res["converged"] is False
    assert res["reasons"] == ["app %s: main is at %s on the git server; %s is deployed" % (APP, new[:12], deployed[:12])]
    # The deploy checks the commit out and records it: converged again.
    git(host["checkout"], "pull", "-q", "--ff-only")
    assert check(host["args"])["converged"] is False
    record(host["args"])
    assert check(host["args"])["converged"] is True


def test_a_tag_is_resolved_to_its_commit(host):
    git(host["work"], "tag", "-a", "-m", "release", "v1.0")
    git(host["work"], "push", "-q", "origin", "v1.0")
    args = dict(host["args"], sources=[dict(host["args"]["sources"][0], version="v1.0")])
    record(args)
    assert check(args)["converged"] is True
    git(host["work"], "tag", "-d", "v1.0")
    push(host["work"], "v2\n")
    git(host["work"], "tag", "-a", "-m", "release", "v1.0")
    git(host["work"], "push", "-q", "-f", "origin", "v1.0")
    res = check(args)
    assert res["converged"] is False and "v1.0 is at" in res["reasons"][0]


def test_pinned_commit_is_not_asked_of_the_server(host):
    commit = git(host["checkout"], "rev-parse", "HEAD")
    # A repository nobody can reach: a full commit id is compared with the checkout alone.
    source = dict(host["args"]["sources"][0], version=commit, repo=str(host["tmp"] / "gone.git"))
    args = dict(host["args"], sources=[source])
    record(args)
    assert check(args)["converged"] is True
    short = dict(args, sources=[dict(source, version=commit[:10])])
    assert check(short)["converged"] is True


def test_unreachable_git_server_is_a_reason_to_deploy(host):
    record(host["args"])
    args = dict(host["args"], sources=[dict(host["args"]["sources"][0], repo=str(host["tmp"] / "gone.git"))])
    res = check(args)
    assert res["converged"] is False
    assert res["reasons"][0].startswith("app %s: git ls-remote failed: " % APP)


def test_changed_fingerprint_needs_a_deploy(host):
    record(host["args"])
    res = check(dict(host["args"], fingerprint="e" * 64))
    assert res["converged"] is False
    assert res["reasons"] == ["the deploy's inputs changed (inventory, versions, key or certificate files, or the collection)"]


@pytest.mark.parametrize("change", ["edit", "mode", "add", "remove", "create_absent"])
def test_changed_watched_files_need_a_deploy(host, change):
    record(host["args"])
    site = host["watch"] / "sites" / "web.conf"
    changed = site
    if change == "edit":
        site.write_text("server { listen 81; }\n")
    elif change == "mode":
        os.chmod(site, 0o600)
    elif change == "add":
        changed = host["watch"] / "sites" / "stray.conf"
        changed.write_text("server {}\n")
    elif change == "remove":
        site.unlink()
    else:
        changed = host["tmp"] / "absent.conf"
        changed.write_text("")
    res = check(host["args"])
    assert res["converged"] is False
    assert res["reasons"] == ["files changed since the last deploy: %s" % changed]


def test_stopped_or_replaced_container_needs_a_deploy(host, docker_client):
    record(host["args"])
    host["container"].stop(timeout=1)
    res = check(host["args"])
    assert res["converged"] is False
    assert res["reasons"] == ["container %s: exited" % CONTAINER]
    host["container"].remove(force=True)
    docker_client.containers.run(host["image"], ["sleep", "600"], name=CONTAINER, detach=True, labels={LABEL_APP: APP})
    res = check(host["args"])
    assert res["reasons"] == ["container %s: replaced since the last deploy" % CONTAINER]


def test_removed_image_needs_a_deploy(host, docker_client):
    extra = labelled_image(docker_client, BUSYBOX_IMAGE, APP, 2, tag="afa-test/%s:2" % APP)
    record(host["args"])
    docker_client.images.remove(extra, force=True)
    res = check(host["args"])
    assert res["reasons"] == ["the app images differ from those the last deploy left"]


def test_mutable_image_always_needs_a_deploy(host):
    record(host["args"])
    res = check(dict(host["args"], mutable_images=[dict(app="cache", image="redis:7")]))
    assert res["converged"] is False
    assert res["reasons"][0].startswith("app cache runs redis:7, a tag the registry may have moved")


def test_base_refresh_always_needs_a_deploy(host):
    record(host["args"])
    res = check(dict(host["args"], refresh_bases=["web"]))
    assert res["converged"] is False
    assert res["reasons"] == ["app web refreshes its base images (base_refresh): only a deploy asks the "
                              "registry whether one moved"]


def test_no_engine_is_a_reason_to_deploy_not_an_error(host):
    res = check(dict(host["args"], docker_host="unix://%s" % (host["tmp"] / "no.sock")))
    assert res["converged"] is False
    assert res["reasons"] == ["no docker engine on this host yet (%s is missing)" % (host["tmp"] / "no.sock")]


@pytest.mark.parametrize("bad, option", [
    (dict(path="state.json"), "path: 'state.json' is not an absolute path"),
    (dict(watch_paths=["etc/nginx"]), "watch_paths: 'etc/nginx' is not an absolute path"),
])
def test_bad_input_names_the_option(host, bad, option):
    res = call(dict(host["args"], **bad))
    assert res.get("failed") is True
    assert res["msg"] == option


def test_record_without_a_checkout_fails_and_writes_nothing(host):
    args = dict(host["args"], sources=[dict(host["args"]["sources"][0], checkout=str(host["tmp"] / "nowhere"))])
    res = call(dict(args, state="record"))
    assert res.get("failed") is True
    assert res["msg"] == "sources: no git checkout for app(s) %s; record after a complete deploy" % APP
    assert not (host["tmp"] / "state").exists()


# The action plugin (plugins/action/deploy_state.py): the summary line, force and group.

def test_the_answer_is_summed_up_in_msg_and_shown_at_default_verbosity(host):
    res = check(host["args"], play=True)
    assert res["msg"] == "deploying: no record of a complete deploy on this host yet"
    assert "msg: 'deploying: no record of a complete deploy on this host yet'" in res.stdout
    assert res["fingerprint"] == host["args"]["fingerprint"]
    record(host["args"])
    res = check(host["args"], play=True)
    assert res["msg"] == "nothing to deploy: the host is as the last deploy left it"
    assert "msg: 'nothing to deploy: the host is as the last deploy left it'" in res.stdout
    assert "add_group" not in res


def test_force_answers_deploy_without_running_the_module(host):
    """A relative checkout would fail in the module: with force the module never runs."""
    record(host["args"])
    args = dict(host["args"], force=True,
                sources=[dict(host["args"]["sources"][0], checkout="relative/checkout")])
    res = check(args, play=True)
    assert res["converged"] is False
    assert res["reasons"] == ["the plan is off for this run (force): a selection of apps or tags, "
                              "or appfleet_skip_unchanged=false"]
    assert res["msg"] == "deploying: " + res["reasons"][0]
    # No fingerprint: deploy.yml records a host only after a plan that asked it.
    assert "fingerprint" not in res
    res = run_module("deploy_state", dict(args, force=False))
    assert res.get("failed") is True and "must be an absolute path" in res["msg"]


def group_play(args, group):
    """Two plays: deploy_state with group on localhost, then one on the group that writes a file."""
    marker = os.path.join(os.path.dirname(os.path.dirname(args["path"])), "joined")
    play = [
        {"hosts": "localhost", "gather_facts": False, "vars": {"ansible_python_interpreter": sys.executable},
         "tasks": [{"name": "Ask", "appfleet.docker.deploy_state": dict(args, group=group)}]},
        {"hosts": group, "gather_facts": False, "vars": {"ansible_python_interpreter": sys.executable},
         "tasks": [{"name": "Mark", "ansible.builtin.copy": {"content": "x", "dest": marker, "mode": "0600"}}]},
    ]
    proc = run_playbook(json.dumps(play, indent=1) + "\n", "-i", "localhost,", "-c", "local")
    joined = os.path.exists(marker)
    if joined:
        os.unlink(marker)
    return joined, proc.stdout


def test_group_takes_exactly_the_hosts_a_deploy_would_change(host):
    joined, out = group_play(host["args"], "afa_ds_deploy")
    assert joined, out
    record(host["args"])
    joined, out = group_play(host["args"], "afa_ds_deploy_2")
    assert not joined, out
    joined, out = group_play(dict(host["args"], force=True), "afa_ds_deploy_3")
    assert joined, out


@pytest.mark.parametrize("bad, msg", [
    (dict(group=""), "group: give the name of an inventory group (a non-empty string), or leave it out"),
    (dict(force="maybe"), "force: "),
    (dict(state="record", group="g"), "force and group go with state=check only; state=record was given"),
])
def test_bad_action_input_names_the_option(host, bad, msg):
    res = run_modules("deploy_state", [dict(host["args"], **bad)])[0]
    assert res.get("failed") is True
    assert res["msg"].startswith(msg), res["msg"]
    assert not (host["tmp"] / "state").exists()


def test_resolve_asks_each_repository_and_version_once(host):
    source = host["args"]["sources"][0]
    twin = dict(source, app="afa-ds-twin", checkout=str(host["tmp"] / "src" / "twin"))
    res = call(dict(state="resolve", sources=[source, twin]))
    assert res.get("failed") is not True, res.get("msg")
    assert res["changed"] is False
    head = git(host["work"], "rev-parse", "HEAD")
    assert res["remote_commits"] == [{"repo": source["repo"], "version": "main", "commit": head, "error": None}]
    gone = dict(source, repo=str(host["tmp"] / "nowhere.git"))
    res = call(dict(state="resolve", sources=[gone]))
    assert res["remote_commits"][0]["commit"] is None
    assert res["remote_commits"][0]["error"].startswith("git ls-remote failed: ")


def test_check_takes_the_commit_from_remote_commits_and_asks_for_the_rest(host):
    """An answer given for the repository and version is used as is (the server is not asked);
    an entry without a commit, or for another version, leaves the host to ask its server."""
    record(host["args"])
    source = host["args"]["sources"][0]
    other = "0123456789abcdef0123456789abcdef01234567"
    given = [{"repo": source["repo"], "version": "main", "commit": other}]
    res = check(dict(host["args"], remote_commits=given))
    assert res["reasons"] == ["app %s: main is at %s on the git server; %s is deployed"
                              % (APP, other[:12], git(host["checkout"], "rev-parse", "HEAD")[:12])]
    for unanswered in ([dict(given[0], commit=None, error="no answer")], [dict(given[0], version="other")]):
        res = check(dict(host["args"], remote_commits=unanswered))
        assert (res["converged"], res["reasons"]) == (True, []), unanswered


def test_an_engine_that_does_not_answer_is_named(host, tmp_path):
    """A socket file nobody listens on: the check fails naming the engine, no traceback."""
    dead = tmp_path / "dead.sock"
    import socket as socket_module  # pylint: disable=import-outside-toplevel
    listener = socket_module.socket(socket_module.AF_UNIX, socket_module.SOCK_STREAM)
    listener.bind(str(dead))
    listener.close()
    res = call(dict(host["args"], docker_host="unix://%s" % dead))
    assert res.get("failed") is True
    assert res["msg"].startswith("listing the app containers and images failed: cannot reach the docker engine "
                                 "at unix://%s: " % dead), res["msg"]
    assert "Traceback" not in res.stdout + res.stderr


def about_this_app(reasons):
    """The reasons that name this test's app (the engine is shared: other tests' containers come and go)."""
    return [reason for reason in reasons if APP in reason]


def test_paused_container_needs_a_deploy(host):
    """A paused app container is no converged host (app_container unpauses it)."""
    record(host["args"])
    host["container"].pause()
    try:
        res = check(host["args"])
        assert res["converged"] is False
        assert about_this_app(res["reasons"]) == ["container %s: paused" % CONTAINER], res
    finally:
        host["container"].unpause()
    assert about_this_app(check(host["args"])["reasons"]) == []


def test_credentials_in_a_repository_url_never_in_output(host):
    """An HTTPS URL with a token: returned masked (the answer and git's error), never the token,
    and a check finds the fleet-wide answer by the masked URL."""
    token = "tok3n-sec3-%d" % os.getpid()
    url = "https://deploy:%s@127.0.0.1:1/team/web.git" % token
    source = dict(host["args"]["sources"][0], repo=url)
    res = run_module("deploy_state", dict(state="resolve", sources=[source]), verbosity=3)
    assert res.get("failed") is not True, res.get("msg")
    (answer,) = res["remote_commits"]
    assert answer["repo"] == "https://deploy:***@127.0.0.1:1/team/web.git", answer
    assert answer["commit"] is None and answer["error"].startswith("git ls-remote failed: "), answer
    assert token not in json.dumps(res), res

    # The recorded checkout is at the branch's commit: given the answer under the masked URL,
    # the check does not ask the (unreachable) server and has nothing to say about the app.
    record(host["args"])
    head = git(host["work"], "rev-parse", "HEAD")
    args = dict(host["args"], sources=[source])
    given = [{"repo": answer["repo"], "version": "main", "commit": head}]
    res = check(dict(args, remote_commits=given))
    assert about_this_app(res["reasons"]) == [], res
    # Without it the server is asked, fails, and the reason names no token.
    res = check(args)
    assert res["converged"] is False and token not in json.dumps(res), res
    (reason,) = [r for r in about_this_app(res["reasons"]) if "git ls-remote" in r]
    assert reason.startswith("app %s: git ls-remote failed: " % APP), res
