"""Waiting for an nginx reload: the master's pid file from the reload command, /proc parsing, the rule."""

from __future__ import annotations

import pytest

from ansible_collections.appfleet.docker.plugins.module_utils import _nginx_reload


@pytest.mark.parametrize("argv, expected", [
    (["nginx", "-s", "reload"], {"s": "reload"}),
    (["/usr/sbin/nginx", "-p", "/srv/n", "-e", "/srv/n/e.log", "-c", "/srv/n/n.conf", "-s", "reload"],
     {"p": "/srv/n", "e": "/srv/n/e.log", "c": "/srv/n/n.conf", "s": "reload"}),
    # A value in the letter's word, letters grouped as nginx reads them; the last value wins.
    (["nginx", "-cconf/a.conf", "-qtc", "b.conf", "-g", "pid x.pid;"], {"c": "b.conf", "g": "pid x.pid;"}),
    (["sudo", "-n", "nginx", "-s", "reload"], {"s": "reload"}),
    (["systemctl", "reload", "nginx"], {}),
    (["systemctl", "reload", "nginx.service"], {}),
    (["service", "nginx", "reload"], {}),
    (["nginx", "-c"], {"c": ""}),
    (["true"], None),
    (["/usr/local/bin/reload-proxy", "--now"], None),
])
def test_nginx_options(argv, expected):
    assert _nginx_reload.nginx_options(argv) == expected


@pytest.mark.parametrize("text, expected", [
    ("user www-data;\npid /run/nginx.pid;\nevents {}\n", "/run/nginx.pid"),
    ("worker_processes 1;pid  logs/n.pid ;", "logs/n.pid"),
    ('pid "/run/my nginx.pid";', "/run/my nginx.pid"),
    ("# pid /commented.pid;\nevents { }\n", None),
    ("events { worker_connections 512; }\nhttp { include x; }\n", None),
    ("daemon off; pid /g.pid;", "/g.pid"),
    (None, None),
])
def test_pid_directive(text, expected):
    assert _nginx_reload.pid_directive(text) == expected


def test_pid_file_follows_prefix_conf_and_directives():
    files = {
        "/etc/nginx/nginx.conf": "user www-data;\npid /run/nginx.pid;\n",
        "/srv/n/nginx.conf": "pid /srv/n/nginx.pid;\n",
        "/srv/n/rel.conf": "pid logs/nginx.pid;\n",
        "/srv/n/none.conf": "events {}\n",
    }
    pid_file = _nginx_reload.pid_file

    def read(path):
        return files.get(path)

    assert pid_file(["nginx", "-s", "reload"], read) == "/run/nginx.pid"
    assert pid_file(["systemctl", "reload", "nginx"], read) == "/run/nginx.pid"
    assert pid_file(["nginx", "-c", "/srv/n/nginx.conf", "-s", "reload"], read) == "/srv/n/nginx.pid"
    # Relative paths are the prefix's, and not guessed without one.
    assert pid_file(["nginx", "-p", "/srv/n", "-c", "rel.conf", "-s", "reload"], read) == "/srv/n/logs/nginx.pid"
    assert pid_file(["nginx", "-c", "rel.conf", "-s", "reload"], read) is None
    assert pid_file(["nginx", "-c", "/srv/n/rel.conf", "-s", "reload"], read) is None
    # No pid directive: the compiled-in path. -g comes first and needs no readable conf.
    assert pid_file(["nginx", "-c", "/srv/n/none.conf", "-s", "reload"], read) == "/run/nginx.pid"
    assert pid_file(["nginx", "-g", "pid /g/n.pid;", "-c", "/missing.conf", "-s", "reload"], read) == "/g/n.pid"
    # A conf nginx could not read, or a command that runs no nginx: nothing to watch.
    assert pid_file(["nginx", "-c", "/missing.conf", "-s", "reload"], read) is None
    assert pid_file(["true"], read) is None


@pytest.mark.parametrize("line, expected", [
    ("1386 (nginx) S 1 1386 1386 0 -1 4202816 0 0", ("nginx", 1)),
    ("42 (a (b) c) R 7 42 42 0", ("a (b) c", 7)),
])
def test_parse_stat(line, expected):
    assert _nginx_reload.parse_stat(line) == expected


@pytest.mark.parametrize("line", ["", "1386 (nginx)", "1386 (nginx) S x"])
def test_parse_stat_refuses_garbage(line):
    with pytest.raises((ValueError, IndexError)):
        _nginx_reload.parse_stat(line)


def fake_proc(root, processes):
    """A /proc-like tree: {pid: (command name, parent pid, title)}."""
    root.mkdir()
    for pid, (name, ppid, title) in processes.items():
        entry = root / str(pid)
        entry.mkdir()
        (entry / "stat").write_text("%d (%s) S %d %d %d 0 -1\n" % (pid, name, ppid, pid, pid))
        (entry / "cmdline").write_bytes(title.encode() + b"\0\0")
    (root / "self").mkdir()
    (root / "meminfo").write_text("MemTotal: 1 kB\n")
    return str(root)


def test_children_and_master_from_proc(tmp_path):
    proc = fake_proc(tmp_path / "proc", {
        10: ("nginx", 1, "nginx: master process /usr/sbin/nginx"),
        11: ("nginx", 10, "nginx: worker process"),
        12: ("nginx", 10, "nginx: worker process is shutting down"),
        13: ("nginx", 10, "nginx: cache manager process"),
        20: ("python3", 1, "python3 -m http.server"),
        21: ("sh", 20, "sh -c true"),
    })
    assert _nginx_reload.children(10, proc) == {11: "nginx: worker process",
                                                12: "nginx: worker process is shutting down",
                                                13: "nginx: cache manager process"}
    assert _nginx_reload.children(99, proc) == {}
    pid = tmp_path / "nginx.pid"
    pid.write_text("10\n")
    assert _nginx_reload.master_pid(str(pid), proc) == 10
    # A stale pid file: the pid is another program's, or no process's.
    pid.write_text("20\n")
    assert _nginx_reload.master_pid(str(pid), proc) is None
    pid.write_text("30\n")
    assert _nginx_reload.master_pid(str(pid), proc) is None
    pid.write_text("")
    assert _nginx_reload.master_pid(str(pid), proc) is None
    assert _nginx_reload.master_pid(str(tmp_path / "missing.pid"), proc) is None


OLD = {11: "nginx: worker process", 12: "nginx: worker process", 13: "nginx: cache manager process"}


@pytest.mark.parametrize("now, expected", [
    # Nothing happened yet.
    (OLD, False),
    # New workers started; the old ones not told to stop yet (nginx waits about 100 ms).
    ({**OLD, 14: "nginx: worker process", 15: "nginx: worker process"}, False),
    ({12: "nginx: worker process", 13: "nginx: cache manager process is shutting down",
      14: "nginx: worker process"}, False),
    # Every old worker gone or shutting down (their connections' requests may still run).
    ({11: "nginx: worker process is shutting down", 14: "nginx: worker process",
      15: "nginx: worker process"}, True),
    ({14: "nginx: worker process", 15: "nginx: worker process", 16: "nginx: cache manager process"}, True),
    # Old workers gone but no new one (a master that could not start them): not applied.
    ({}, False),
    ({13: "nginx: cache manager process"}, False),
])
def test_applied(now, expected):
    assert _nginx_reload.applied(OLD, now) is expected


def test_watch_without_nginx_does_not_wait():
    watch = _nginx_reload.ReloadWatch(["true"])
    assert watch.master is None and watch.before == {}
    assert watch.wait(timeout=0)
