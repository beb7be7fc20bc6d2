"""appfleet.docker.image_push against the real local engine and a real private registry.

The registry is Debian's docker-registry on 127.0.0.1 with TLS and htpasswd authentication
(images/private_registry.py), one for the whole file. The pushed images are tiny app images
(the local busybox image plus labels, as image_build's would carry); the fleet's path is followed:
push by tag on the builder, pull back by digest with image_pull's tag_as, prune old ones.
"""

from __future__ import annotations

import secrets

import pytest

from conftest import run_module, run_modules
# busybox_image is a fixture, used by name.
from images.helpers import (  # noqa: F401 pylint: disable=unused-import
    BUSYBOX_IMAGE,
    busybox_image,
    cleanup,
    image_or_none,
    labelled_image,
    ok,
)
from images.private_registry import (  # noqa: F401 pylint: disable=unused-import
    USER,
    config_before,
    docker_config_state,
    private_registry,
)

APP = "afa-push-web"
PRUNE_APP = "afa-push-prune"
LOCAL = "afa-test/%s" % APP
REPOS = ["afa-test/push/web", "afa-test/push/prune", "afa-test/push/errors"]


@pytest.fixture(scope="module")
def registry(tmp_path_factory, docker_client, busybox_image):  # pylint: disable=unused-argument,redefined-outer-name
    cleanup(docker_client, apps=[APP, PRUNE_APP])
    with private_registry(tmp_path_factory.mktemp("registry")) as reg:
        try:
            yield reg
        finally:
            cleanup(docker_client, apps=[APP, PRUNE_APP], repos=[reg.host + "/" + repo for repo in REPOS])


def push_args(reg, name, repo, **extra):
    args = dict(name=name, repository=reg.host + "/" + repo, username=USER, password=reg.password)
    args.update(extra)
    return args


def remote_digest(client, reg, ref):
    """The registry's manifest digest of ``ref`` (asked through the engine), None when it has none."""
    import docker  # pylint: disable=import-outside-toplevel

    try:
        return client.api.inspect_distribution(ref, auth_config=reg.auth)["Descriptor"]["digest"]
    except docker.errors.NotFound:
        return None


def test_push_check_apply_again_pull_back(docker_client, registry, config_before):  # pylint: disable=redefined-outer-name,unused-argument
    """The fleet's path: push by source id tag, then the image pulled back by digest with tag_as."""
    local = "%s:s1" % LOCAL
    image_id = labelled_image(docker_client, BUSYBOX_IMAGE, APP, 1, tag=local)
    repository = registry.host + "/afa-test/push/web"
    target = repository + ":s1"
    args = push_args(registry, local, "afa-test/push/web")

    res = ok(run_module("image_push", args, check=True, diff=True))
    assert res["changed"] is True
    assert res["diff"]["before"] == {target: "absent"}
    assert image_id in res["diff"]["after"][target]
    assert res["image"] == dict(id=image_id, name=local, repository=repository, tag="s1", digest=None, ref=None)
    assert image_or_none(docker_client, target) is None, "check mode must tag nothing"
    assert remote_digest(docker_client, registry, target) is None, "check mode must push nothing"

    first, again = run_modules("image_push", [args, args], diff=True)
    ok(first)
    digest = first["image"]["digest"]
    assert first["changed"] is True and digest.startswith("sha256:")
    assert first["image"]["ref"] == "%s@%s" % (repository, digest)
    assert first["diff"] == {"before": {target: "absent"}, "after": {target: digest}}
    assert remote_digest(docker_client, registry, target) == digest
    # The local reference repository:tag is kept: its RepoDigests entry makes the next run a no-op.
    assert docker_client.images.get(target).id == image_id
    assert ok(again)["changed"] is False and again["image"]["digest"] == digest
    res = ok(run_module("image_push", args, check=True))
    assert res["changed"] is False and res["image"]["ref"] == first["image"]["ref"]

    # Another host: the image is not there; it pulls it by digest and tags it as image_build would look for it.
    docker_client.images.remove(image_id, force=True)
    assert image_or_none(docker_client, local) is None
    pull = dict(name=first["image"]["ref"], username=USER, password=registry.password, tag_as=[local])
    res = ok(run_module("image_pull", pull, check=True, diff=True))
    assert res["changed"] is True and res["tagged"] == [local]
    assert res["diff"]["before"] == {first["image"]["ref"]: "absent", local: "absent"}
    assert image_or_none(docker_client, local) is None, "check mode must pull and tag nothing"

    pulled, pulled_again = run_modules("image_pull", [pull, pull], diff=True)
    assert ok(pulled)["changed"] is True and pulled["image"]["id"] == image_id, "not the same image id"
    assert pulled["tagged"] == [local]
    assert pulled["diff"]["after"] == {first["image"]["ref"]: image_id, local: image_id}
    assert docker_client.images.get(local).id == image_id
    assert ok(pulled_again)["changed"] is False and pulled_again["tagged"] == []

    # A tag_as reference that points at another image is moved back, although nothing is pulled.
    docker_client.api.tag(BUSYBOX_IMAGE, LOCAL, "s1", force=True)
    check = ok(run_module("image_pull", pull, check=True))
    assert check["changed"] is True and check["tagged"] == [local]
    moved = ok(run_module("image_pull", pull))
    assert moved["changed"] is True and moved["tagged"] == [local] and moved["image"]["id"] == image_id
    assert docker_client.images.get(local).id == image_id


def test_a_new_image_to_the_same_tag(docker_client, registry):  # pylint: disable=redefined-outer-name
    local = "%s:moving" % LOCAL
    old_id = labelled_image(docker_client, BUSYBOX_IMAGE, APP, 2, tag=local)
    args = push_args(registry, local, "afa-test/push/web")
    target = registry.host + "/afa-test/push/web:moving"
    old = ok(run_module("image_push", args))
    assert old["changed"] is True and old["image"]["id"] == old_id

    new_id = labelled_image(docker_client, BUSYBOX_IMAGE, APP, 3, tag=local)
    assert new_id != old_id
    res = ok(run_module("image_push", args, check=True, diff=True))
    assert res["changed"] is True and res["diff"]["before"] == {target: old["image"]["digest"]}
    assert remote_digest(docker_client, registry, target) == old["image"]["digest"]

    new, again = run_modules("image_push", [args, args])
    assert ok(new)["changed"] is True and new["image"]["id"] == new_id
    assert new["image"]["digest"] != old["image"]["digest"]
    assert remote_digest(docker_client, registry, target) == new["image"]["digest"]
    assert docker_client.images.get(target).id == new_id
    assert ok(again)["changed"] is False


def test_push_by_image_id_needs_a_tag(docker_client, registry):  # pylint: disable=redefined-outer-name
    image_id = labelled_image(docker_client, BUSYBOX_IMAGE, APP, 4)
    no_tag, by_id = run_modules("image_push", [push_args(registry, image_id, "afa-test/push/web"),
                                               push_args(registry, image_id, "afa-test/push/web", tag="by-id")])
    assert no_tag.get("failed") is True and no_tag["msg"].startswith("tag: name %r has no tag" % image_id)
    assert ok(by_id)["changed"] is True and by_id["image"]["tag"] == "by-id"
    assert remote_digest(docker_client, registry, registry.host + "/afa-test/push/web:by-id") == by_id["image"]["digest"]


def test_bad_input_is_refused_naming_the_option(registry):  # pylint: disable=redefined-outer-name
    local = "%s:s1" % LOCAL
    calls = [
        push_args(registry, "afa-test/no-such-image:1", "afa-test/push/web"),
        dict(name=local, repository="afa-test/push/web"),
        push_args(registry, local, "afa-test/push/web:1"),
        push_args(registry, local, "afa-test/push/Web"),
        push_args(registry, local, "afa-test/push/web", timeout=0),
    ]
    absent, no_host, with_tag, bad_name, bad_timeout = run_modules("image_push", calls)
    assert absent.get("failed") is True
    assert absent["msg"].startswith("name: the image afa-test/no-such-image:1 is not on this host"), absent["msg"]
    assert no_host.get("failed") is True and "names no registry host" in no_host["msg"]
    assert with_tag.get("failed") is True and "has a tag" in with_tag["msg"]
    assert bad_name.get("failed") is True and "is not a valid image name" in bad_name["msg"]
    assert bad_timeout.get("failed") is True and bad_timeout["msg"].startswith("timeout:")


def test_wrong_password_is_clear_and_never_shown(docker_client, registry, tmp_path):  # pylint: disable=redefined-outer-name
    local = "%s:errors" % LOCAL
    labelled_image(docker_client, BUSYBOX_IMAGE, APP, 5, tag=local)
    target = registry.host + "/afa-test/push/errors:errors"
    wrong = "afa-wrong-" + secrets.token_hex(12)
    bad = dict(name=local, repository=registry.host + "/afa-test/push/errors", username=USER, password=wrong)
    log = tmp_path / "ansible.log"
    res, good = run_modules("image_push", [bad, push_args(registry, local, "afa-test/push/errors")],
                            verbosity=3, diff=True, env=dict(ANSIBLE_LOG_PATH=str(log)))
    output = res.stdout + res.stderr + log.read_text()
    assert wrong not in output and registry.password not in output, "a password is in the -vvv output or log"
    assert "refused the credentials" in log.read_text(), "the log_path file was not written"
    assert res.get("failed") is True
    assert res["msg"].startswith("username, password: the registry %s refused the credentials of user %r"
                                 % (registry.host, USER)), res["msg"]
    assert "may push to" in res["msg"] and "Traceback" not in output
    assert ok(good)["changed"] is True and remote_digest(docker_client, registry, target) == good["image"]["digest"]

    # Check mode meets the same refusal through the registry's distribution inspect.
    res = run_module("image_push", bad, check=True, verbosity=3)
    assert res.get("failed") is True and "refused the credentials" in res["msg"]
    assert wrong not in res.stdout + res.stderr


def test_image_prune_removes_old_pushed_images(docker_client, registry):  # pylint: disable=redefined-outer-name
    """A pushed app image carries one more tag (repository:tag) and a RepoDigest; image_prune still removes it."""
    ids = {}
    for day in (1, 2, 3):
        ids[day] = labelled_image(docker_client, BUSYBOX_IMAGE, PRUNE_APP, day, tag="afa-test/%s:d%d" % (PRUNE_APP, day))
    pushes = run_modules("image_push", [push_args(registry, "afa-test/%s:d%d" % (PRUNE_APP, day), "afa-test/push/prune")
                                        for day in (1, 2, 3)])
    for res in pushes:
        assert ok(res)["changed"] is True
    assert registry.host + "/afa-test/push/prune:d1" in docker_client.images.get(ids[1]).tags

    res = ok(run_module("image_prune", dict(name=PRUNE_APP, keep=1)))
    assert res["changed"] is True
    assert sorted(r["id"] for r in res["removed"]) == sorted([ids[1], ids[2]])
    assert image_or_none(docker_client, ids[1]) is None and image_or_none(docker_client, ids[2]) is None
    assert image_or_none(docker_client, registry.host + "/afa-test/push/prune:d1") is None
    assert docker_client.images.get(registry.host + "/afa-test/push/prune:d3").id == ids[3]


def test_no_docker_config_is_written(docker_client, registry, config_before, tmp_path):  # pylint: disable=redefined-outer-name
    """The pushes of this file left the user's docker config as it was; one with a fresh HOME writes none."""
    local = "%s:home" % LOCAL
    labelled_image(docker_client, BUSYBOX_IMAGE, APP, 6, tag=local)
    home, config_dir = tmp_path / "home", tmp_path / "docker-config"
    home.mkdir()
    res = ok(run_module("image_push", push_args(registry, local, "afa-test/push/web"),
                        env=dict(HOME=str(home), DOCKER_CONFIG=str(config_dir))))
    assert res["changed"] is True
    assert not config_dir.exists()
    assert not (home / ".docker").exists()
    assert docker_config_state() == config_before
