"""app_container's upstream file against the real engine and a private real nginx: a run killed
between the upstream rewrite and the reload, a standby port nginx never uses, an opt-in range of
slot ports no local user can take, and the earlier format rewritten once."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import run_module, start_module  # noqa: E402  (tests/conftest.py helpers)
pytest.register_assert_rewrite("app_container.fixtures")
from app_container.fixtures import kill_tree  # noqa: E402

# The fixtures app, app_images, nginx and state_dir (private nginx, test images, one app per test) live there.
pytest_plugins = ["app_container.fixtures"]

SERVER_RE = re.compile(r"server 127\.0\.0\.1:([0-9]+)")


def slots(upstream, app):
    """(port of slot a, port of slot b) of the app's upstream file: the first server of each group."""
    text = upstream.read_text()
    return tuple(int(SERVER_RE.findall(text[text.index("upstream appfleet_%s%s {" % (app, group)):])[0])
                 for group in ("", ".b"))


def marker_reasons(result, app):
    return [reason for reason in result["reasons"] if reason.startswith("app %s: its nginx upstream file" % app)]


def test_kill_between_upstream_write_and_reload_is_repaired_by_the_next_run(app, nginx, tmp_path):
    """The first deploy rewrites the placeholder; the run is killed while nginx -t runs."""
    started = tmp_path / "nginx-test-started"
    slow = app.args(image="afb-app:v1")
    slow["proxy"] = dict(slow["proxy"], test_command=["/bin/sh", "-c", "touch %s; sleep 120" % started])
    proc = start_module("app_container", slow, tmp_path)
    try:
        for dummy in range(900):
            if started.exists() or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert started.exists(), "the run never reached nginx -t"
    finally:
        kill_tree(proc)
    upstream = nginx.upstreams / ("%s.conf" % app.name)
    marker = nginx.upstreams / ("%s.reload-pending" % app.name)
    (container,) = app.containers()
    port = int(container.attrs["HostConfig"]["PortBindings"]["8080/tcp"][0]["HostPort"])
    # The file names the container, nginx still runs the placeholder; the marker says so.
    assert marker.exists() and slots(upstream, app.name)[0] == port
    assert app.get()[0] == 502

    # The plan: even a record taken in this state does not make the host converged.
    plan = dict(path=str(tmp_path / "deploy-state.json"), fingerprint="f" * 64, watch_paths=[str(nginx.upstreams)])
    assert run_module("deploy_state", dict(plan, state="record")).get("failed") is not True
    before = run_module("deploy_state", plan)
    assert before["converged"] is False and marker_reasons(before, app.name), before["reasons"]

    check = run_module("app_container", app.args(image="afb-app:v1"), check=True, diff=True)
    assert check.get("changed") is True and check["action"] == "reconciled", check
    assert "a run without check mode tests and reloads nginx" in check["proxy_repair"]
    assert check["diff"]["before"]["upstream_reload_pending"] is True and marker.exists()
    res = run_module("app_container", app.args(image="afb-app:v1"))
    assert res.get("changed") is True and res["action"] == "reconciled", res
    assert res["proxy_reloads"] == 1 and res["container"]["id"] == container.id
    assert "before nginx was reloaded with it" in res["proxy_repair"] and res["proxy_repair"] in res["msg"]
    assert not marker.exists()
    assert app.get() == (200, "version v1\n")
    # By default, slot ports are unprivileged ones, with no range to warn about.
    assert all(p > 1024 for p in slots(upstream, app.name)), upstream.read_text()
    assert not any("slot_ports" in w for w in res.get("warnings", [])), res
    after = run_module("deploy_state", plan)
    assert not marker_reasons(after, app.name), after["reasons"]
    again = run_module("app_container", app.args(image="afb-app:v1"))
    assert again.get("changed") is False and "proxy_repair" not in again, again


def test_slot_ports_move_into_the_owned_range_honouring_reserved_ports(app, nginx):
    """An app on unowned ports (as from an earlier version) moves in one rewrite; later swaps
    take the owned standby; ports another app's upstream file names are never taken."""
    wide = app.args(image="afb-app:v1")
    wide["proxy"] = dict(wide["proxy"], slot_ports=[42000, 42999])
    first = run_module("app_container", wide)
    assert first["action"] == "created", first
    upstream = Path(first["upstream_file"])
    assert all(42000 <= p <= 42999 for p in slots(upstream, app.name))
    assert any("proxy.slot_ports 42000-42999" in w and "ip_unprivileged_port_start" in w
               for w in first.get("warnings", [])), first

    # Four owned ports, two of them another app's.
    other = nginx.upstreams / ("afb-reserved-%s.conf" % app.name[4:])
    other.write_text("upstream appfleet_afb-reserved { server 127.0.0.1:1010 max_fails=0; "
                     "server 127.0.0.1:1011 max_fails=0 backup; }\n")
    try:
        narrow = app.args(image="afb-app:v2")
        narrow["proxy"] = dict(narrow["proxy"], slot_ports=[1010, 1013])
        moved = run_module("app_container", narrow)
        assert moved.get("failed") is not True, moved["msg"]
        assert moved["action"] == "replaced" and moved["proxy_reloads"] == 1, moved
        assert sorted(slots(upstream, app.name)) == [1012, 1013]
        assert moved["container"]["host_port"] in (1012, 1013)
        assert not any("slot_ports" in w for w in moved.get("warnings", [])), moved
        assert app.get() == (200, "version v2\n")

        narrow["image"] = "afb-app:v1"
        swapped = run_module("app_container", narrow)
        assert swapped.get("failed") is not True, swapped["msg"]
        assert swapped["action"] == "replaced" and swapped["proxy_reloads"] == 0, swapped
        assert {swapped["container"]["host_port"], moved["container"]["host_port"]} == {1012, 1013}
        assert app.get() == (200, "version v1\n")
    finally:
        other.unlink()
    # The standby port (no container publishes it now) is not for any local user to take,
    # while an unowned port of the first range is.
    assert bind_as_nobody(moved["container"]["host_port"]) == "Permission denied"
    assert bind_as_nobody(first["container"]["host_port"]) == "bound"


def test_standby_port_gets_no_request_and_old_format_is_rewritten(app, nginx):
    """With the default (no range) a process that takes the standby port receives nothing while
    traffic flows; a file with backup servers (earlier versions) is rewritten once."""
    assert run_module("app_container", app.args(image="afb-app:v1"))["action"] == "created"
    swapped = run_module("app_container", app.args(image="afb-app:v2"))
    assert swapped["action"] == "replaced" and swapped["proxy_reloads"] == 0, swapped
    upstream = Path(swapped["upstream_file"])
    text = upstream.read_text()
    assert "backup" not in text and text.count("server 127.0.0.1:") == 2, text
    active = swapped["container"]["host_port"]
    (standby,) = set(slots(upstream, app.name)) - {active}
    assert standby > 1024
    # The old container holds the standby port until its drain ends.
    app.containers()

    # The user nobody listens on the standby port (no container publishes it) and counts connections.
    code = ("import socket, sys\nsock = socket.socket()\nsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
            "sock.bind(('127.0.0.1', %d))\nsock.listen(16)\nsock.settimeout(0.2)\nprint('listening', flush=True)\n"
            "count = 0\nwhile sys.stdin.readline() == 'more\\n':\n"
            "    try:\n        sock.accept()[0].close()\n        count += 1\n    except socket.timeout:\n        pass\n"
            "print(count, flush=True)\n" % standby)
    listener = subprocess.Popen(["/usr/bin/python3", "-c", code], user=65534, cwd="/", stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
    try:
        assert listener.stdout.readline() == "listening\n"
        for dummy in range(20):
            assert app.get() == (200, "version v2\n")
            listener.stdin.write("more\n")
            listener.stdin.flush()
        # The active container down (a restart): nginx answers 502, it does not fall back on the standby port.
        (container,) = app.containers()
        container.stop(timeout=1)
        for dummy in range(3):
            assert app.get()[0] == 502
            listener.stdin.write("more\n")
            listener.stdin.flush()
        container.start()
        for dummy in range(100):
            if app.get()[0] == 200:
                break
            time.sleep(0.1)
        assert app.get() == (200, "version v2\n")
        listener.stdin.write("done\n")
        listener.stdin.flush()
        assert listener.stdout.readline() == "0\n"
    finally:
        listener.kill()
        listener.wait(timeout=10)

    # The earlier format, same ports: the next run rewrites it (one reload) and reports reconciled.
    old = ("upstream appfleet_{a} {{ server 127.0.0.1:{p} max_fails=0; server 127.0.0.1:{q} max_fails=0 backup; }}\n"
           "upstream appfleet_{a}.b {{ server 127.0.0.1:{q} max_fails=0; server 127.0.0.1:{p} max_fails=0 backup; }}\n")
    a_port, b_port = slots(upstream, app.name)
    upstream.write_text(old.format(a=app.name, p=a_port, q=b_port))
    check = run_module("app_container", app.args(image="afb-app:v2"), check=True, diff=True)
    assert check["action"] == "reconciled" and "upstream_format" in check["diff"]["before"], check
    fixed = run_module("app_container", app.args(image="afb-app:v2"))
    assert fixed["action"] == "reconciled" and fixed["proxy_reloads"] == 1, fixed
    assert upstream.read_text() == text and app.get() == (200, "version v2\n")
    assert run_module("app_container", app.args(image="afb-app:v2"))["action"] == "unchanged"


def bind_as_nobody(port):
    """Bind 127.0.0.1:port as the user nobody (the system python: the venv's is under /root)."""
    code = ("import socket\nsock = socket.socket()\nsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
            "try:\n    sock.bind(('127.0.0.1', %d))\n    print('bound')\n"
            "except OSError as exc:\n    print(exc.strerror)\n" % port)
    proc = subprocess.run(["/usr/bin/python3", "-c", code], user=65534, cwd="/", capture_output=True, text=True,
                          timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()
