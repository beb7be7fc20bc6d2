"""appfleet.docker.image_build's base pulls, base_refresh and registry_logins, against the real
local engine and a real private registry (TLS, htpasswd; images/private_registry.py).

One registry for the whole file. The bases are the local busybox image plus a label, pushed
with the SDK and removed here, so the module has to pull them with the credentials it is given.
"""

from __future__ import annotations

import secrets

import pytest

from conftest import run_module, run_modules
# busybox_image is a fixture, used by name.
from images.helpers import (  # noqa: F401 pylint: disable=unused-import
    LABEL_SOURCE_ID,
    app_image_ids,
    busybox_image,
    cleanup,
    image_or_none,
    ok,
    write_context,
)
from images.private_registry import (  # noqa: F401 pylint: disable=unused-import
    USER,
    config_before,
    docker_config_state,
    private_registry,
    push_new,
    pushed_and_present,
)

BASE = "afa-test/base"
APPS = ["afa-brefresh-api", "afa-brefresh-buildkit", "afa-brefresh", "afa-brefresh-fail"]


@pytest.fixture(scope="module")
def registry(tmp_path_factory, docker_client, busybox_image):  # pylint: disable=unused-argument,redefined-outer-name
    cleanup(docker_client, apps=APPS, repos=["afa-test/" + app for app in APPS])
    with private_registry(tmp_path_factory.mktemp("registry")) as reg:
        try:
            yield reg
        finally:
            cleanup(docker_client, apps=APPS, repos=["afa-test/" + app for app in APPS])
            cleanup(docker_client, repos=[reg.host + "/" + BASE])  # after the images built on them


def build_args(reg, ctx, app, password=None, **extra):
    args = dict(name="afa-test/" + app, app=app, context=str(ctx),
                registry_logins=[dict(registry=reg.host, username=USER, password=password or reg.password)])
    args.update(extra)
    return args


def context(tmp_path, base_ref, text):
    return write_context(tmp_path / "ctx", "FROM %s\nCOPY index.html /www/index.html\n" % base_ref,
                         {"index.html": text + "\n"})


def base_label(client, image):
    return client.images.get(image).labels["afa.pull"]


@pytest.mark.parametrize("builder", ["api", "buildkit"])
def test_an_absent_private_base_is_pulled_by_the_module(docker_client, registry, tmp_path, builder):  # pylint: disable=redefined-outer-name
    app = "afa-brefresh-" + builder
    base_id, digest = push_new(docker_client, registry, BASE, builder)
    base_ref = registry.ref(BASE, builder)
    ctx = context(tmp_path, base_ref, builder)

    first, again = run_modules("image_build", [build_args(registry, ctx, app, builder=builder)] * 2)
    assert ok(first)["changed"] is True and first["image"]["built"] is True
    assert first["image"]["builder"] == builder
    assert first["bases"] == [dict(ref=base_ref, id=base_id, digest=digest, pulled=True, refreshed=False)]
    assert docker_client.images.get(base_ref).id == base_id, "the module did not leave the base in the store"
    image = docker_client.images.get(first["image"]["tag"])
    assert image.id == first["image"]["id"] and image.labels[LABEL_SOURCE_ID] == first["image"]["source_id"]
    assert image.labels["afa.pull"] == base_label(docker_client, base_id)
    out = docker_client.containers.run(image.id, ["cat", "/www/index.html"], remove=True)
    assert out.decode() == builder + "\n"

    assert ok(again)["changed"] is False and again["image"]["built"] is False
    assert again["image"]["id"] == first["image"]["id"] and again["image"]["source_id"] == first["image"]["source_id"]
    assert again["bases"] == [dict(ref=base_ref, id=base_id, digest=digest, pulled=False, refreshed=False)]
    assert app_image_ids(docker_client, app) == [first["image"]["id"]]


def test_base_refresh_rebuilds_on_a_new_push_and_only_then(docker_client, registry, tmp_path):  # pylint: disable=redefined-outer-name
    app = "afa-brefresh"
    base_ref = registry.ref(BASE, "1")
    v1, digest1 = pushed_and_present(docker_client, registry, BASE, "1")
    ctx = context(tmp_path, base_ref, "refresh")
    first = ok(run_module("image_build", build_args(registry, ctx, app)))
    assert first["changed"] is True and first["bases"][0]["id"] == v1 and first["bases"][0]["pulled"] is False

    v2, digest2 = push_new(docker_client, registry, BASE, "1")
    docker_client.api.tag(v1, registry.host + "/" + BASE, "1")  # push_new removed the new one only
    assert v2 != v1 and digest2 != digest1

    # c) check mode: changed, which base, nothing pulled
    check = ok(run_module("image_build", build_args(registry, ctx, app, base_refresh=True), check=True, diff=True))
    assert check["changed"] is True and check["image"]["built"] is False
    assert check["bases"] == [dict(ref=base_ref, id=v1, digest=digest2, pulled=False, refreshed=True)]
    assert check["diff"]["before"]["bases"] == {base_ref: v1}
    assert digest2 in check["diff"]["after"]["bases"][base_ref]
    assert docker_client.images.get(base_ref).id == v1, "check mode must pull nothing"
    assert app_image_ids(docker_client, app) == [first["image"]["id"]], "check mode must build nothing"

    # b) without base_refresh the new push goes unnoticed; d) with it, the image is rebuilt on v2, once
    plain, refreshed, again = run_modules("image_build", [build_args(registry, ctx, app),
                                                          build_args(registry, ctx, app, base_refresh=True),
                                                          build_args(registry, ctx, app, base_refresh=True)],
                                          diff=True)
    assert ok(plain)["changed"] is False and plain["image"]["id"] == first["image"]["id"]
    assert plain["bases"] == [dict(ref=base_ref, id=v1, digest=digest1, pulled=False, refreshed=False)]
    assert "bases" not in plain["diff"]["before"]

    assert ok(refreshed)["changed"] is True and refreshed["image"]["built"] is True
    assert refreshed["bases"] == [dict(ref=base_ref, id=v2, digest=digest2, pulled=True, refreshed=True)]
    assert refreshed["diff"]["before"]["bases"] == {base_ref: v1}
    assert refreshed["diff"]["after"]["bases"] == {base_ref: v2}
    assert refreshed["image"]["source_id"] != first["image"]["source_id"]
    assert refreshed["image"]["id"] != first["image"]["id"]
    assert docker_client.images.get(base_ref).id == v2
    assert base_label(docker_client, refreshed["image"]["id"]) == base_label(docker_client, v2)

    assert ok(again)["changed"] is False and again["image"]["id"] == refreshed["image"]["id"]
    assert again["bases"] == [dict(ref=base_ref, id=v2, digest=digest2, pulled=False, refreshed=False)]
    assert sorted(app_image_ids(docker_client, app)) == sorted([first["image"]["id"], refreshed["image"]["id"]])


def test_failures_name_the_base_and_never_the_password(docker_client, registry, tmp_path, config_before):  # pylint: disable=redefined-outer-name
    app = "afa-brefresh-fail"
    present_ref = registry.ref(BASE, "present")
    absent_ref = registry.ref(BASE, "absent")
    present, _digest = pushed_and_present(docker_client, registry, BASE, "present")
    push_new(docker_client, registry, BASE, "absent")
    present_ctx = write_context(tmp_path / "present", "FROM %s\n" % present_ref)
    absent_ctx = write_context(tmp_path / "absent", "FROM %s\n" % absent_ref)
    wrong = "afa-wrong-" + secrets.token_hex(12)
    calls = [
        build_args(registry, present_ctx, app, password=wrong, base_refresh=True),
        build_args(registry, absent_ctx, app, password=wrong),
        dict(build_args(registry, absent_ctx, app), registry_logins=[]),
        build_args(registry, present_ctx, app, registry_logins=[
            dict(registry="https://" + registry.host, username=USER, password=wrong)]),
        build_args(registry, present_ctx, app, registry_logins=[
            dict(registry=registry.host, username=USER, password=wrong),
            dict(registry=registry.host, username=USER, password=wrong)]),
    ]
    refresh_refused, pull_refused, anonymous, scheme, twice = run_modules("image_build", calls, verbosity=3,
                                                                          diff=True)
    output = refresh_refused.stdout + refresh_refused.stderr
    assert wrong not in output and registry.password not in output, "a password is in the -vvv output"
    assert present_ref in output and "Traceback" not in output

    for res, ref in ((refresh_refused, present_ref), (pull_refused, absent_ref)):
        assert res.get("failed") is True
        assert res["msg"].startswith("app %s: base image %s (with the login of user %r from registry_logins): "
                                     "registry_logins: the registry %s refused the credentials"
                                     % (app, ref, USER, registry.host)), res["msg"]
        assert "in registry_logins" in res["msg"]
    assert anonymous.get("failed") is True
    assert anonymous["msg"].startswith("app %s: base image %s: " % (app, absent_ref)), anonymous["msg"]
    assert "registry_logins has no entry for registry %s" % registry.host in anonymous["msg"]
    assert scheme.get("failed") is True and "registry_logins[0].registry" in scheme["msg"]
    assert "without a scheme" in scheme["msg"]
    assert twice.get("failed") is True and "registry_logins[1].registry" in twice["msg"]
    assert "one login per registry" in twice["msg"]

    assert app_image_ids(docker_client, app) == [], "a failed base pull must build nothing"
    assert image_or_none(docker_client, absent_ref) is None
    assert docker_client.images.get(present_ref).id == present
    assert docker_config_state() == config_before, "a docker config file was written"
