"""The host's deploy lock: free, held, same run, lease, reboot, dead holder, release."""

from __future__ import annotations

import json

import pytest

from ansible_collections.appfleet.docker.plugins.module_utils import _deploy_lock as dl

A = {"host": "ctl", "pid": 100, "started": "2026-12-06T18:00:00Z", "playbook": "deploy.yml",
     "run_id": "ctl:100:1.00"}
B = {"host": "ctl", "pid": 200, "started": "2026-12-06T18:05:00Z", "playbook": "deploy.yml", "run_id": "ctl:200:2.00"}
C = {"host": "ci-2", "pid": 300, "started": "2026-12-06T18:06:00Z", "playbook": "rollback.yml", "run_id": "ci-2:300:3.00"}
NOW = 1000000.0


def rec(holder, at=NOW - 10, boot="boot-1"):
    return dl.make_record(holder, at, boot)


@pytest.mark.parametrize("record, holder, kwargs, expected", [
    ({}, A, {}, dl.FREE),
    ({"holder": {}}, A, {}, dl.FREE),
    (rec(A), A, {}, dl.SAME),
    (rec(C), A, {}, dl.HELD),                                     # another controller: wait
    (rec(B), A, {}, dl.CHECK),                                    # this controller, unchecked: ask it
    (rec(dict(B, pid_ns="pid:[2]")), A, {}, dl.HELD),            # same host name, another pid namespace
    (rec(B), A, {"alive_run_id": B["run_id"]}, dl.HELD),          # checked and alive: wait
    (rec(B), A, {"dead_run_id": B["run_id"]}, dl.DEAD),           # checked and gone: take over
    (rec(C), A, {"dead_run_id": B["run_id"]}, dl.HELD),           # the check was about another run
    (rec(C, at=NOW - 3600), A, {}, dl.EXPIRED),                   # lease over
    (rec(C, at=NOW - 3599), A, {}, dl.HELD),
    (rec(C, boot="boot-0"), A, {}, dl.REBOOTED),                  # written before this boot
    (rec(C, boot=""), A, {}, dl.HELD),                            # boot unknown: not stale for that
])
def test_decide(record, holder, kwargs, expected):
    assert dl.decide(record, holder, NOW, 3600, "boot-1", **kwargs) == expected


def test_run_id_without_one_is_host_pid_start():
    assert dl.run_id({"host": "h", "pid": 1, "started": "s"}) == "h:1:s"
    assert dl.run_id(A) == A["run_id"]


class Clock(object):
    """A fake clock that sleep() advances."""

    def __init__(self, now=NOW):
        self.now = now
        self.slept = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


def make(tmp_path, clock=None):
    clock = clock or Clock()
    return dl.DeployLock(str(tmp_path / "locks" / "deploy.lock"), clock=clock, sleep=clock.sleep), clock


def test_free_then_same_run_then_release(tmp_path):
    lock, clock = make(tmp_path)
    res = lock.acquire(A)
    assert res["outcome"] == dl.FREE and res["changed"] is True
    on_disk = json.loads((tmp_path / "locks" / "deploy.lock").read_text())
    assert on_disk["holder"] == A and on_disk["acquired_at"] == NOW
    clock.now += 100
    again = lock.acquire(A)
    assert again["outcome"] == dl.SAME and again["changed"] is False
    assert lock.read()["acquired_at"] == NOW + 100  # the lease is renewed
    assert lock.release(A)["outcome"] == "released"
    assert not (tmp_path / "locks" / "deploy.lock").exists()
    assert lock.release(A) == {"outcome": "free", "changed": False, "record": {}}


def test_held_by_another_waits_then_fails_naming_it(tmp_path):
    lock, clock = make(tmp_path)
    lock.acquire(C)
    with pytest.raises(dl.DeployLockTimeout) as err:
        lock.acquire(A, wait=5)
    msg = str(err.value)
    for part in ("pid 300", "controller ci-2", "rollback.yml", "2026-12-06T18:06:00Z", "gave up after 5 s",
                 "remove %s" % lock.path):
        assert part in msg
    assert sum(clock.slept) == pytest.approx(5)
    assert lock.read()["holder"] == C


def test_waits_until_the_other_releases(tmp_path):
    lock, clock = make(tmp_path)
    lock.acquire(C)
    real_sleep = clock.sleep

    def sleep(seconds):
        real_sleep(seconds)
        if len(clock.slept) == 3:
            lock.release(C)
    lock.sleep = sleep
    res = lock.acquire(A, wait=60)
    assert res["outcome"] == dl.FREE and res["previous"]["holder"] == C
    assert res["waited_seconds"] == pytest.approx(3)


def test_lease_expiry_takes_over(tmp_path):
    lock, clock = make(tmp_path)
    lock.acquire(C)
    clock.now += 3600
    res = lock.acquire(A, wait=0, lease=3600)
    assert res["outcome"] == dl.EXPIRED and res["previous"]["holder"] == C
    assert lock.read()["holder"] == A


def test_dead_holder_of_this_controller(tmp_path):
    lock, _clock = make(tmp_path)
    lock.acquire(B)
    # Unchecked: the module asks the controller and takes nothing.
    res = lock.acquire(A, wait=60)
    assert res["outcome"] == dl.CHECK and res["previous"]["holder"] == B
    assert lock.read()["holder"] == B
    res = lock.acquire(A, wait=0, dead_run_id=B["run_id"])
    assert res["outcome"] == dl.DEAD and res["previous"]["holder"] == B
    assert lock.read()["holder"] == A


def test_release_by_another_is_refused(tmp_path):
    lock, _clock = make(tmp_path)
    lock.acquire(A)
    res = lock.release(C)
    assert res["outcome"] == "refused" and res["changed"] is False
    assert lock.read()["holder"] == A


def test_check_mode_takes_nothing(tmp_path):
    lock, clock = make(tmp_path)
    res = lock.acquire(A, check_mode=True)
    assert res["outcome"] == dl.FREE and res["changed"] is False
    assert not (tmp_path / "locks" / "deploy.lock").exists()
    lock.acquire(C)
    res = lock.acquire(A, wait=60, check_mode=True)
    assert res["outcome"] == dl.HELD and clock.slept == []
