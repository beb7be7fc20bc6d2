"""build_share: which host of the play gives an app's image to which (build once)."""

from __future__ import annotations

import pytest

from ansible_collections.appfleet.docker.plugins.filter.share import build_share

HOSTS = ["vm1", "vm2", "vm3"]
WEB = [{"name": "web"}, {"name": "api"}]


def hostvars(**per_host):
    """Each host deploys web and api unless told; per_host: {host: extra facts}."""
    found = {h: {"appfleet_apps": WEB} for h in HOSTS}
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
        {"source": "", "last": "vm3", "exporter": "vm1"}


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


def test_last_skips_hosts_where_the_app_is_absent_or_missing(tmp_path):
    hv = hostvars(vm3={"appfleet_apps": [{"name": "web", "state": "absent"}, {"name": "api"}]})
    assert build_share(hv, "web", "vm1", HOSTS, ["vm1"], "c1", None, False)["last"] == "vm2"
    hv["vm2"]["appfleet_apps"] = [{"name": "api"}]
    assert build_share(hv, "web", "vm1", HOSTS, ["vm1"], "c1", None, False)["last"] == "vm1"
    assert build_share(hv, "shop", "vm1", HOSTS, ["vm1"], "c1", None, False)["last"] == ""


def test_exporter_is_the_first_of_the_batch_that_built_the_same_image(tmp_path):
    built = {"apps_build": {"image": {"built": True, "tag": "appfleet/web:s1"}}}
    hv = hostvars(vm1={"apps_build": {"image": {"built": False, "tag": "appfleet/web:s1"}}},
                  vm2=built, vm3=built)
    assert build_share(hv, "web", "vm3", HOSTS, HOSTS, "c1", "appfleet/web:s1", False)["exporter"] == "vm2"
    assert build_share(hv, "web", "vm3", HOSTS, HOSTS, "c1", "appfleet/web:other", False)["exporter"] == ""
    assert build_share(hv, "web", "vm3", HOSTS, HOSTS, "c1", None, False)["exporter"] == ""
