"""_drain: which draining containers were left behind (past their deadline, no remover at work)."""

from __future__ import annotations

import sys

from ansible_collections.appfleet.docker.plugins.module_utils import _drain

CID = "3f2c9a0e1b7d" + "0" * 52


def write_proc(root, pid, argv):
    """A /proc/<pid>/cmdline as the kernel writes it: the arguments, each ended by a NUL."""
    (root / str(pid)).mkdir()
    (root / str(pid) / "cmdline").write_bytes(b"".join(a.encode() + b"\0" for a in argv))


def test_live_removers_reads_the_container_id_from_each_remover_command_line(tmp_path):
    params = {"name": "web", "stop_timeout": 10, "docker_host": "unix:///var/run/docker.sock", "api_timeout": 60}
    write_proc(tmp_path, 10, _drain.remover_argv(params, CID, 1000, ["/etc/appfleet/secrets/web/r1"]))
    # Neither another python -c program nor a process that only names the marker later counts.
    write_proc(tmp_path, 11, [sys.executable, "-c", "print(1)", "x", "web", "c1"])
    write_proc(tmp_path, 12, ["grep", _drain.MARKER, "web", "c2", "c3", "c4"])
    (tmp_path / "self").mkdir()
    (tmp_path / "13").mkdir()  # gone while read: no cmdline
    assert _drain.live_removers(str(tmp_path)) == {CID}
    assert _drain.live_removers(str(tmp_path / "absent")) == set()


def test_a_container_past_its_deadline_is_left_behind_only_without_its_remover():
    live = {CID}
    assert not _drain.left_behind(CID, 1000, 999, set())  # before the deadline: draining
    assert _drain.left_behind(CID, 1000, 1000, set())  # its remover was killed or the host rebooted
    # The remover still stops it (stop_timeout) and removes it: not left behind.
    assert not _drain.left_behind(CID, 1000, 1020, live)
    assert not _drain.left_behind(CID[:12], 1000, 1020, live)  # the short id of a listing
    assert _drain.left_behind("9" * 64, 1000, 1020, live)  # another container's remover
    assert _drain.left_behind(CID, 1000, 1020, {""})
