"""appfleet.docker.image_pull against the real local engine and a real private registry.

The registry is Debian's docker-registry, run as a plain process on 127.0.0.1 (one for the
whole file, images/private_registry.py), with TLS and htpasswd authentication.
Test images are tiny (the local busybox image plus a label), pushed with the SDK.
Several module calls share one playbook where they do not depend on each other.
"""

from __future__ import annotations

import secrets

import pytest

from conftest import run_module, run_modules
# busybox_image is a fixture, used by name.
from images.helpers import (  # noqa: F401 pylint: disable=unused-import
    busybox_image,
    cleanup,
    image_or_none,
    ok,
)
from images.private_registry import (  # noqa: F401 pylint: disable=unused-import
    USER,
    config_before,
    docker_config_state,
    private_registry,
    push_new,
    pushed_and_present,
)

REPOS = ["afa-test/pull", "afa-test/pull-digest"]


@pytest.fixture(scope="module")
def registry(tmp_path_factory, docker_client, busybox_image):  # pylint: disable=unused-argument,redefined-outer-name
    with private_registry(tmp_path_factory.mktemp("registry")) as reg:
        try:
            yield reg
        finally:
            cleanup(docker_client, repos=[reg.host + "/" + repo for repo in REPOS])


def pull_args(reg, name, **extra):
    args = dict(name=name, username=USER, password=reg.password)
    args.update(extra)
    return args


def test_pull_check_apply_again(docker_client, registry, config_before):  # pylint: disable=redefined-outer-name,unused-argument
    image_id, digest = push_new(docker_client, registry, "afa-test/pull", "1")
    name = registry.ref("afa-test/pull", "1")

    res = ok(run_module("image_pull", pull_args(registry, name), check=True, diff=True))
    assert res["changed"] is True
    assert res["diff"]["before"] == {name: "absent"}
    assert digest in res["diff"]["after"][name]
    assert res["image"] == {"id": None, "name": name, "repo_digests": []}
    assert image_or_none(docker_client, name) is None, "check mode must pull nothing"

    first, again, missing = run_modules("image_pull", [pull_args(registry, name),
                                                       pull_args(registry, name),
                                                       pull_args(registry, name, policy="missing")], diff=True)
    ok(first)
    assert first["changed"] is True
    assert first["image"]["id"] == image_id and first["image"]["name"] == name
    assert "%s/afa-test/pull@%s" % (registry.host, digest) in first["image"]["repo_digests"]
    assert first["diff"] == {"before": {name: "absent"}, "after": {name: image_id}}
    assert docker_client.images.get(name).id == image_id
    assert ok(again)["changed"] is False and again["image"]["id"] == image_id
    assert ok(missing)["changed"] is False and missing["image"]["id"] == image_id

    res = ok(run_module("image_pull", pull_args(registry, name), check=True))
    assert res["changed"] is False, "check mode: the registry's digest is the local image's"


def test_a_new_push_to_the_tag(docker_client, registry):  # pylint: disable=redefined-outer-name
    name = registry.ref("afa-test/pull", "moving")
    old, _digest = pushed_and_present(docker_client, registry, "afa-test/pull", "moving")
    new_id, new_digest = push_new(docker_client, registry, "afa-test/pull", "moving")
    docker_client.api.tag(old, registry.host + "/afa-test/pull", "moving")  # push_new removed the new one only

    res = ok(run_module("image_pull", pull_args(registry, name), check=True, diff=True))
    assert res["changed"] is True and res["image"]["id"] == old
    assert res["diff"]["before"] == {name: old} and new_digest in res["diff"]["after"][name]
    assert docker_client.images.get(name).id == old, "check mode must pull nothing"

    missing, always, again = run_modules("image_pull", [pull_args(registry, name, policy="missing"),
                                                        pull_args(registry, name, policy="always"),
                                                        pull_args(registry, name, policy="always")])
    assert ok(missing)["changed"] is False and missing["image"]["id"] == old
    assert ok(always)["changed"] is True and always["image"]["id"] == new_id
    assert ok(again)["changed"] is False and again["image"]["id"] == new_id
    assert docker_client.images.get(name).id == new_id


def test_by_digest(docker_client, registry):  # pylint: disable=redefined-outer-name
    image_id, digest = push_new(docker_client, registry, "afa-test/pull-digest", "1")
    name = "%s/afa-test/pull-digest@%s" % (registry.host, digest)

    res = ok(run_module("image_pull", pull_args(registry, name), check=True, diff=True))
    assert res["changed"] is True and res["diff"]["before"] == {name: "absent"}
    assert image_or_none(docker_client, name) is None

    first, again = run_modules("image_pull", [pull_args(registry, name), pull_args(registry, name)])
    assert ok(first)["changed"] is True and first["image"]["id"] == image_id
    assert ok(again)["changed"] is False and again["image"]["id"] == image_id
    assert docker_client.images.get(name).id == image_id


def test_failures_are_clear_and_never_show_the_password(docker_client, registry, tmp_path):  # pylint: disable=redefined-outer-name
    """Also RELIABILITY 24: with -vvv, --diff and log_path, no password in the output or the log."""
    name = registry.ref("afa-test/pull", "errors")
    before, _digest = pushed_and_present(docker_client, registry, "afa-test/pull", "errors")
    wrong = "afa-wrong-" + secrets.token_hex(12)
    calls = [
        dict(name=name, username=USER, password=wrong),
        pull_args(registry, registry.ref("afa-test/pull", "no-such-tag")),
        pull_args(registry, registry.host + "/afa-test/pull"),
        pull_args(registry, name),  # a success, also at -vvv
        dict(name=name),  # no credentials
    ]
    log = tmp_path / "ansible.log"
    bad_password, unknown_tag, no_tag, good, anonymous = run_modules("image_pull", calls, verbosity=3, diff=True,
                                                                     env=dict(ANSIBLE_LOG_PATH=str(log)))
    output = bad_password.stdout + bad_password.stderr + log.read_text()
    assert wrong not in output and registry.password not in output, "a password is in the -vvv output"
    assert "/afa-test/pull" in output, "the -vvv output was not captured"
    assert "refused the credentials" in log.read_text(), "the log_path file was not written"

    assert bad_password.get("failed") is True
    msg = bad_password["msg"]
    assert msg.startswith("username, password: the registry %s refused the credentials of user %r"
                          % (registry.host, USER)), msg
    assert "check username and password" in msg and "Traceback" not in output

    assert unknown_tag.get("failed") is True
    assert unknown_tag["msg"].startswith("name: %s was not found in the registry %s"
                                         % (registry.ref("afa-test/pull", "no-such-tag"), registry.host))

    assert no_tag.get("failed") is True and "neither a tag nor a digest" in no_tag["msg"]
    # The engine falls back to plain HTTP for a registry on 127.0.0.1, and reports a reset connection.
    assert anonymous.get("failed") is True and "if the registry requires them, set them" in anonymous["msg"]
    assert ok(good)["changed"] is False
    assert docker_client.images.get(name).id == before

    # Check mode meets the same refusal through the registry's distribution inspect.
    res = run_module("image_pull", dict(name=name, username=USER, password=wrong), check=True, verbosity=3)
    assert res.get("failed") is True and "refused the credentials" in res["msg"]
    assert wrong not in res.stdout + res.stderr


def test_no_docker_config_is_written(docker_client, registry, config_before, tmp_path):  # pylint: disable=redefined-outer-name
    """The pulls of this file left the user's docker config as it was; one with a fresh HOME writes none."""
    image_id, _digest = push_new(docker_client, registry, "afa-test/pull", "home")
    name = registry.ref("afa-test/pull", "home")
    home, config_dir = tmp_path / "home", tmp_path / "docker-config"
    home.mkdir()
    res = ok(run_module("image_pull", pull_args(registry, name),
                        env=dict(HOME=str(home), DOCKER_CONFIG=str(config_dir))))
    assert res["changed"] is True and res["image"]["id"] == image_id
    assert not config_dir.exists()
    assert not (home / ".docker").exists()
    assert docker_config_state() == config_before
