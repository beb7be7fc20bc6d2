"""Shared pytest helpers: run this checkout's modules and playbooks.

The playbook helpers run the real `ansible-playbook` of the project venv with the
repository's ansible.cfg, so `appfleet.docker.*` resolves to this checkout (through
the .collections link that `make venv` creates). `run_module` runs a module's Python
directly from that link where Ansible adds nothing the test looks at (see
`through_playbook`), and through a play otherwise.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from ansible.module_utils.json_utils import _filter_non_json_lines

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # pylint: disable=unused-argument
    """In CI (CI=true) a skipped test fails: a missing tool or package must
    fail loudly there, not hide behind a skip. Outside CI a skip stays, with
    the install command in its reason."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI", "").lower() in ("1", "true", "yes") and report.skipped \
            and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = "skipped in CI, which must not skip (run `make setup`): %s" % reason


# `make integration` runs the module tests in pytest-xdist workers with `--dist loadscope`,
# where a scope (the tests one worker runs, in order) is one test file: its module fixtures
# and the fixed names of its objects stay as without xdist. The files named here make their
# own objects for each test (app names, nginx servers, secret dirs): each of their tests is a
# scope of its own and goes to whichever worker is free, except the tests listed with the
# file, which share a module fixture (each such test with its cases is one scope).
XDIST_SPREAD_FILES = {
    "tests/integration/test_app_container.py": ("test_bad_input_fails_before_any_change",),
}


def xdist_scope(nodeid):
    """The scope of a test under ``--dist loadscope`` (see XDIST_SPREAD_FILES)."""
    path, _sep, name = nodeid.partition("::")
    shared = XDIST_SPREAD_FILES.get(path)
    if shared is None:
        return path
    function = name.split("[", 1)[0]
    return "%s::%s" % (path, function) if function in shared else nodeid


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """The loadscope scheduler with the scopes of xdist_scope(). (pytest-xdist's own
    xdist_group marker does nothing under pytest 9: its worker renames node ids that
    pytest 9 no longer lets a plugin rename.)"""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling  # pylint: disable=import-outside-toplevel

    class FileOrTestScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            return xdist_scope(nodeid)

    return FileOrTestScheduling(config, log)


def ansible_env(**extra):
    env = dict(os.environ)
    env["ANSIBLE_CONFIG"] = str(REPO / "ansible.cfg")
    env.setdefault("ANSIBLE_NOCOLOR", "1")
    env.setdefault("ANSIBLE_FORCE_COLOR", "0")
    env["PATH"] = str(BIN) + os.pathsep + env.get("PATH", "")
    env.update({k: str(v) for k, v in extra.items()})
    return env


class ModuleResult(dict):
    """The module's JSON result, plus the process outcome."""

    rc: int
    stdout: str
    stderr: str


def run_module(name, args, check=False, diff=False, verbosity=0, env=None, timeout=600, printed=False):
    """Run one module on localhost (the venv's python) and return its result.

    The result dict is what the module returned (``failed``/``msg`` on failure),
    as a task's ``register`` would hold it. ``printed=True``: the test reads what
    ansible-playbook prints (``.stdout``), so the call goes through a play.
    """
    return run_modules(name, [args], check=check, diff=diff, verbosity=verbosity, env=env, timeout=timeout,
                       printed=printed)[0]


def start_module(name, args, tmp_path):
    """Start one module on localhost in a play of its own, in a new session (so that a test
    can kill its whole process tree mid-run); returns the Popen, output discarded."""
    book = tmp_path / "play.yml"
    book.write_text(json.dumps([{
        "hosts": "localhost", "gather_facts": False,
        "vars": {"ansible_python_interpreter": sys.executable},
        "tasks": [{"name": "Run %s" % name, "appfleet.docker.%s" % name: args}],
    }]))
    return subprocess.Popen([str(BIN / "ansible-playbook"), str(book), "-i", "localhost,", "-c", "local"],
                            cwd=REPO, env=ansible_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def process_argvs():
    """(pid, argv) of every process of this machine whose command line is readable."""
    for pid in os.listdir("/proc"):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as handle:
                yield pid, handle.read().decode("utf-8", "replace").split("\0")
        except OSError:
            continue


def through_playbook(name, verbosity=0, env=None, printed=False):
    """Whether a module call must go through ansible-playbook rather than run the module directly.

    Both run the same module code with the same arguments; an ansible-playbook start costs
    about 2 s of CPU. What only Ansible does needs the play: an action plugin (deploy_lock,
    deploy_state) runs on the controller around its module; verbosity and ANSIBLE_* settings
    (log path, collections path) change what Ansible prints, logs and loads; and some tests
    read that output (``printed``). app_container runs directly too: after a reload it returns
    only once nginx runs the new configuration (module_utils/_nginx_reload.py), so a probe
    right after it reaches the new upstream.
    """
    short = name.rsplit(".", 1)[-1]
    other_collection = "." in name and not name.startswith("appfleet.docker.")
    return bool(printed or verbosity or other_collection
                or (REPO / "plugins" / "action" / (short + ".py")).exists()
                or any(key.startswith("ANSIBLE_") for key in (env or {})))


def run_modules(name, args_list, check=False, diff=False, verbosity=0, env=None, timeout=600, printed=False):
    """Run the module once per entry of ``args_list``, in order; return the results.

    A failed call does not stop the next. Through a play (see `through_playbook`) all the
    calls share one ansible-playbook start.
    """
    if not through_playbook(name, verbosity, env, printed):
        return [run_direct(name, args, check=check, diff=diff, env=env, timeout=timeout) for args in args_list]
    fqcn = name if "." in name else "appfleet.docker." + name
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        tasks = [{"name": "Run the module (%d)" % index, fqcn: args, "register": "appfleet_result_%d" % index,
                  "ignore_errors": True} for index, args in enumerate(args_list)]
        results = "[%s]" % ", ".join("appfleet_result_%d" % index for index in range(len(args_list)))
        play = [{
            "hosts": "localhost", "gather_facts": False,
            "vars": {"ansible_python_interpreter": sys.executable},
            "tasks": tasks + [
                {"name": "Save the results", "check_mode": False, "diff": False,
                 "ansible.builtin.copy": {"content": "{{ %s | to_json }}" % results,
                                          "dest": str(out), "mode": "0600"}},
            ],
        }]
        book = Path(tmp) / "play.yml"
        book.write_text(json.dumps(play))
        cmd = [str(BIN / "ansible-playbook"), str(book), "-i", "localhost,", "-c", "local"]
        if check:
            cmd.append("--check")
        if diff:
            cmd.append("--diff")
        if verbosity:
            cmd.append("-" + "v" * verbosity)
        proc = subprocess.run(cmd, cwd=REPO, env=ansible_env(**(env or {})),
                              capture_output=True, text=True, timeout=timeout, check=False)
        if not out.exists():
            raise AssertionError("module %s did not run:\n%s\n%s" % (fqcn, proc.stdout[-6000:], proc.stderr[-3000:]))
        data = json.loads(out.read_text())
    found = []
    for item in data:
        res = ModuleResult(item)
        res.rc, res.stdout, res.stderr = proc.returncode, proc.stdout, proc.stderr
        found.append(res)
    return found


def run_direct(name, args, check=False, diff=False, env=None, timeout=600):
    """Run one module's Python directly, as ansible-core's docs on debugging modules show
    (arguments in a JSON file), and return its result as ``register`` would hold it.

    The module runs from the .collections link with the venv's python, as the play runs it
    on localhost; ``rc``, ``stdout`` and ``stderr`` are the module process's own.
    """
    short = name.rsplit(".", 1)[-1]
    if not (REPO / "plugins" / "modules" / (short + ".py")).exists():
        raise AssertionError("no module %s in plugins/modules" % short)
    with tempfile.TemporaryDirectory() as tmp:
        module_args = dict(args, _ansible_check_mode=check, _ansible_diff=diff, _ansible_verbosity=0,
                           _ansible_no_log=False, _ansible_module_name="appfleet.docker." + short,
                           _ansible_tmpdir=tmp, _ansible_remote_tmp=tmp)
        argfile = Path(tmp) / "args.json"
        argfile.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": module_args}))
        proc_env = ansible_env(**(env or {}))
        proc_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / ".collections"),
                                                               proc_env.get("PYTHONPATH")]))
        proc = subprocess.run([sys.executable, "-m", "ansible_collections.appfleet.docker.plugins.modules." + short,
                               str(argfile)], cwd=REPO, env=proc_env, capture_output=True, text=True,
                              timeout=timeout, check=False)
    res = ModuleResult(registered(proc.stdout, proc.returncode, proc.stderr))
    res.rc, res.stdout, res.stderr = proc.returncode, proc.stdout, proc.stderr
    return res


def registered(stdout, rc, stderr):
    """A module's JSON output as ansible-core hands it to ``register``, for what the tests read:
    output that is no JSON object fails the task, ``failed`` and ``changed`` default to false,
    ``failed`` also when the module exits non-zero, a failure has an ``exception``, internal keys
    and ``invocation`` go (as from a play without -v), and warnings are their messages."""
    try:
        data = json.loads(_filter_non_json_lines(stdout, objects_only=True)[0])
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except ValueError:
        return {"failed": True, "changed": False, "rc": rc, "module_stdout": stdout, "module_stderr": stderr,
                "msg": "Module result deserialization failed. See stdout/stderr for the returned output."}
    data = {key: value for key, value in data.items() if not key.startswith("_ansible_") and key != "invocation"}
    data.setdefault("changed", False)
    data["failed"] = bool(data.get("failed")) or rc != 0
    if data["failed"]:
        data.setdefault("exception", "(traceback unavailable)")  # unless -vvv asks for tracebacks
    if data.get("warnings"):
        data["warnings"] = [w["event"]["msg"] if isinstance(w, dict) else w for w in data["warnings"]]
    return data


def run_playbook(playbook, *args, inventory=None, env=None, timeout=1800, check=True):
    """Run ansible-playbook from the repo root; return the CompletedProcess.

    ``playbook`` is a path (relative to the repo) or YAML text of a playbook.
    With ``check=True`` a non-zero exit raises with the output attached.
    """
    tmp = None
    if "\n" in playbook:
        tmp = tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False, dir=REPO / "tests")
        tmp.write(playbook)
        tmp.close()
        playbook = tmp.name
    cmd = [str(BIN / "ansible-playbook"), playbook]
    if inventory:
        cmd += ["-i", str(inventory)]
    cmd += list(args)
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=ansible_env(**(env or {})),
                              capture_output=True, text=True, timeout=timeout, check=False)
    finally:
        if tmp:
            os.unlink(tmp.name)
    if check and proc.returncode != 0:
        raise AssertionError("ansible-playbook %s failed (rc=%s)\n%s\n%s"
                             % (playbook, proc.returncode, proc.stdout[-8000:], proc.stderr[-4000:]))
    return proc


@pytest.fixture(scope="session")
def docker_client():
    import docker  # pylint: disable=import-outside-toplevel  # in requirements.txt: missing fails, never skips
    client = docker.from_env()
    client.ping()
    return client


@contextlib.contextmanager
def machine_lock(name):
    """Hold an exclusive lock shared by every pytest process of this machine.

    The integration tests run in several pytest-xdist workers at once; what they
    share (the test images each worker makes when missing) is made under this lock
    by one worker at a time, so that the others find it made and reuse it.
    """
    path = Path(tempfile.gettempdir()) / ("appfleet-tests-%s.lock" % name)
    with open(path, "a", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
