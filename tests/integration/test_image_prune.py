"""appfleet.docker.image_prune against the real local engine."""

from __future__ import annotations

import threading
import time

import pytest

from conftest import run_module, run_modules
# busybox_image is a fixture, used by name.
from images.helpers import (  # noqa: F401 pylint: disable=unused-import
    BUSYBOX_IMAGE,
    LABEL_APP,
    LABEL_PREVIOUS_IMAGE,
    app_image_ids,
    busybox_image,
    cleanup,
    image_or_none,
    labelled_image,
)

APP = "afa-prune-a"
OTHER = "afa-prune-b"
LONE = "afa-prune-c"
CONTAINERS = ["afa-prune-run", "afa-prune-stopped"]


@pytest.fixture()
def fleet(docker_client, busybox_image):
    """Six images of APP (day 1 oldest); day 1 runs with day 2 as rollback target; day 3 has a stopped container."""
    cleanup(docker_client, apps=[APP, OTHER], containers=CONTAINERS)
    ids = {}
    for day in range(1, 7):
        ids[day] = labelled_image(docker_client, BUSYBOX_IMAGE, APP, day, tag="afa-test/%s:d%d" % (APP, day))
    docker_client.containers.run(ids[1], ["sleep", "300"], name=CONTAINERS[0], detach=True,
                                 labels={LABEL_APP: APP, LABEL_PREVIOUS_IMAGE: ids[2]})
    docker_client.containers.create(ids[3], ["true"], name=CONTAINERS[1], labels={LABEL_APP: APP})
    yield ids
    cleanup(docker_client, apps=[APP, OTHER], containers=CONTAINERS)


def prune(check=False, diff=False, **args):
    args.setdefault("name", APP)
    return run_module("image_prune", args, check=check, diff=diff)


def test_keeps_newest_in_use_and_rollback_target(docker_client, fleet):
    every = sorted(fleet.values())

    res = prune(check=True, diff=True, keep=2)
    assert res.get("failed") is not True, res.get("msg")
    assert res["changed"] is True
    assert [r["id"] for r in res["removed"]] == [fleet[4]]
    assert res["removed"][0]["tags"] == ["afa-test/%s:d4" % APP]
    assert "afa-test/%s:d4" % APP in res["diff"]["before"][APP]
    assert "afa-test/%s:d4" % APP not in res["diff"]["after"][APP]
    assert app_image_ids(docker_client, APP) == every, "check mode must remove nothing"

    res = prune(keep=2)
    assert res["changed"] is True and [r["id"] for r in res["removed"]] == [fleet[4]]
    assert isinstance(res["bytes_freed"], int) and res["bytes_freed"] >= 0
    assert image_or_none(docker_client, fleet[4]) is None
    assert app_image_ids(docker_client, APP) == sorted(set(every) - {fleet[4]})
    reasons = dict((k["id"], k["reasons"]) for k in res["kept"])
    assert reasons == {fleet[6]: ["newest"], fleet[5]: ["newest"], fleet[3]: ["in use"],
                       fleet[2]: ["rollback target"], fleet[1]: ["in use"]}

    again = prune(keep=2)
    assert again["changed"] is False and again["removed"] == []

    # keep 0: only what a container uses or may roll back to survives
    res = prune(keep=0)
    assert sorted(r["id"] for r in res["removed"]) == sorted([fleet[5], fleet[6]])
    assert app_image_ids(docker_client, APP) == sorted([fleet[1], fleet[2], fleet[3]])
    assert docker_client.containers.get(CONTAINERS[0]).status == "running"


def test_keeps_the_image_of_a_draining_container(docker_client, fleet):
    """The old container of a swap, while it drains (renamed <name>--draining-<deadline>), keeps its image,
    but not the image it would roll back to: that one would go at the first prune after the drain, a
    change in a run that deploys nothing. (Check mode: a real run waits for the drain to end when
    its image would go then, test_waits_for_a_drain_whose_image_would_go.)"""
    draining = "%s--draining-%d" % (CONTAINERS[0], time.time() + 600)
    docker_client.containers.get(CONTAINERS[0]).rename(draining)
    try:
        res = prune(check=True, keep=0)
        assert res.get("failed") is not True, res.get("msg")
        reasons = dict((k["id"], k["reasons"]) for k in res["kept"])
        assert "in use" in reasons[fleet[1]]
        assert image_or_none(docker_client, fleet[1]) is not None
        assert fleet[2] in [r["id"] for r in res["removed"]]
        assert docker_client.containers.get(draining).status == "running"
    finally:
        docker_client.containers.get(draining).rename(CONTAINERS[0])


def test_waits_for_a_drain_whose_image_would_go(docker_client, fleet):
    """keep 0: the image only a draining container uses would go once the drain ends; the prune waits
    for that (a later run that deploys nothing would remove it, a change) and removes it."""
    until = int(time.time()) + 3
    draining = "%s--draining-%d" % (CONTAINERS[0], until)
    docker_client.containers.get(CONTAINERS[0]).rename(draining)
    # The drain's remover, as app_container starts it: the container goes at its deadline.
    remover = threading.Timer(until - time.time(), lambda: docker_client.containers.get(draining).remove(force=True))
    remover.start()
    try:
        res = prune(keep=0)
    finally:
        remover.join()
    assert res.get("failed") is not True, res.get("msg")
    assert time.time() >= until
    assert fleet[1] in [r["id"] for r in res["removed"]]
    assert image_or_none(docker_client, fleet[1]) is None
    assert prune(keep=0)["changed"] is False


def test_dangling_only_of_the_app(docker_client, fleet):
    mine = labelled_image(docker_client, BUSYBOX_IMAGE, APP, 20)  # no tag: dangling
    other = labelled_image(docker_client, BUSYBOX_IMAGE, OTHER, 21)
    assert docker_client.images.get(mine).tags == []

    res = prune(check=True, keep=10, prune_dangling=True)
    assert [r["id"] for r in res["removed"]] == [mine]
    assert image_or_none(docker_client, mine) is not None

    res = prune(keep=10, prune_dangling=True)
    assert res["changed"] is True and mine in [r["id"] for r in res["removed"]]
    assert image_or_none(docker_client, mine) is None
    assert image_or_none(docker_client, other) is not None
    assert len(app_image_ids(docker_client, APP)) == 6


def test_builder_cache_prune_runs(fleet):
    res = prune(keep=10, builder_cache_until="8760h")
    assert res.get("failed") is not True, res.get("msg")
    assert res["builder_cache"]["pruned"] is True
    assert res["removed"] == []


@pytest.fixture(scope="module")
def lone_image(docker_client, busybox_image):
    """One unused image of its own app: any prune with keep < 1 would remove it."""
    cleanup(docker_client, apps=[LONE])
    image = labelled_image(docker_client, BUSYBOX_IMAGE, LONE, 1, tag="afa-test/%s:d1" % LONE)
    yield image
    cleanup(docker_client, apps=[LONE])


BAD_INPUTS = [
    (dict(keep=-1), ["keep", "0 or more"]),
    (dict(keep=0, builder_cache_until="1d"), ["builder_cache_until", "not a duration"]),
    (dict(keep=0, name="Bad name"), ["name", "not a valid app name"]),
]


@pytest.fixture(scope="module")
def bad_input_results(lone_image):  # pylint: disable=redefined-outer-name,unused-argument
    """Every BAD_INPUTS case run once, in one playbook (one Ansible start, not one per case)."""
    return run_modules("image_prune", [dict(dict(name=LONE), **args) for args, _words in BAD_INPUTS])


@pytest.mark.parametrize("args, words", BAD_INPUTS)
def test_bad_input_changes_nothing(docker_client, lone_image, bad_input_results, args, words):
    res = bad_input_results[BAD_INPUTS.index((args, words))]
    assert res.get("failed") is True
    for word in words:
        assert word in res["msg"]
    assert image_or_none(docker_client, lone_image) is not None
