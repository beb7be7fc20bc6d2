"""bench/labcpu.py: the CPU of a process tree, from /proc-like stat files."""

from __future__ import annotations

import os

import pytest

from .scripts import load_script

labcpu = load_script("labcpu.py", "bench_labcpu")


def stat_line(pid, comm, ppid, utime, stime, cutime, cstime):
    # pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime ...
    return "%d (%s) S %d 1 1 0 -1 0 0 0 0 0 %d %d %d %d 20 0 1 0 100 0 0\n" % (
        pid, comm, ppid, utime, stime, cutime, cstime)


@pytest.fixture()
def proc(tmp_path):
    rows = [
        (1, "systemd", 0, 100, 100, 0, 0),
        (50, "vm init", 1, 1, 2, 3, 4),          # a space in the name
        (60, "containerd-shim", 50, 5, 5, 40, 10),  # reaped health checks: children times
        (61, "python3", 60, 7, 3, 0, 0),
        (70, "(weird) name", 1, 9, 9, 0, 0),    # not in the tree
    ]
    for row in rows:
        (tmp_path / str(row[0])).mkdir()
        (tmp_path / str(row[0]) / "stat").write_text(stat_line(*row))
    (tmp_path / "self").mkdir()  # not a pid
    (tmp_path / "99").mkdir()    # a process that ended: no stat file
    return tmp_path


def test_process_table_reads_parent_and_all_four_times(proc):
    table = labcpu.process_table(str(proc))
    assert table[50] == (1, 10) and table[60] == (50, 60) and table[70] == (1, 18)
    assert 99 not in table and sorted(table) == [1, 50, 60, 61, 70]


def test_tree_ticks_counts_the_root_and_everything_below_it_only(proc):
    table = labcpu.process_table(str(proc))
    assert labcpu.tree_ticks(table, 50) == 10 + 60 + 10
    assert labcpu.tree_ticks(table, 61) == 10
    assert labcpu.tree_ticks(table, 12345) == 0


def test_tree_ticks_survives_a_parent_loop():
    assert labcpu.tree_ticks({5: (6, 1), 6: (5, 2)}, 5) == 3


def test_main_refuses_a_window_out_of_bounds(capsys):
    with pytest.raises(SystemExit):
        labcpu.main(["--seconds", "1"])
    assert "--seconds: between 5 and 600" in capsys.readouterr().err


def test_the_running_test_process_is_in_the_table():
    assert os.getpid() in labcpu.process_table()
