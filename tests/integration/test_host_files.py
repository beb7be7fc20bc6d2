"""appfleet.docker.host_files through Ansible on this machine, in a temporary directory:
check mode, apply, apply again, the real modes, owners and contents; a controller file's
text never printed, even at -vvv; nothing made while a required path is missing."""

from __future__ import annotations

import os
import stat

import pytest

from conftest import run_module, run_modules

KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nhost-files-secret-key-text\n-----END OPENSSH PRIVATE KEY-----\n"
HOST_KEYS = "git.example.com ssh-ed25519 AAAAhostkeys\n"


def state(path):
    st = os.stat(path)
    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid


@pytest.fixture
def paths(tmp_path):
    key = tmp_path / "controller" / "web_key"
    key.parent.mkdir()
    key.write_text(KEY)
    base = tmp_path / "host"
    args = {
        "look_for": [str(tmp_path / "controller"), str(tmp_path / "nothing-here")],
        "directories": [{"path": str(base / "src"), "mode": "0700"}, {"path": str(base / "keys"), "mode": "0700"}],
        "files": [{"dest": str(base / "keys" / "web"), "src": str(key), "mode": "0600"},
                  {"dest": str(base / "keys" / "web.known_hosts"), "content": HOST_KEYS, "mode": "0644"}],
    }
    return {"base": base, "key": key, "args": args, "tmp": tmp_path}


def test_check_apply_again_and_the_real_state(paths):
    base, args = paths["base"], paths["args"]
    wanted = [str(base / "src"), str(base / "keys"), str(base / "keys" / "web"), str(base / "keys" / "web.known_hosts")]
    check = run_module("host_files", args, check=True, diff=True)
    assert not check.get("failed"), check
    assert check["changed"] and check["changed_paths"] == wanted, check
    assert check["found"] == [str(paths["tmp"] / "controller")], check
    assert not base.exists()
    # The inline host keys are in the diff, the controller file's text is not.
    diffs = {d["after_header"]: d for d in check["diff"]}
    assert diffs[wanted[3]]["after"] == HOST_KEYS
    assert "secret-key-text" not in str(check)
    applied, again = run_modules("host_files", [args, args], diff=True)
    assert applied["changed"] and applied["changed_paths"] == wanted, applied
    assert not again["changed"] and again["changed_paths"] == [], again
    # The missing parent is made like the directory itself (as ansible.builtin.file does).
    for directory in (base, base / "src", base / "keys"):
        assert state(directory) == (0o700, 0, 0), directory
    assert state(base / "keys" / "web") == (0o600, 0, 0)
    assert state(base / "keys" / "web.known_hosts") == (0o644, 0, 0)
    assert (base / "keys" / "web").read_text() == KEY
    assert (base / "keys" / "web.known_hosts").read_text() == HOST_KEYS


def test_a_changed_key_mode_and_owner_are_put_back(paths):
    base, args = paths["base"], paths["args"]
    assert run_module("host_files", args)["changed"]
    os.chmod(base / "keys", 0o755)
    os.chown(base / "keys" / "web.known_hosts", 1, 1)
    paths["key"].write_text(KEY.replace("secret", "newer"))
    result = run_module("host_files", args, diff=True)
    assert result["changed_paths"] == [str(base / "keys"), str(base / "keys" / "web"),
                                       str(base / "keys" / "web.known_hosts")], result
    assert "newer" not in str(result) and "secret-key-text" not in str(result)
    assert state(base / "keys") == (0o700, 0, 0)
    assert state(base / "keys" / "web.known_hosts") == (0o644, 0, 0)
    assert "newer" in (base / "keys" / "web").read_text()


def test_the_key_text_is_not_printed_at_vvv(paths):
    result = run_module("host_files", paths["args"], diff=True, verbosity=3, printed=True)
    assert result["changed"], result
    assert "secret-key-text" not in result.stdout + result.stderr
    # The results are printed (the inline host keys in the diff), the key's text is not.
    assert "AAAAhostkeys" in result.stdout


def test_nothing_is_made_while_a_required_path_is_missing(paths):
    args = dict(paths["args"], require=[str(paths["tmp"] / "nothing-here")])
    result = run_module("host_files", args)
    assert not result["changed"] and result["missing"] == [str(paths["tmp"] / "nothing-here")], result
    assert not paths["base"].exists()


@pytest.mark.parametrize("change, needle", [
    ({"directories": [{"path": "/tmp/x", "mode": "rwx"}]}, 'directories[0] (/tmp/x).mode: "rwx" is not an octal mode'),
    ({"files": [{"dest": "/tmp", "content": "x", "mode": "0644"}]}, "files[0] (/tmp): dest is a directory"),
    ({"files": [{"dest": "/tmp/x", "src": "/nonexistent/key", "mode": "0600"}]},
     "files[0] (/tmp/x): src /nonexistent/key: cannot be read on the controller"),
])
def test_bad_input_fails_naming_the_entry(change, needle):
    result = run_module("host_files", change)
    assert result["failed"] and needle in result["msg"], result
