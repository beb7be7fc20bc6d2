"""build_share: which host of the play gives an app's image to which (build once)."""

from __future__ import annotations

import pytest

from ansible_collections.appfleet.docker.plugins.filter.share import archive_step, build_once_on, build_share

from ansible_collections.appfleet.docker.plugins.module_utils._app_model import app_model

HOSTS = ["vm1", "vm2", "vm3"]
WEB = [{"name": "web"}, {"name": "api"}]


def model(only=None, absent=()):
    """A host's fact apps_model as tasks/assert.yml sets it: web (from git) and api, by the real
    model; ``only`` the apps selected there (apps_only), ``absent`` those marked state=absent."""
    apps = [{"name": "web", "source": {"repo": "https://git.example.com/web.git"}},
            {"name": "api", "image": "nginx:1.27"}]
    for app in apps:
        if app["name"] in absent:
            app["state"] = "absent"
    settings = {"only": list(only or []), "defaults": {"strategy": "start-first", "restart_policy": "unless-stopped"}}
    return app_model(apps, settings)


def hostvars(**per_host):
    """Each host deploys web and api unless told; per_host: {host: extra facts}."""
    found = {h: {"appfleet_apps": WEB, "apps_model": model()} for h in HOSTS}
    for host, facts in per_host.items():
        found[host].update(facts)
    return found


def archive(tmp_path, commit, present=True):
    path = tmp_path / ("web-%s.tar" % commit)
    if present:
        path.write_text("image")
    return {"web": {"commit": commit, "path": str(path)}}


def test_nobody_shared_yet_the_last_host_deploys_and_this_host_exports(tmp_path):
    hv = hostvars(vm1={"apps_build": {"image": {"built": True, "tag": "appfleet/web:s1"}}})
    assert build_share(hv, "web", "vm1", HOSTS, ["vm1"], "c1", "appfleet/web:s1", False) == \
        {"source": "", "last": "vm3", "exporter": "vm1", "export": True}


@pytest.mark.parametrize("vm1_facts, commit, registry, source", [
    # An archive of the commit checked out here, still on the controller: vm1 is the source.
    ({"apps_archives": "present"}, "c1", False, "vm1"),
    # Its controller copy is gone (the last host removed it): no source, build here.
    ({"apps_archives": "gone"}, "c1", False, ""),
    # Another commit: no source.
    ({"apps_archives": "present"}, "c2", False, ""),
    # Through the registry, the push record alone counts.
    ({"apps_pushed": {"web": {"commit": "c1", "ref": "reg/web@sha256:x", "tag": "appfleet/web:s1"}}}, "c1", True, "vm1"),
    ({"apps_pushed": {"web": {"commit": "c1"}}}, "c1", False, ""),
    # No checkout here (check mode, a rollback): no source.
    ({"apps_archives": "present"}, None, False, ""),
])
def test_source_is_an_earlier_host_that_shared_this_commit(tmp_path, vm1_facts, commit, registry, source):
    facts = dict(vm1_facts)
    if facts.get("apps_archives") in ("present", "gone"):
        facts["apps_archives"] = archive(tmp_path, "c1", present=facts["apps_archives"] == "present")
    hv = hostvars(vm1=facts)
    assert build_share(hv, "web", "vm2", HOSTS, ["vm2"], commit, None, registry)["source"] == source
    # A host is never its own source.
    assert build_share(hv, "web", "vm1", HOSTS, ["vm1"], commit, None, registry)["source"] == ""


def test_the_model_used_here_selects_and_marks_absent():
    assert model()["problems"] == []
    assert (model()["selected"], model()["absent"]) == (["web", "api"], [])
    assert (model(absent=["web"])["selected"], model(absent=["web"])["absent"]) == (["web", "api"], ["web"])
    assert model(only=["api"])["selected"] == ["api"]


def test_last_skips_hosts_where_the_app_is_absent_or_missing(tmp_path):
    # The model's answer, not the raw definitions: web is absent on vm3.
    hv = hostvars(vm3={"apps_model": model(absent=["web"])})
    assert build_share(hv, "web", "vm1", HOSTS, ["vm1"], "c1", None, False)["last"] == "vm2"
    assert build_share(hv, "api", "vm1", HOSTS, ["vm1"], "c1", None, False)["last"] == "vm3"
    hv["vm2"]["apps_model"] = model(only=["api"])
    assert build_share(hv, "web", "vm1", HOSTS, ["vm1"], "c1", None, False)["last"] == "vm1"
    assert build_share(hv, "shop", "vm1", HOSTS, ["vm1"], "c1", None, False)["last"] == ""


def test_last_is_the_last_host_whose_plan_deploys_the_app(tmp_path):
    """A plain deploy deploys on each host only the apps the plan found out of date there
    (deploy.yml records that selection as apps_model on every host up front). vm3 lists web
    but deploys only api: vm2, not vm3, is the last to load web's archive and removes it, and
    vm1 exports for vm2. Read from appfleet_apps, last was vm3, which never runs web, and the
    archive stayed on the controller."""
    hv = hostvars(vm3={"apps_model": model(only=["api"])})
    built = {"built": True, "tag": "appfleet/web:s1"}
    hv["vm1"]["apps_build"] = {"image": built}
    share = build_share(hv, "web", "vm1", HOSTS, ["vm1"], "c1", "appfleet/web:s1", False)
    assert share == {"source": "", "last": "vm2", "exporter": "vm1", "export": True}
    # Only vm1 deploys web: it is its own last, and app.yml exports nothing (last is not later).
    hv["vm2"]["apps_model"] = model(only=["api"])
    assert build_share(hv, "web", "vm1", HOSTS, ["vm1"], "c1", "appfleet/web:s1", False)["last"] == "vm1"


def test_a_host_that_has_not_checked_its_apps_deploys_none(tmp_path):
    hv = hostvars()
    del hv["vm3"]["apps_model"]
    assert build_share(hv, "web", "vm1", HOSTS, ["vm1"], "c1", None, False)["last"] == "vm2"


def test_exporter_is_the_first_of_the_batch_that_built_the_same_image(tmp_path):
    built = {"apps_build": {"image": {"built": True, "tag": "appfleet/web:s1"}}}
    hv = hostvars(vm1={"apps_build": {"image": {"built": False, "tag": "appfleet/web:s1"}}},
                  vm2=built, vm3=built)
    assert build_share(hv, "web", "vm3", HOSTS, HOSTS, "c1", "appfleet/web:s1", False)["exporter"] == "vm2"
    assert build_share(hv, "web", "vm3", HOSTS, HOSTS, "c1", "appfleet/web:other", False)["exporter"] == ""
    assert build_share(hv, "web", "vm3", HOSTS, HOSTS, "c1", None, False)["exporter"] == ""


@pytest.mark.parametrize("this, batch, facts, export", [
    # vm1 built, nobody shared, vm3 deploys web in a later batch: vm1 exports.
    ("vm1", ["vm1"], {}, True),
    # Another host of the batch is the exporter.
    ("vm2", ["vm1", "vm2"], {}, False),
    # The last host is in this batch: nobody comes after it to take the image.
    ("vm1", HOSTS, {}, False),
    # vm3 does not deploy web and vm2 is in this batch: nothing to share.
    ("vm1", ["vm1", "vm2"], {"vm3": {"apps_model": model(only=["api"])}}, False),
    # An earlier host already shared this commit: take it, do not export.
    ("vm2", ["vm2"], {"vm1": {"apps_pushed": {"web": {"commit": "c1"}}}}, False),
])
def test_export_only_the_batch_exporter_when_a_later_batch_deploys_the_app(this, batch, facts, export):
    hv = hostvars(**facts)
    for host in batch:
        hv[host]["apps_build"] = {"image": {"built": True, "tag": "appfleet/web:s1"}}
    assert build_share(hv, "web", this, HOSTS, batch, "c1", "appfleet/web:s1", True)["export"] is export


@pytest.mark.parametrize("app, enabled, check_mode, rollback, hosts, on", [
    ({"kind": "source"}, True, False, False, HOSTS, True),
    ({"kind": "source"}, "yes", False, False, ["vm1", "vm2"], True),
    ({"kind": "source"}, "false", False, False, HOSTS, False),
    ({"kind": "source"}, True, True, False, HOSTS, False),
    ({"kind": "image"}, True, False, False, HOSTS, False),
    ({"kind": "source"}, True, False, True, HOSTS, False),
    ({"kind": "source"}, True, False, False, ["vm1"], False),
])
def test_build_once_on_only_for_a_real_multi_host_source_deploy(app, enabled, check_mode, rollback, hosts, on):
    assert build_once_on(app, enabled, check_mode, rollback, hosts) is on


@pytest.mark.parametrize("name, archive", [
    ("Save the image archive of web", True),
    ("Fetch to the controller the image archive of web", True),
    ("Copy from the controller the image archive of web", True),
    ("Load the image of web built on vm1", True),
    ("Build the image of web", False),
    ("Pull the image of web built on vm1", False),
    ("", False),
    (None, False),
])
def test_archive_step_names_the_steps_that_leave_an_archive(name, archive):
    assert archive_step(name) is archive
