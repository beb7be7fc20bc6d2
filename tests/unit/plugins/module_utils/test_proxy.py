"""The nginx upstream file of an app: its slots, the switch between them, the port set."""

from __future__ import annotations

import subprocess

import pytest

from ansible_collections.appfleet.docker.plugins.module_utils import _proxy


OLD_FORMAT = ("upstream appfleet_web { server 127.0.0.1:41234 max_fails=0; "
              "server 127.0.0.1:41235 max_fails=0 backup; }\n"
              "upstream appfleet_web.b { server 127.0.0.1:41235 max_fails=0; "
              "server 127.0.0.1:41234 max_fails=0 backup; }\n")


def test_upstream_render_and_parse():
    text = _proxy.render_upstream("web", 41234, 41235)
    assert text.startswith("# Managed by appfleet.docker.app_container")
    # Each group names only its own slot's port: no backup server.
    assert "upstream appfleet_web { server 127.0.0.1:41234 max_fails=0; }\n" in text
    assert "upstream appfleet_web.b { server 127.0.0.1:41235 max_fails=0; }\n" in text
    assert "backup" not in text and not _proxy.outdated(text, "web")
    assert _proxy.parse_slots(text, "web") == (41234, 41235)
    assert _proxy.parse_upstream_port(text) == 41234
    # Slot b without a port yet is the discard port, read as unassigned.
    assert _proxy.parse_slots(_proxy.render_upstream("web", 41234), "web") == (41234, None)
    # The one-server format of earlier versions: slot a only.
    assert _proxy.parse_slots("upstream appfleet_web { server 127.0.0.1:5555; }", "web") == (5555, None)
    assert _proxy.parse_slots(_proxy.render_placeholder("web"), "web") == (None, None)
    assert not _proxy.outdated("upstream appfleet_web { server 127.0.0.1:5555; }", "web")
    # The earlier format with backup servers: the same slots, and outdated.
    assert _proxy.parse_slots(OLD_FORMAT, "web") == (41234, 41235)
    assert _proxy.parse_slots(OLD_FORMAT) == (41234, 41235)
    assert _proxy.outdated(OLD_FORMAT, "web") and not _proxy.outdated(OLD_FORMAT, "api")
    assert _proxy.parse_upstream_port("upstream x { server 127.0.0.1:9; }") == 9
    assert _proxy.parse_upstream_port("# nothing") is None
    assert _proxy.parse_upstream_port(None) is None
    # Another app's groups in the same text are not this app's slots.
    two = _proxy.render_upstream("web-b", 1, 2) + _proxy.render_upstream("web", 3, 4)
    assert _proxy.parse_slots(two, "web") == (3, 4)


def test_slot_flag_and_reserved_ports(tmp_path):
    assert _proxy.slot_flag_file("web", str(tmp_path)) == str(tmp_path / "web.slot-b")
    (tmp_path / "web.conf").write_text(_proxy.render_upstream("web", 1111, 2222))
    (tmp_path / "api.conf").write_text(_proxy.render_placeholder("api"))
    (tmp_path / "old.conf").write_text("upstream appfleet_old { server 127.0.0.1:3333; }\n")
    (tmp_path / "notes.txt").write_text("server 127.0.0.1:4444;")
    assert _proxy.upstream_ports(str(tmp_path)) == {1111, 2222, 3333}
    assert _proxy.upstream_ports(str(tmp_path / "missing")) == set()


class FakeModule:
    """run_command stand-in: the commands are plain argv lists run for real."""

    def run_command(self, argv):
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        return proc.returncode, proc.stdout, proc.stderr


def test_proxy_switch_restores_file_when_test_fails(tmp_path):
    upstream = tmp_path / "web.conf"
    upstream.write_text("upstream appfleet_web { server 127.0.0.1:1111; }\n")
    proxy = _proxy.Proxy(FakeModule(), "web", str(upstream), ["false"], ["true"])
    with pytest.raises(_proxy.ProxyError) as err:
        proxy.switch(2222)
    assert "nginx config test" in str(err.value) and "put back" in str(err.value)
    assert proxy.current_port() == 1111
    ok = _proxy.Proxy(FakeModule(), "web", str(upstream), ["true"], ["true"])
    # From the one-server format: the new port takes the active slot, the old one the other.
    assert ok.switch(3333) == "reload" and ok.reloads == 1
    assert ok.current_port() == 3333 and ok.slots() == (3333, 1111) and ok.standby_port() == 1111


def test_proxy_switch_moves_only_the_flag_between_slots(tmp_path):
    upstream = tmp_path / "web.conf"
    flag = tmp_path / "web.slot-b"
    upstream.write_text(_proxy.render_placeholder("web"))
    # "false" as the reload command: any reload would fail the switch.
    no_reload = _proxy.Proxy(FakeModule(), "web", str(upstream), ["true"], ["false"])
    proxy = _proxy.Proxy(FakeModule(), "web", str(upstream), ["true"], ["true"])
    assert proxy.current_port() == _proxy.PLACEHOLDER_PORT and proxy.standby_port() is None
    # First deploy: a reload, and the spare port becomes slot b.
    assert proxy.switch(1111, spare=lambda: 2222) == "reload" and proxy.reloads == 1
    assert proxy.slots() == (1111, 2222) and not flag.exists()
    text = upstream.read_text()
    assert no_reload.switch(2222) == "flag" and flag.exists() and no_reload.current_port() == 2222
    assert no_reload.standby_port() == 1111 and upstream.read_text() == text
    assert no_reload.switch(1111) == "flag" and not flag.exists() and no_reload.current_port() == 1111
    assert no_reload.reloads == 0
    # A new port outside the slots (the free one was taken): it takes the active slot (b, the flag
    # stays) and the port that served becomes the other slot.
    no_reload.switch(2222)
    assert proxy.switch(4444) == "reload" and proxy.slots() == (2222, 4444) and flag.exists()
    assert proxy.current_port() == 4444
    # A failed rewrite puts file and flag back.
    failing = _proxy.Proxy(FakeModule(), "web", str(upstream), ["false"], ["true"])
    before = upstream.read_text()
    with pytest.raises(_proxy.ProxyError):
        failing.switch(5555)
    assert upstream.read_text() == before and flag.exists() and failing.current_port() == 4444
    # The placeholder (state absent) removes the flag: the file has no port for it.
    proxy.switch(None, content=_proxy.render_placeholder("web"))
    assert not flag.exists() and proxy.current_port() == _proxy.PLACEHOLDER_PORT


def test_rewrite_marker_lives_until_nginx_reloaded(tmp_path):
    upstream = tmp_path / "web.conf"
    marker = tmp_path / "web.reload-pending"
    upstream.write_text(_proxy.render_placeholder("web"))
    assert _proxy.reload_marker_file("web", str(tmp_path)) == str(marker)
    assert _proxy.marker_app(str(marker)) == "web"
    assert _proxy.marker_app(str(tmp_path / "web.conf")) is None
    assert _proxy.marker_app(str(tmp_path / ".reload-pending")) is None
    # The test command sees the marker: it is written before the file, kept through nginx -t.
    seen = tmp_path / "seen"
    proxy = _proxy.Proxy(FakeModule(), "web", str(upstream),
                         ["/bin/sh", "-c", "test -f %s && touch %s" % (marker, seen)], ["true"])
    assert not proxy.reload_pending()
    assert proxy.switch(1111, spare=2222) == "reload"
    assert seen.exists() and not marker.exists() and not proxy.reload_pending()
    # A refused rewrite is put back and reloaded: no marker either.
    refused = _proxy.Proxy(FakeModule(), "web", str(upstream), ["false"], ["true"])
    with pytest.raises(_proxy.ProxyError):
        refused.switch(3333)
    assert not marker.exists() and refused.current_port() == 1111
    # Put back but not reloaded: the marker stays for the next run, which says so.
    stuck = _proxy.Proxy(FakeModule(), "web", str(upstream), ["false"], ["false"])
    with pytest.raises(_proxy.ProxyError) as err:
        stuck.switch(3333)
    assert "the next run tests and reloads nginx again" in str(err.value)
    assert marker.exists() and stuck.reload_pending()
    # repair: nginx -t and a reload of the file as it is, then the marker goes; refused, it stays.
    with pytest.raises(_proxy.ProxyError):
        stuck.repair()
    assert marker.exists()
    before = upstream.read_text()
    proxy.repair()
    assert not marker.exists() and proxy.reloads == 2 and upstream.read_text() == before


def test_flag_switch_writes_no_marker(tmp_path):
    upstream = tmp_path / "web.conf"
    upstream.write_text(_proxy.render_upstream("web", 701, 702))
    proxy = _proxy.Proxy(FakeModule(), "web", str(upstream),
                         ["/bin/sh", "-c", "exit 1"], ["/bin/sh", "-c", "exit 1"])
    assert proxy.switch(702) == "flag" and not proxy.reload_pending()


@pytest.mark.parametrize("value, expected", [
    (None, None),
    ([700, 899], (700, 899)),
    (["1000", "1001"], (1000, 1001)),
    ([5, 5], "fewer than the two ports"),
    ([748, 750], "fewer than the two ports"),
    ([900, 800], "is not a range of ports"),
    ([0, 10], "is not a range of ports"),
    ([700], "give two port numbers"),
    (["a", "b"], "give two port numbers"),
])
def test_check_slot_ports(value, expected):
    if expected is None or isinstance(expected, tuple):
        assert _proxy.check_slot_ports(value) == expected
    else:
        with pytest.raises(_proxy.AppfleetError) as err:
            _proxy.check_slot_ports(value)
        assert str(err.value).startswith("proxy.slot_ports: ") and expected in str(err.value)


def test_slot_port_candidates_skip_the_placeholder_and_known_services():
    ports = _proxy.slot_port_candidates((745, 755))
    assert ports == [745, 746, 747, 748, 755]
    assert 9 not in _proxy.slot_port_candidates((1, 20))
    assert 873 not in _proxy.slot_port_candidates((700, 899))


@pytest.mark.parametrize("port_range, start, words", [
    (None, 0, None),
    ((700, 899), 1024, None),
    ((700, 1023), 1024, None),
    ((700, 1024), 1024, ["from 1024 up", "; choose slot ports below 1024"]),
    ((700, 899), 0, ["from 700 up", "ip_unprivileged_port_start=0", "above 899 (the kernel's default is 1024)"]),
    ((40000, 40100), 1024, ["from 40000 up", "; choose slot ports below 1024"]),
    ((40000, 40100), 0, ["from 40000 up", "choose slot ports below 1024 and set"]),
])
def test_unowned_ports_warning(port_range, start, words):
    text = _proxy.unowned_ports_warning(port_range, start)
    if words is None:
        assert text is None
    else:
        assert text.startswith("proxy.slot_ports %d-%d: " % port_range)
        for word in words:
            assert word in text
    if words and port_range and port_range[1] >= 1024:
        assert "above %d" % port_range[1] not in text


def test_rewrite_moves_both_slots_into_the_owned_range(tmp_path):
    """An app on ports outside slot_ports (an earlier version's ephemeral ones) moves in one rewrite."""
    upstream = tmp_path / "web.conf"
    upstream.write_text(_proxy.render_upstream("web", 41234, 41235))
    proxy = _proxy.Proxy(FakeModule(), "web", str(upstream), ["true"], ["true"], slot_ports=(700, 899))
    assert not proxy.owns(41235) and proxy.owns(700) and not proxy.owns(749) and not proxy.owns(None)
    assert proxy.switch(701, spare=lambda: 702) == "reload" and proxy.reloads == 1
    assert proxy.slots() == (701, 702)
    # Inside the range the serving port stays the other slot (a port the standby had taken).
    assert proxy.switch(703, spare=lambda: 704) == "reload" and proxy.slots() == (703, 701)
    # Without a range every port is the app's, as before.
    assert _proxy.Proxy(FakeModule(), "web", str(upstream)).owns(41234)


def test_outdated_format_is_rewritten_once_ports_and_flag_kept(tmp_path):
    """A file with backup servers becomes the one-server-a-slot format at the next switch."""
    upstream = tmp_path / "web.conf"
    flag = tmp_path / "web.slot-b"
    upstream.write_text(OLD_FORMAT)
    proxy = _proxy.Proxy(FakeModule(), "web", str(upstream), ["true"], ["true"])
    assert proxy.outdated() and proxy.slots() == (41234, 41235) and proxy.current_port() == 41234
    # A swap to the standby slot: the flag moves and the file is rewritten, ports kept.
    assert proxy.switch(41235) == "reload" and proxy.reloads == 1
    assert flag.exists() and upstream.read_text() == _proxy.render_upstream("web", 41234, 41235)
    assert not proxy.outdated() and proxy.current_port() == 41235
    # Once rewritten, a swap moves only the flag again.
    assert proxy.switch(41234) == "flag" and proxy.reloads == 1 and not flag.exists()
    # The same port (a run with nothing else to do): rewritten in place, the flag kept.
    upstream.write_text(OLD_FORMAT)
    flag.write_text("")
    assert proxy.switch(41235) == "reload" and flag.exists() and not proxy.outdated()
    # Refused by nginx: the old file and the flag as they were.
    upstream.write_text(OLD_FORMAT)
    flag.unlink()
    refused = _proxy.Proxy(FakeModule(), "web", str(upstream), ["false"], ["true"])
    with pytest.raises(_proxy.ProxyError):
        refused.switch(41235)
    assert upstream.read_text() == OLD_FORMAT and not flag.exists()
