"""appfleet.docker.deploy_lock through ansible-playbook on localhost, with a lock file in a temp dir.

Two real playbook runs: the first holds the lock while the second tries to take it;
then a run that ends without releasing leaves a lock that the next run of this
controller takes over, because its process is gone.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time

from conftest import BIN, REPO, ansible_env, run_module

HOLDING_PLAY = """
- name: Hold the deploy lock until told to let go
  hosts: localhost
  gather_facts: false
  vars:
    ansible_python_interpreter: {python}
  tasks:
    - name: Take the lock
      appfleet.docker.deploy_lock:
        path: {path}
        holder: {{note: first}}
      register: taken
    - name: Say it is taken
      ansible.builtin.copy:
        content: "{{{{ taken | to_json }}}}"
        dest: {taken}
        mode: "0600"
    - name: Wait for the go
      ansible.builtin.wait_for:
        path: {go}
        timeout: 120
    - name: Give the lock back
      appfleet.docker.deploy_lock:
        path: {path}
        state: released
"""


def wait_for_file(path, proc, timeout=60):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the holding playbook did not take the lock in %d s" % timeout
        time.sleep(0.2)


def test_second_run_waits_fails_naming_the_first_then_takes_it(tmp_path):
    lock = tmp_path / "locks" / "deploy.lock"
    taken, go = tmp_path / "taken.json", tmp_path / "go"
    book = tmp_path / "hold.yml"
    book.write_text(HOLDING_PLAY.format(python=sys.executable, path=lock, taken=taken, go=go))
    first = subprocess.Popen([str(BIN / "ansible-playbook"), str(book), "-i", "localhost,", "-c", "local"],
                             cwd=REPO, env=ansible_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
    try:
        wait_for_file(taken, first)
        held = json.loads(taken.read_text())["lock"]
        assert held["outcome"] == "free" and held["holder"]["pid"] == first.pid
        assert held["holder"]["host"] == socket.gethostname() and held["holder"]["note"] == "first"
        assert "hold.yml" in held["holder"]["playbook"]
        assert json.loads(lock.read_text())["holder"] == held["holder"]

        # The first run is alive: the second waits 2 s, then fails naming it.
        start = time.monotonic()
        res = run_module("deploy_lock", dict(path=str(lock), wait=2))
        elapsed = time.monotonic() - start
        assert res.get("failed") is True
        for part in ("pid %d" % first.pid, "controller %s" % socket.gethostname(), "hold.yml",
                     held["holder"]["started"], "remove %s" % lock):
            assert part in res["msg"], res["msg"]
        # The whole wait of the task, module round trips included.
        assert 2 <= int(re.search(r"gave up after (\d+) s", res["msg"]).group(1)) < 20, res["msg"]
        assert elapsed < 20, elapsed  # 2 s of waiting plus one ansible-playbook start
        assert json.loads(lock.read_text())["holder"] == held["holder"]

        # Check mode takes nothing and waits for nothing.
        res = run_module("deploy_lock", dict(path=str(lock), wait=30), check=True)
        assert res.get("failed") is not True and res["changed"] is False, res
        assert res["lock"]["holder"]["pid"] == first.pid

        # A release by another run leaves it alone.
        res = run_module("deploy_lock", dict(path=str(lock), state="released"))
        assert res["changed"] is False and res["lock"]["outcome"] == "refused"
        assert json.loads(lock.read_text())["holder"] == held["holder"]

        go.write_text("go\n")
        output = first.communicate(timeout=120)[0]
        assert first.returncode == 0, output
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert not lock.exists()

    # Free again: taken at once. This run ends without releasing it ...
    res = run_module("deploy_lock", dict(path=str(lock), wait=0))
    assert res.get("failed") is not True, res.get("msg")
    assert res["changed"] is True and res["lock"]["outcome"] == "free"
    left = res["lock"]["holder"]

    # ... and its process is gone: the next run of this controller takes the lock over at once.
    res = run_module("deploy_lock", dict(path=str(lock), wait=0))
    assert res.get("failed") is not True, res.get("msg")
    assert res["changed"] is True and res["lock"]["outcome"] == "dead"
    assert res["lock"]["previous"]["holder"]["pid"] == left["pid"]
    assert res["lock"]["holder"]["pid"] != left["pid"]
    assert any("took over the stale lock" in warning for warning in res.get("warnings", [])), res
