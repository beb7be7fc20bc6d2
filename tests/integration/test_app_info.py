"""appfleet.docker.app_info against the real local engine."""

from __future__ import annotations

import time

import pytest

from conftest import run_module
# busybox_image is a fixture, used by name.
from images.helpers import (  # noqa: F401 pylint: disable=unused-import
    BUSYBOX_IMAGE,
    LABEL_APP,
    LABEL_CONFIG_HASH,
    LABEL_PREVIOUS_IMAGE,
    busybox_image,
    cleanup,
    labelled_image,
)

APP = "afa-info-web"
CONTAINERS = ["afa-info-web", "afa-info-web-next"]
# A plain `docker run` of an app image: it inherits LABEL_APP from the image,
# but app_container did not make it, so it is not one of the app's containers.
STRAY = "afa-info-web-debug"
MANAGED = {LABEL_CONFIG_HASH: "0" * 64}


@pytest.fixture(scope="module")
def deployed(docker_client, busybox_image):
    """Three images of the app; 'web' runs the middle one, a new container waits on the newest."""
    cleanup(docker_client, apps=[APP], containers=CONTAINERS + [STRAY])
    old = labelled_image(docker_client, BUSYBOX_IMAGE, APP, 1, tag="afa-test/%s:old" % APP)
    cur = labelled_image(docker_client, BUSYBOX_IMAGE, APP, 2, tag="afa-test/%s:cur" % APP)
    new = labelled_image(docker_client, BUSYBOX_IMAGE, APP, 3, tag="afa-test/%s:new" % APP)
    web = docker_client.containers.run(
        "afa-test/%s:cur" % APP, ["httpd", "-f", "-p", "8080", "-h", "/www"], name=CONTAINERS[0],
        detach=True, labels=dict(MANAGED, **{LABEL_APP: APP, LABEL_PREVIOUS_IMAGE: old}),
        ports={"8080/tcp": ("127.0.0.1", None)})
    nxt = docker_client.containers.create("afa-test/%s:new" % APP, ["sleep", "60"], name=CONTAINERS[1],
                                          labels=dict(MANAGED, **{LABEL_APP: APP, LABEL_PREVIOUS_IMAGE: cur}))
    # Started last, so it would sort first among running containers if it counted.
    docker_client.containers.run("afa-test/%s:new" % APP, ["sleep", "60"], name=STRAY, detach=True)
    web.reload()
    yield dict(old=old, cur=cur, new=new, web=web, next=nxt)
    cleanup(docker_client, apps=[APP], containers=CONTAINERS + [STRAY])


@pytest.mark.parametrize("check", [False, True], ids=["normal", "check_mode"])
def test_reports_running_app(deployed, check):
    res = run_module("app_info", dict(name=APP), check=check)
    assert res.get("failed") is not True, res.get("msg")
    assert res["changed"] is False
    assert [a["name"] for a in res["apps"]] == [APP]
    app = res["apps"][0]
    assert app["state"] == "running" and app["health"] == "none"
    assert app["image_id"] == deployed["cur"] and app["image"] == "afa-test/%s:cur" % APP
    assert app["source_id"] == "%064x" % 2
    assert app["rollback_image"] == deployed["old"]
    assert app["started_at"] == deployed["web"].attrs["State"]["StartedAt"]

    # both containers of the rollout, the running one first
    names = [c["name"] for c in app["containers"]]
    assert names == CONTAINERS
    web, nxt = app["containers"]
    assert web["running"] is True and web["status"] == "running" and web["id"] == deployed["web"].id
    host_port = int(deployed["web"].attrs["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"])
    assert web["ports"] == [dict(container_port=8080, protocol="tcp", host_ip="127.0.0.1", host_port=host_port)]
    assert nxt["running"] is False and nxt["status"] == "created" and nxt["image_id"] == deployed["new"]
    assert nxt["previous_image"] == deployed["cur"]

    # images newest first; rollback candidates are all but the running one
    assert [i["id"] for i in app["images"]] == [deployed["new"], deployed["cur"], deployed["old"]]
    assert [i["in_use"] for i in app["images"]] == [True, True, False]
    assert [i["id"] for i in app["previous_images"]] == [deployed["new"], deployed["old"]]
    assert app["images"][2]["tags"] == ["afa-test/%s:old" % APP]


def test_all_apps_includes_this_one(deployed):
    res = run_module("app_info", {})
    assert res.get("failed") is not True, res.get("msg")
    mine = [a for a in res["apps"] if a["name"] == APP]
    assert len(mine) == 1 and len(mine[0]["containers"]) == 2
    names = [a["name"] for a in res["apps"]]
    assert names == sorted(names)


def test_unknown_app_is_empty(deployed):
    res = run_module("app_info", dict(name="afa-info-none"))
    assert res.get("failed") is not True and res["apps"] == []


def test_bad_name_fails(deployed):
    res = run_module("app_info", dict(name="bad name!"))
    assert res.get("failed") is True and "name" in res["msg"] and "not a valid app name" in res["msg"]


def test_a_draining_container_is_not_the_apps(deployed, docker_client):
    """The old container of a swap while it drains is listed as such; the app is its serving container."""
    until = int(time.time()) + 600
    name = "%s--draining-%d" % (APP, until)
    # Started last, so it would sort first among running containers if it counted.
    docker_client.containers.run("afa-test/%s:new" % APP, ["sleep", "60"], name=name, detach=True,
                                 labels=dict(MANAGED, **{LABEL_APP: APP}))
    try:
        res = run_module("app_info", dict(name=APP))
        assert res.get("failed") is not True, res.get("msg")
        (app,) = res["apps"]
        assert app["state"] == "running" and app["image_id"] == deployed["cur"]
        assert app["started_at"] == deployed["web"].attrs["State"]["StartedAt"]
        reports = dict((c["name"], c) for c in app["containers"])
        assert reports[name]["running"] is True
        assert reports[name]["draining_until"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(until))
        assert reports[APP]["draining_until"] is None
    finally:
        docker_client.containers.get(name).remove(force=True)
