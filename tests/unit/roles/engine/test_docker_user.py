"""appfleet-docker-user: the DOCKER-USER rules and the commands that put them in place."""

from __future__ import annotations

import json
import re

import pytest

from ansible_collections.appfleet.docker.plugins.module_utils._engine_settings import PATHS

HEAD = ["-A DOCKER-USER -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
        "-A DOCKER-USER -i docker0 -j RETURN",
        "-A DOCKER-USER -i br-+ -j RETURN"]
TAIL = ["-A DOCKER-USER -o docker0 -j DROP",
        "-A DOCKER-USER -o br-+ -j DROP",
        "-A DOCKER-USER -j RETURN"]


def nets(rules, *networks):
    return rules.load_settings(json.dumps({"allowed_networks": list(networks)}))


@pytest.mark.parametrize("networks, family, allowed_rules", [
    # The role's default engine_allowed_networks.
    (["127.0.0.0/8", "::1/128"], 4, ["-A DOCKER-USER -s 127.0.0.0/8 -j RETURN"]),
    (["127.0.0.0/8", "::1/128"], 6, ["-A DOCKER-USER -s ::1/128 -j RETURN"]),
    # Host bits are dropped; a /0 network has no -s (iptables -S prints none).
    (["10.20.1.7/16", "0.0.0.0/0", "2001:db8:20::/48"], 4,
     ["-A DOCKER-USER -s 10.20.0.0/16 -j RETURN", "-A DOCKER-USER -j RETURN"]),
    (["10.20.1.7/16", "2001:db8:20::1/48", "::/0"], 6,
     ["-A DOCKER-USER -s 2001:db8:20::/48 -j RETURN", "-A DOCKER-USER -j RETURN"]),
    (["192.0.2.9"], 4, ["-A DOCKER-USER -s 192.0.2.9/32 -j RETURN"]),
    ([], 6, []),
])
def test_wanted_rules(rules, networks, family, allowed_rules):
    assert rules.wanted_rules(family, nets(rules, *networks)) == HEAD + allowed_rules + TAIL


@pytest.mark.parametrize("family, jump_present, commands", [
    (4, True, [["iptables-restore", "-w", "10", "--noflush"]]),
    (4, False, [["iptables-restore", "-w", "10", "--noflush"],
                ["iptables", "-w", "10", "-I", "FORWARD", "1", "-j", "DOCKER-USER"]]),
    (6, False, [["ip6tables-restore", "-w", "10", "--noflush"],
                ["ip6tables", "-w", "10", "-I", "FORWARD", "1", "-j", "DOCKER-USER"]]),
])
def test_apply_commands(rules, family, jump_present, commands):
    planned = rules.apply_commands(family, nets(rules, "127.0.0.0/8", "::1/128"), jump_present)
    assert [argv for argv, _stdin in planned] == commands
    assert [stdin is None for _argv, stdin in planned] == [False] + [True] * (len(commands) - 1)


def test_restore_input_declares_only_the_chain(rules):
    text = rules.restore_input(4, nets(rules, "127.0.0.0/8", "::1/128"))
    assert text == "\n".join(["*filter", ":DOCKER-USER - [0:0]"] + HEAD
                             + ["-A DOCKER-USER -s 127.0.0.0/8 -j RETURN"] + TAIL + ["COMMIT", ""])


@pytest.mark.parametrize("family, argv", [
    (4, ["iptables", "-w", "10", "-S", "DOCKER-USER"]),
    (6, ["ip6tables", "-w", "10", "-S", "DOCKER-USER"]),
])
def test_list_and_jump_check_argv(rules, family, argv):
    assert rules.list_argv(family) == argv
    assert rules.jump_check_argv(family) == argv[:3] + ["-C", "FORWARD", "-j", "DOCKER-USER"]


def test_listing_as_ip6tables_prints_it_compares_equal(rules):
    allowed = nets(rules, "::ffff:10.0.0.0/104", "fd00:af1:e::1/128")
    listing = "\n".join(["-N DOCKER-USER"] + HEAD + ["-A DOCKER-USER -s ::ffff:10.0.0.0/104 -j RETURN",
                                                     "-A DOCKER-USER -s fd00:af1:e::1/128 -j RETURN"] + TAIL)
    assert rules.parse_rules(listing) == rules.wanted_rules(6, allowed)


def test_a_changed_listing_does_not_compare_equal(rules):
    allowed = nets(rules, "127.0.0.0/8")
    listing = "\n".join(["-N DOCKER-USER"] + HEAD + ["-A DOCKER-USER -s 10.0.0.0/8 -j RETURN"] + TAIL)
    assert rules.parse_rules(listing) != rules.wanted_rules(4, allowed)


@pytest.mark.parametrize("ipv6_present, families", [(True, [4, 6]), (False, [4])])
def test_families(rules, ipv6_present, families):
    assert rules.families(ipv6_present) == families


@pytest.mark.parametrize("text, message", [
    ("{", "is not valid JSON"),
    ("[]", '"allowed_networks", a list'),
    ('{"allowed_networks": "127.0.0.0/8"}', '"allowed_networks", a list'),
    ('{"allowed_networks": [8]}', '"allowed_networks", a list'),
    ('{"allowed_networks": ["10.0.0.0/33"]}', "bad network in allowed_networks"),
])
def test_malformed_settings(rules, text, message):
    with pytest.raises(rules.SettingsError, match=re.escape(message)):
        rules.load_settings(text)


def test_settings_path_is_the_roles(rules):
    """The role and the unit pass --settings; a hand-run --check without it reads the same file."""
    assert rules.SETTINGS == PATHS["rules_settings"]


class FakeTables:
    """iptables and ip6tables as main() sees them: the chains' listings and FORWARD's jump."""

    class Proc:  # pylint: disable=too-few-public-methods
        def __init__(self, returncode, stdout=""):
            self.returncode, self.stdout, self.stderr = returncode, stdout, ""

    def __init__(self, rules, listing, jump):
        self.rules, self.listing, self.jump, self.calls = rules, listing, jump, []

    def __call__(self, argv, stdin=None, check=False):
        self.calls.append(argv)
        if argv[3] == "-S":
            return self.Proc(0 if self.listing is not None else 1, self.listing or "")
        if argv[3] == "-C":
            return self.Proc(0 if self.jump else 1)
        if argv[0].endswith("-restore"):
            self.listing = "\n".join(["-N DOCKER-USER"] + [line for line in stdin.splitlines() if line[:2] == "-A"])
        if argv[3] == "-I":
            self.jump = True
        return self.Proc(0)


@pytest.fixture(name="run_main")
def fixture_run_main(rules, tmp_path, monkeypatch):
    (tmp_path / "settings.json").write_text(json.dumps({"allowed_networks": ["127.0.0.0/8", "::1/128"]}))
    monkeypatch.setattr(rules.os.path, "isdir", lambda path: False)  # IPv4 only: one fake table

    def run_main(fake, *args):
        monkeypatch.setattr(rules, "run", fake)
        return rules.main(["appfleet-docker-user", "--settings", str(tmp_path / "settings.json")] + list(args))
    return run_main


def test_check_of_rules_in_place(rules, run_main):
    allowed = nets(rules, "127.0.0.0/8")
    fake = FakeTables(rules, "-N DOCKER-USER\n" + "\n".join(rules.wanted_rules(4, allowed)), jump=True)
    assert run_main(fake, "--check") == 0
    assert fake.calls == [rules.list_argv(4), rules.jump_check_argv(4)]


@pytest.mark.parametrize("listing, jump", [(None, False), ("-N DOCKER-USER\n-A DOCKER-USER -j RETURN", True),
                                           ("-N DOCKER-USER\n" + "\n".join(HEAD + TAIL), True)])
def test_check_of_rules_not_in_place_then_apply(rules, run_main, listing, jump):
    fake = FakeTables(rules, listing, jump)
    assert run_main(fake, "--check") == 1
    fake.calls.clear()
    assert run_main(fake) == 0
    expected = [rules.jump_check_argv(4), ["iptables-restore", "-w", "10", "--noflush"]]
    if not jump:
        expected.append(["iptables", "-w", "10", "-I", "FORWARD", "1", "-j", "DOCKER-USER"])
    assert fake.calls[:len(expected)] == expected
    assert run_main(fake, "--check") == 0


def test_usage_and_missing_settings(rules, run_main, tmp_path, capsys):
    assert run_main(FakeTables(rules, None, False), "--apply") == 2
    assert rules.main(["appfleet-docker-user", "--settings", str(tmp_path / "none.json"), "--check"]) == 2
    assert "cannot read the settings %s" % (tmp_path / "none.json") in capsys.readouterr().err
