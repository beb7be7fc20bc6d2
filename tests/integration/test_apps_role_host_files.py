"""The apps role prepares a host in one appfleet.docker.host_files call: in check mode it
previews the key files and only previews the checkout; for real it writes the deploy key
(0600, never printed) and host keys (0644) under the role's directories (0700), and a
checkout that fails names the host, the app and the step. With apps_model_checked the
role trusts the apps_model fact set earlier in the run instead of checking again."""

from __future__ import annotations

import json
import re
import stat
import sys

from conftest import run_playbook

KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nrole-host-files-key-text\n-----END OPENSSH PRIVATE KEY-----\n"


def play(tmp_path, extra_vars=None, pre_tasks=()):
    key = tmp_path / "controller-key"
    key.write_text(KEY)
    role_vars = {
        "ansible_python_interpreter": sys.executable,
        # A port nothing listens on: the checkout fails at once, without any network.
        "appfleet_apps": [{"name": "web", "port": 8080,
                           "source": {"repo": "ssh://git@127.0.0.1:1/team/web.git", "key_file": str(key),
                                      "known_hosts": "[127.0.0.1]:1 ssh-ed25519 AAAAroleknownhosts"}}],
        "apps_src_dir": str(tmp_path / "host" / "src"),
        "apps_key_dir": str(tmp_path / "host" / "keys"),
        "apps_secret_dir": str(tmp_path / "host" / "secrets"),
        "appfleet_upstream_dir": str(tmp_path / "host" / "upstreams"),
    }
    role_vars.update(extra_vars or {})
    return json.dumps([{
        "name": "The apps role on this machine", "hosts": "localhost", "connection": "local",
        "gather_facts": False, "vars": role_vars, "pre_tasks": list(pre_tasks),
        "roles": [{"role": "appfleet.docker.apps"}],
    }], indent=1)


def test_check_mode_previews_then_a_real_run_writes_the_keys(tmp_path):
    host = tmp_path / "host"
    check = run_playbook(play(tmp_path), "-i", "localhost,", "--check", "--diff", check=False)
    out = re.sub(r"\s+", " ", check.stdout)
    assert check.returncode == 0, out[-4000:]
    # Its diff (the directories, the secret key without its text, the host keys) comes before the result.
    assert re.search(r"install the deploy keys\] \**(?:(?!TASK \[).)*\(secret content, changed\)"
                     r"(?:(?!TASK \[).)* changed: \[localhost\]", out), out[-4000:]
    assert re.search(r"Check out the source of web\] \** skipping", out), out[-4000:]
    assert "check mode: web is not on this host yet" in out, out[-4000:]
    assert "AAAAroleknownhosts" in out and "role-host-files-key-text" not in out
    assert not host.exists()
    real = run_playbook(play(tmp_path), "-i", "localhost,", "-vvv", check=False)
    out = re.sub(r"\s+", " ", real.stdout)
    assert real.returncode != 0, out[-4000:]
    assert "host localhost, app web: Check out the source of web failed" in out, out[-4000:]
    assert "role-host-files-key-text" not in real.stdout + real.stderr
    for directory in (host / "src", host / "keys"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    assert (host / "keys" / "web").read_text() == KEY
    assert stat.S_IMODE((host / "keys" / "web").stat().st_mode) == 0o600
    assert stat.S_IMODE((host / "keys" / "web.known_hosts").stat().st_mode) == 0o644


def test_apps_model_checked_trusts_the_fact_set_earlier(tmp_path):
    # A model with a problem, as if set earlier: the role does not compute or check it again.
    earlier = {"name": "Set the model as an earlier play would",
               "ansible.builtin.set_fact": {"apps_model": {"apps": [], "selected": [], "absent": [],
                                                           "problems": ["a problem found earlier"]}}}
    trusted = run_playbook(play(tmp_path, {"apps_model_checked": True}, [earlier]), "-i", "localhost,", "--check",
                           check=False)
    out = re.sub(r"\s+", " ", trusted.stdout)
    assert trusted.returncode == 0, out[-4000:]
    assert re.search(r"Check the app definitions have no problem\] \** skipping", out), out[-4000:]
    assert "Check out the source of web" not in out
    checked = run_playbook(play(tmp_path, {}, [earlier]), "-i", "localhost,", "--check", check=False)
    assert checked.returncode == 0, checked.stdout[-4000:]
    assert "Check out the source of web" in checked.stdout
