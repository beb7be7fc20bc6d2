"""Pure logic of the release log: rollback target, idempotence, hold, named lookup, corrupt file."""

from __future__ import annotations

import json
import os
import stat

import pytest

from ansible_collections.appfleet.docker.plugins.module_utils import _releases as rel

C1, C2, C3, C4 = ("1111111aaaa", "2222222bbbb", "3333333cccc", "4444444dddd")


def image(n):
    return "sha256:%s" % (str(n) * 64)


def entry(entries, n, kind="deploy", result="serving", commit=None, t=None):
    e = rel.new_entry(entries, kind, result, image(n), image="web:%d" % n, source_id="%d" % n * 64,
                      git_commit=commit or ("%d" % n) * 7 + "abc", by="alice", now=t or 1700000000 + n)
    return e


def deploy(entries, n, t=None):
    """Deploy image n successfully (what the module records)."""
    serving = entries[-1]["image_id"] if entries else None
    new = entry(entries, n, t=t)
    plan_leaving = None
    return rel.record_success(entries, "deploy", new, None, plan_leaving) if serving != image(n) else entries


def rollback(entries, serving_n, to=None):
    plan = rel.plan_rollback(entries, image(serving_n), to)
    if plan["noop"]:
        return entries, plan
    target = plan["target"]
    new = rel.new_entry(entries, "rollback", "serving", target["image_id"], image=target["image"],
                        git_commit=target["git_commit"], now=1800000000 + len(entries))
    return rel.record_success(entries, "rollback", new, None, plan["leaving"]), plan


def served(entries):
    return rel.last_event(entries)["image_id"]


def three():
    log = []
    for n in (1, 2, 3):
        log = deploy(log, n)
    return log


def test_rollback_goes_to_previous_good_and_marks_the_one_left():
    log, plan = rollback(three(), 3)
    assert plan["target"]["image_id"] == image(2) and not plan["noop"]
    assert served(log) == image(2)
    assert [e["result"] for e in log] == ["serving", "serving", "rolled_back", "serving"]
    assert log[-1]["kind"] == "rollback" and log[-1]["from"] == log[2]["id"]


def test_second_rollback_changes_nothing():
    log, _plan = rollback(three(), 3)
    again, plan = rollback(log, 2)
    assert plan["noop"] and plan["target"]["image_id"] == image(2)
    assert again == log


def test_failed_release_is_skipped_and_changes_nothing_serving():
    log = three()
    log = rel.record_failure(log, entry(log, 4))
    assert log[-1]["result"] == "failed" and served(log) == image(3)
    plan = rel.plan_rollback(log, image(3))
    assert plan["target"]["image_id"] == image(2)
    # A failed one between good ones is skipped too.
    log = rel.record_failure(three()[:2], entry(three()[:2], 9))
    log = deploy(log, 3)
    assert rel.plan_rollback(log, image(3))["target"]["image_id"] == image(2)


def test_rolled_back_release_is_not_a_target_again():
    log, dummy = rollback(three(), 3)          # on 2, 3 rolled back
    log = rel.record_success(log, "deploy", entry(log, 4), None, None)   # new source
    plan = rel.plan_rollback(log, image(4))
    assert plan["target"]["image_id"] == image(2)


@pytest.mark.parametrize("desired,held", [(3, True), (2, False), (4, False)])
def test_hold_after_rollback(desired, held):
    log, dummy = rollback(three(), 3)
    got = rel.is_held(log, image(2), image(desired))
    assert (got is not None) is held
    if held:
        assert got["kind"] == "rollback" and got["image_id"] == image(2)


def test_hold_ends_with_a_deploy():
    log, dummy = rollback(three(), 3)
    log = rel.record_success(log, "deploy", entry(log, 3), None, None)  # resume
    assert rel.is_held(log, image(3), image(3)) is None
    log2, dummy = rollback(log, 3)
    # Rolled back again: held again, on 2.
    assert served(log2) == image(2) and rel.is_held(log2, image(2), image(3)) is not None


def test_no_log_falls_back_to_the_label():
    plan = rel.plan_rollback([], image(2))
    assert plan["target"] is None and plan["source"] == "label"
    one = deploy([], 2)
    assert rel.plan_rollback(one, image(2))["target"] is None


def test_serving_before_the_log_is_adopted():
    old = entry([], 1)
    log = rel.record_success([], "deploy", entry([], 2), old, None)
    assert [e["image_id"] for e in log] == [image(1), image(2)]
    log = rel.record_success([], "rollback", entry([], 1, kind="rollback"), entry([], 2), None)
    assert [(e["image_id"], e["result"]) for e in log] == [(image(2), "rolled_back"), (image(1), "serving")]


@pytest.mark.parametrize("ref,n", [
    ("1111111abc", 1),       # full git commit
    ("1111111", 1),          # 7-character prefix
    ("2222222", 2),
    ("1" * 64, 1),           # source id
])
def test_named_lookup_by_revision(ref, n):
    assert rel.find_release(three(), ref)["image_id"] == image(n)


def test_named_lookup_by_release_id_and_rollback_to_it():
    log = three()
    rid = log[0]["id"]
    assert rel.find_release(log, rid) is log[0]
    after, plan = rollback(log, 3, to=rid)
    assert served(after) == image(1) and after[2]["result"] == "rolled_back"
    # Named rollback to what serves: nothing to do.
    assert rel.plan_rollback(after, image(1), rid)["noop"]


@pytest.mark.parametrize("ref,message", [
    ("999999999", "no release of revision"),
    ("abc", "not a source revision"),
    ("20200101T000000Z-deadbeef", "not a source revision"),
])
def test_named_lookup_unknown(ref, message):
    with pytest.raises(rel.ReleaseError, match=message):
        rel.find_release(three(), ref)


def test_named_lookup_ambiguous_prefix():
    log = []
    for n, commit in ((1, "abcdef01111"), (2, "abcdef02222")):
        log = rel.record_success(log, "deploy", entry(log, n, commit=commit), None, None)
    with pytest.raises(rel.ReleaseError, match="ambiguous"):
        rel.find_release(log, "abcdef0")
    assert rel.find_release(log, "abcdef02")["image_id"] == image(2)


def test_ids_are_unique_and_log_is_bounded():
    log = []
    for i in range(30):
        log = rel.record_success(log, "deploy", entry(log, i % 3 + 1, t=1700000000), None, None)
    assert len(log) == rel.MAX_ENTRIES
    assert len(set(e["id"] for e in log)) == len(log)


def test_available_lists_one_per_image_newest_first_without_failed():
    log = rel.record_failure(three(), entry(three(), 4))
    assert [e["image_id"] for e in rel.available(log)] == [image(3), image(2), image(1)]
    assert [e["image_id"] for e in rel.available(log, lambda i: i != image(2))] == [image(3), image(1)]


def test_file_is_written_atomically_0644_and_read_back(tmp_path):
    log = rel.ReleaseLog(str(tmp_path / "releases"), "web")
    assert log.load() == []
    entries = three()
    log.save(entries)
    path = tmp_path / "releases" / "web.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert json.loads(path.read_text())["releases"] == entries
    assert rel.ReleaseLog(str(tmp_path / "releases"), "web").load() == entries
    assert sorted(p.name for p in (tmp_path / "releases").iterdir()) == ["web.json"]


@pytest.mark.parametrize("text", ["{not json", "[]", '{"releases": [{"id": "x"}]}', ""])
def test_corrupt_log_is_moved_aside_with_a_warning(tmp_path, text):
    (tmp_path / "web.json").write_text(text)
    log = rel.ReleaseLog(str(tmp_path), "web")
    assert log.load() == []
    assert len(log.warnings) == 1 and "moved to" in log.warnings[0] and str(tmp_path / "web.json") in log.warnings[0]
    assert not (tmp_path / "web.json").exists()
    assert len(list(tmp_path.glob("web.json.bad-*"))) == 1
    with pytest.raises(rel.ReleaseError):
        (tmp_path / "api.json").write_text(text)
        rel.ReleaseLog(str(tmp_path), "api").read()


def test_unreadable_log_that_cannot_be_moved_is_a_message(tmp_path):
    (tmp_path / "web.json").mkdir()   # a directory: cannot be read as the log
    os.chmod(tmp_path, 0o555)
    try:
        log = rel.ReleaseLog(str(tmp_path), "web")
        if os.geteuid() == 0:
            # root may rename in a read-only directory: moved aside.
            assert log.load() == [] and log.warnings
        else:
            with pytest.raises(rel.ReleaseError, match="cannot be moved aside"):
                log.load()
    finally:
        os.chmod(tmp_path, 0o755)
